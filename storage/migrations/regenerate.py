"""Regenerate the one initial migration from the models (until the first release).

    .venv/bin/python -m storage.migrations.regenerate

Autogenerates `versions/0001_initial.py` against an empty SQLite database, then
tidies it (no timestamp, no Alembic banner comments, ruff-formatted) so that a
re-run with unchanged models changes nothing. The rendered types are plain
SQLAlchemy ones, so the same file runs on SQLite and PostgreSQL;
tests/test_migrations.py checks that on both. After the first release, add new
revisions with `command.revision(..., autogenerate=True)` instead.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy.engine import Connection

from storage.db import Database
from storage.migrate import MIGRATIONS_DIR, alembic_config

TARGET = MIGRATIONS_DIR / "versions" / "0001_initial.py"


def tidy(source: str) -> str:
    """Drop what would change on every run or only adds noise."""
    source = re.sub(r"\nCreate Date: .*\n", "\n", source)
    source = re.sub(r"[ \t]*# ### .* ###\n", "", source)
    return source


def _ruff(path: Path) -> None:
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        print("ruff not found next to this Python; leaving the file unformatted")
        return
    subprocess.run([str(ruff), "format", "--quiet", str(path)], check=True)
    subprocess.run([str(ruff), "check", "--quiet", "--fix", str(path)], check=True)


async def regenerate() -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        backup = Path(tmp) / TARGET.name
        if TARGET.exists():
            shutil.move(TARGET, backup)
        db = Database(f"sqlite+aiosqlite:///{tmp}/empty.db")

        def work(conn: Connection) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            # An initial migration only creates tables: plain ops read better than batches.
            cfg.attributes["render_as_batch"] = False
            command.revision(cfg, message="initial", autogenerate=True, rev_id="0001")

        try:
            async with db.engine.connect() as conn:
                await conn.run_sync(work)
        except BaseException:
            if backup.exists():
                shutil.move(backup, TARGET)
            raise
        finally:
            await db.dispose()
    TARGET.write_text(tidy(TARGET.read_text()))
    _ruff(TARGET)
    return TARGET


def main() -> None:
    path = asyncio.run(regenerate())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
