"""Schema migrations (Alembic), configured in code: there is no alembic.ini.

`upgrade(db)` runs the migrations in storage/migrations/versions on the
database's own async engine; `nalgae db upgrade` and `make run` call it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy import Index, inspect, text
from sqlalchemy.engine import Connection

from storage import supporter_counts
from storage.db import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
log = logging.getLogger("nalgae.migrate")


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


async def upgrade(db: Database, revision: str = "head") -> list[str]:
    """Bring the schema up to ``revision`` (the newest by default), then add what the
    migrations leave to this step: the counting triggers (storage/supporter_counts) and
    any index of the models the database lacks (new indexes of released tables are left
    out of the migrations: see storage/migrations/regenerate.py), built without blocking
    writes (`ensure_indexes`). The indexes built, by name."""
    migrate = _run_command(command.upgrade, revision)

    def work(sync_conn: Connection) -> None:
        migrate(sync_conn)
        if revision == "head":
            supporter_counts.install(sync_conn)

    await _with_connection(db, work)
    return await ensure_indexes(db) if revision == "head" else []


_PG_INDEX_STATE = """
SELECT c.relname, i.indisvalid FROM pg_index AS i
JOIN pg_class AS c ON c.oid = i.indexrelid
JOIN pg_namespace AS ns ON ns.oid = c.relnamespace
WHERE ns.nspname = current_schema() AND c.relname = ANY(:names)
"""


def _index_state(sync_conn: Connection, names: list[str]) -> dict[str, bool]:
    """Each existing index of ``names``: valid or not (SQLite's always are)."""
    if sync_conn.dialect.name == "postgresql":
        rows = sync_conn.execute(text(_PG_INDEX_STATE), {"names": names})
        return {str(name): bool(valid) for name, valid in rows.all()}
    rows = sync_conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'"))
    return {str(name): True for (name,) in rows.all() if name in names}


def _ensure_indexes(sync_conn: Connection) -> list[str]:
    from storage.models import Base

    wanted: dict[str, Index] = {str(i.name): i for t in Base.metadata.sorted_tables
                                for i in t.indexes}
    state = _index_state(sync_conn, sorted(wanted))
    ops = Operations(MigrationContext.configure(sync_conn))
    built = []
    for name, index in wanted.items():
        if state.get(name):
            continue
        table = index.table.name if index.table is not None else ""
        if name in state:
            # INVALID: what an interrupted CREATE INDEX CONCURRENTLY leaves behind. It
            # slows every write to the table and answers no query; IF NOT EXISTS would
            # keep it, so it goes first.
            log.warning("index %s is invalid (an interrupted build): rebuilding it", name)
            ops.drop_index(name, table_name=table, postgresql_concurrently=True,
                           if_exists=True)
        log.info("building index %s on %s", name, table)
        ops.create_index(
            name, table, [c.name for c in index.columns], unique=index.unique,
            if_not_exists=True, postgresql_concurrently=True,
            postgresql_where=index.dialect_options["postgresql"]["where"],
            sqlite_where=index.dialect_options["sqlite"]["where"])
        built.append(name)
    return built


async def ensure_indexes(db: Database) -> list[str]:
    """Build each index of the models the database lacks or holds INVALID; their names.

    A migration creates an index only with its new, empty table; a database migrated
    before an index joined the models never runs that migration again. On
    PostgreSQL this builds the missing ones with CREATE INDEX CONCURRENTLY, outside any
    transaction (an AUTOCOMMIT connection; PostgreSQL refuses it inside one): writes to
    the table go on while it builds, instead of waiting behind the SHARE lock a plain
    CREATE INDEX holds for the whole build (seconds at a million rows). A build
    interrupted earlier left an INVALID index: it is dropped (concurrently too) and built
    again. SQLite has one writer at a time anyway: a plain CREATE INDEX IF NOT EXISTS.
    """
    async with db.engine.connect() as conn:
        if db.is_postgres:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        built: list[str] = await conn.run_sync(_ensure_indexes)
        if not db.is_postgres:
            await conn.commit()
        return built


async def downgrade(db: Database, revision: str) -> None:
    """Step the schema down to ``revision``. The counting triggers go first: they write
    to tables an older revision lacks (`upgrade` to head puts them back, recounted)."""
    migrate = _run_command(command.downgrade, revision)

    def work(sync_conn: Connection) -> None:
        supporter_counts.uninstall(sync_conn)
        migrate(sync_conn)

    await _with_connection(db, work)


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
