"""Regenerate the newest, unreleased migration from the models.

    .venv/bin/python -m storage.migrations.regenerate            # redo the newest one
    .venv/bin/python -m storage.migrations.regenerate --new SLUG  # after a release

Released migrations (`RELEASED`: the revision and the commit that shipped it) are
frozen: a deployed database records their id and never runs them again, so changing
one would never reach it. Every model change since the last release lives in the
newest migration, which this tool rewrites: it upgrades an empty SQLite database to
that migration's down_revision (the released schema), autogenerates the difference to
the models against it, and tidies the result (no timestamp, no Alembic banner comments,
ruff-formatted) so that a re-run with unchanged models changes nothing. The file is
rendered in batch mode (SQLite cannot ALTER most things; on PostgreSQL the batch ops
are plain ALTERs) with plain SQLAlchemy types, so it runs on both;
tests/test_migrations.py checks that. When the newest migration ships, add it to
`RELEASED` and start the next one with ``--new``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from storage.db import Database
from storage.migrate import MIGRATIONS_DIR, alembic_config

VERSIONS = MIGRATIONS_DIR / "versions"

# revision -> the commit that released it (`git show <commit>:<path>` is the frozen text).
RELEASED = {"0001": "5a7a948"}


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


def newest() -> tuple[str, str | None, Path]:
    """The head migration: its revision, down_revision and file."""
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_revision("head")
    if head is None:
        raise SystemExit("no migrations at all")
    down = head.down_revision
    if down is not None and not isinstance(down, str):
        raise SystemExit(f"{head.revision} merges several heads; regenerate it by hand")
    return head.revision, down, Path(head.path)


def _slug(path: Path, rev: str) -> str:
    return path.stem.removeprefix(f"{rev}_").replace("_", " ")


def plan(new_slug: str | None) -> tuple[str, str | None, str, Path | None]:
    """What to write: (revision, down_revision, message, file it replaces or None)."""
    rev, down, path = newest()
    if new_slug is not None:
        if rev not in RELEASED:
            raise SystemExit(f"{rev} is not released yet: regenerate it instead of adding one")
        return f"{int(rev) + 1:04d}", rev, new_slug, None
    if rev in RELEASED:
        raise SystemExit(f"{rev} is released (frozen); start the next one with --new SLUG")
    return rev, down, _slug(path, rev), path


async def regenerate(new_slug: str | None = None) -> Path:
    rev, down, message, old = plan(new_slug)
    with tempfile.TemporaryDirectory() as tmp:
        backup = Path(tmp) / "previous.py"
        if old is not None:
            shutil.move(old, backup)  # out of the way: head is now its down_revision
        db = Database(f"sqlite+aiosqlite:///{tmp}/released.db")

        def work(conn: Connection) -> list[Path]:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            if down is not None:
                command.upgrade(cfg, down)
            # Batch ops: SQLite rebuilds a table to add a NOT NULL column or a constraint.
            cfg.attributes["render_as_batch"] = True
            scripts = command.revision(cfg, message=message, autogenerate=True, rev_id=rev)
            items = scripts if isinstance(scripts, list) else [scripts]
            return [Path(s.path) for s in items if s is not None]

        try:
            async with db.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                written = await conn.run_sync(work)
        except BaseException:
            if backup.exists() and old is not None:
                shutil.move(backup, old)
            raise
        finally:
            await db.dispose()
    (target,) = written
    target.write_text(tidy(target.read_text()))
    _ruff(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new", metavar="SLUG",
                        help="start the migration after the newest (released) one")
    args = parser.parse_args()
    path = asyncio.run(regenerate(args.new))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
