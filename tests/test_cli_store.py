"""`nalgae db`, `nalgae members codes` and `nalgae supporters import|export` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli import cli

GOOD = (
    "telegram_id,name,language,region,tier,tags,consent\n"
    "1001,김민수,ko,서울,,volunteer,yes\n"
    "1002,Jane,en,Busan,member,,yes\n"
)
BAD_LINE = "1003,Nobody,ko,Mars,,,yes\n"


@pytest.fixture
def nalgae(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no stray .env; the default SQLite file lands in tmp
    monkeypatch.setenv("NALGAE_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    return CliRunner()


def run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli, list(args), catch_exceptions=False)


def test_db_upgrade_and_current(nalgae: CliRunner) -> None:
    before = json.loads(run(nalgae, "db", "current", "--json").output)
    assert before == {"current": None, "head": "0002", "up_to_date": False}
    assert "database at revision 0002" in run(nalgae, "db", "upgrade").output
    assert json.loads(run(nalgae, "db", "upgrade", "--json").output) == {
        "from": "0002", "to": "0002", "indexes_built": []}
    assert json.loads(run(nalgae, "db", "current", "--json").output)["up_to_date"] is True


def test_member_codes_are_printed_once(nalgae: CliRunner) -> None:
    run(nalgae, "db", "upgrade")
    codes = json.loads(run(nalgae, "members", "codes", "--count", "3", "--json").output)["codes"]
    assert len(set(codes)) == 3
    human = run(nalgae, "members", "codes", "--count", "2")
    assert human.exit_code == 0 and len(human.stdout.split()) == 2
    assert run(nalgae, "members", "codes", "--count", "0").exit_code != 0


def test_import_refuses_a_file_with_problems_then_skips_them(
    nalgae: CliRunner, tmp_path: Path
) -> None:
    run(nalgae, "db", "upgrade")
    path = tmp_path / "list.csv"
    path.write_text(GOOD + BAD_LINE, encoding="utf-8")
    refused = run(nalgae, "supporters", "import", str(path))
    assert refused.exit_code == 1
    assert "line 4: Unknown region “Mars”." in refused.stdout
    assert "nothing imported" in refused.stderr
    as_json = run(nalgae, "supporters", "import", str(path), "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["problems"] == [
        {"line": 4, "code": "bad_region", "reason": "Unknown region “Mars”."}
    ]
    done = run(nalgae, "supporters", "import", str(path), "--skip-invalid", "--json")
    report = json.loads(done.stdout)
    assert done.exit_code == 0 and (report["imported"], report["skipped"]) == (2, 1)
    assert "importing: 2/2" in done.stderr  # plain progress lines when not on a terminal
    again = run(nalgae, "supporters", "import", str(path), "--skip-invalid")
    assert "imported 0 supporter(s) of 3, skipped 3" in again.stdout


def test_export_to_a_file_and_to_stdout(nalgae: CliRunner, tmp_path: Path) -> None:
    run(nalgae, "db", "upgrade")
    source = tmp_path / "list.csv"
    source.write_text(GOOD, encoding="utf-8")
    run(nalgae, "supporters", "import", str(source))
    target = tmp_path / "out.csv"
    result = run(nalgae, "supporters", "export", "--output", str(target))
    assert "exported 2 supporter(s)" in result.stderr
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # so Excel reads the Korean names right
    lines = data.decode("utf-8-sig").splitlines()
    assert lines[0] == ("telegram_id,name,language,region,tier,tags,consent,status,joined_at,"
                        "district")
    assert lines[1].startswith("1001,김민수,ko,seoul,supporter,volunteer,yes,active,")
    records = json.loads(run(nalgae, "supporters", "export", "--format", "json").stdout)
    assert [r["telegram_id"] for r in records] == [1001, 1002]
    assert not list(tmp_path.glob("*.partial"))
