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

A new index on a table that already exists at the down_revision is left out of the
migration: there the table may hold a million rows, and CREATE INDEX inside the
migration's transaction would hold off every write to it for the whole build.
`storage.migrate.upgrade` builds each index of the models the database lacks right after
the migrations, with CREATE INDEX CONCURRENTLY on PostgreSQL (`ensure_indexes`).
Indexes of the tables the migration creates stay in it (an empty table builds at once).
A NOT NULL column added to a released table without a server_default is refused: the
rows already there would have no value.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import rewriter
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from storage.db import Database
from storage.migrate import MIGRATIONS_DIR, alembic_config

VERSIONS = MIGRATIONS_DIR / "versions"

# revision -> the commit that released it (`git show <commit>:<path>` is the frozen text).
# 0002: this round's schema, final in 5c1f4a7, released with the round that landed it.
RELEASED = {"0001": "5a7a948", "0002": "5c1f4a7"}


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


def for_released_tables(released_tables: set[str]) -> Callable[..., None]:
    """Leave new indexes of tables of the released schema out (see the module's
    docstring): `ensure_indexes` builds them without blocking writes. Dropping an index
    the models no longer have stays in the migration (quick, and it is upkeep). Refuse a
    NOT NULL column without a server default on them: their rows would have no value."""
    rewrite = rewriter.Rewriter()

    @rewrite.rewrites(ops.CreateIndexOp)
    def _index(context: MigrationContext, revision: object,
               op: ops.CreateIndexOp) -> list[ops.MigrateOperation]:
        return [] if op.table_name in released_tables else [op]

    @rewrite.rewrites(ops.AddColumnOp)
    def _column(context: MigrationContext, revision: object,
                op: ops.AddColumnOp) -> list[ops.MigrateOperation]:
        column = op.column
        if (op.table_name in released_tables and not column.nullable
                and column.server_default is None):
            # The rows already there need a value: the ALTER fails on a populated table
            # (PostgreSQL: "contains null values"; SQLite refuses outright).
            raise SystemExit(
                f"{op.table_name}.{column.name} is NOT NULL on a released table: give it a"
                " server_default (or make it nullable) so existing rows get a value")
        return [op]

    def upgrade_only(context: MigrationContext, revision: Any,
                     directives: list[Any]) -> None:
        # The downgrade keeps its index operations: going back restores the released
        # indexes and drops the ones `ensure_indexes` built (a downgrade may block).
        kept = [copy.deepcopy(script.downgrade_ops) for script in directives]
        rewrite(context, revision, directives)
        for script, downgrade in zip(directives, kept, strict=True):
            script.downgrade_ops = downgrade

    return upgrade_only


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
            released = set(inspect(conn).get_table_names()) - {"alembic_version"}
            cfg.attributes["process_revision_directives"] = for_released_tables(released)
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
