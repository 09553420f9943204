"""The README documents every setting (as Datasette does), so none is a secret to users."""

from __future__ import annotations

from pathlib import Path

from campaigns.settings import SETTINGS

README = Path(__file__).resolve().parent.parent / "README.md"


def _table_rows() -> dict[str, str]:
    """Configuration table rows, by the setting named in their first cell."""
    rows: dict[str, str] = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells and cells[0].startswith("`NALGAE_"):
            rows[cells[0].strip("`")] = line
    return rows


def test_every_setting_is_in_the_readme_table() -> None:
    rows = _table_rows()
    missing = [s.name for s in SETTINGS if s.name not in rows]
    assert missing == [], f"add these to the Configuration table in README.md: {missing}"


def test_the_readme_shows_each_default() -> None:
    rows = _table_rows()
    wrong = [s.name for s in SETTINGS
             if s.name in rows and s.default and f"`{s.default}`" not in rows[s.name]]
    assert wrong == [], f"README.md shows another default for: {wrong}"


def test_the_readme_documents_no_setting_that_does_not_exist() -> None:
    known = {s.name for s in SETTINGS}
    assert sorted(set(_table_rows()) - known) == []
