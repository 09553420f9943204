"""Schema migrations (Alembic), configured in code: there is no alembic.ini.

`upgrade(db)` runs the migrations in storage/migrations/versions on the
database's own async engine; `nalgae db upgrade` and `make run` call it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from storage import supporter_counts
from storage.db import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """The equivalent of an alembic.ini, built in code."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Config values go through ConfigParser interpolation, hence the doubled %.
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    """The newest revision in the migrations directory."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _with_connection(db: Database, work: Callable[[Connection], Any]) -> Any:
    """Run sync Alembic work on one connection of the database's async engine, then commit."""
    async with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            # Batch migrations recreate a table (copy, DROP, rename). With foreign keys
            # on, that DROP would cascade-delete the child rows; SQLite only honours this
            # pragma outside a transaction, so it comes first on this connection.
            await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            result = await conn.run_sync(work)
            await conn.commit()
        finally:
            if db.dialect == "sqlite":
                await conn.rollback()
                await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        return result


def _run_command(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[Connection], Any]:
    def work(sync_conn: Connection) -> Any:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync_conn
        return fn(cfg, *args, **kwargs)

    return work


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (the newest by default), then install what the
    regenerated migration cannot carry: the counting triggers (storage/supporter_counts)."""
    migrate = _run_command(command.upgrade, revision)

    def work(sync_conn: Connection) -> None:
        migrate(sync_conn)
        if revision == "head":
            supporter_counts.install(sync_conn)

    await _with_connection(db, work)


async def downgrade(db: Database, revision: str) -> None:
    await _with_connection(db, _run_command(command.downgrade, revision))


async def current_revision(db: Database) -> str | None:
    """The revision the database is at; None for a database never migrated."""

    def work(sync_conn: Connection) -> str | None:
        return MigrationContext.configure(sync_conn).get_current_revision()

    async with db.engine.connect() as conn:
        result: str | None = await conn.run_sync(work)
        return result


async def schema_differences(db: Database) -> list[Any]:
    """Differences between the database's schema and the models (empty when in step)."""
    from storage.migrations.options import comparison_options
    from storage.models import Base

    def work(sync_conn: Connection) -> list[Any]:
        ctx = MigrationContext.configure(sync_conn, opts=comparison_options())
        return list(compare_metadata(ctx, Base.metadata))

    async with db.engine.connect() as conn:
        result: list[Any] = await conn.run_sync(work)
        return result


async def schema_state(db: Database) -> str:
    """Where the schema stands: current (the newest revision), empty (no tables yet),
    behind (an older revision), or unmanaged (tables but no revision: built from the
    models, as the tests do, and so left alone)."""
    current, head = await current_revision(db), head_revision()
    if current == head:
        return "current"
    if current is not None:
        return "behind"

    def has_tables(sync_conn: Connection) -> bool:
        return bool(inspect(sync_conn).get_table_names())

    async with db.engine.connect() as conn:
        populated: bool = await conn.run_sync(has_tables)
    return "unmanaged" if populated else "empty"
