"""Long CLI work shows progress: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from campaigns.settings import Settings
from cli import cli
from storage.db import Database
from tests.conftest import run_sync

ROWS = "".join(f"{9000 + i},이름{i},ko,서울,supporter,,yes\n" for i in range(30))
CSV = "telegram_id,name,language,region,tier,tags,consent\n" + ROWS


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path}/cli.db"

    async def create() -> None:
        db = Database(Settings(database_url=url).driver_database_url)
        await db.create_all()
        await db.dispose()

    run_sync(create)
    return {"NALGAE_DATABASE_URL": url}


def test_import_and_export_print_plain_progress_lines_when_not_a_terminal(
    env: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "list.csv"
    source.write_text(CSV, encoding="utf-8")
    runner = CliRunner()
    imported = runner.invoke(cli, ["supporters", "import", str(source)], env=env)
    assert imported.exit_code == 0, imported.output
    assert "importing: 30/30" in imported.stderr
    exported = runner.invoke(cli, ["supporters", "export", "-o", str(tmp_path / "out.csv")],
                             env=env)
    assert exported.exit_code == 0, exported.output
    assert "exporting: 30/30" in exported.stderr
    assert (tmp_path / "out.csv").read_text(encoding="utf-8-sig").count("\n") == 31


def test_on_a_terminal_export_draws_a_bar_instead(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "list.csv"
    source.write_text(CSV, encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(cli, ["supporters", "import", str(source)], env=env).exit_code == 0
    drawn: list[tuple[int, int]] = []

    class FakeBar:  # stands in for rich.progress.Progress; records what it was told
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def start(self) -> None:
            pass

        def stop(self) -> None:
            pass

        def add_task(self, label: str, total: int) -> int:
            drawn.append((0, total))
            return 1

        def update(self, task: int, completed: int, total: int) -> None:
            drawn.append((completed, total))

    import rich.progress

    monkeypatch.setattr(rich.progress, "Progress", FakeBar)
    import cli.supporters as cli_module

    monkeypatch.setattr(cli_module, "_stderr_is_terminal", lambda: True)
    result = runner.invoke(cli, ["supporters", "export", "-o", str(tmp_path / "o.csv")],
                           env=env, color=True)
    assert result.exit_code == 0, result.output
    assert "exporting:" not in result.stderr
    assert drawn and drawn[-1] == (30, 30)
