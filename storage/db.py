"""Engine and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.secrets import SESSION_KEY, Keyring

# aiosqlite logs every statement with its bound values at DEBUG: titles, names and search
# terms would reach the log whenever someone turns DEBUG on. Its own level keeps them out.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


def on_postgres(session: AsyncSession) -> bool:
    """Whether this session talks to PostgreSQL (else the embedded SQLite)."""
    return session.get_bind().dialect.name == "postgresql"


def upsert_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT for the session's database that knows `on_conflict_do_*` (both dialects)."""
    return (pg_insert if on_postgres(session) else sqlite_insert)(table)


def rowcount(result: Any) -> int:
    """Rows a DML statement touched (drivers may answer None)."""
    return int(result.rowcount or 0)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the web app read while a worker writes; busy_timeout makes
    # concurrent writers wait instead of failing with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    # Deleted and overwritten content is zeroed, not left in free pages: after /forget the
    # erased name must not stay readable in the file.
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


# A session that erased someone sets this in `session.info` (storage/privacy.erase).
CHECKPOINT_AFTER_COMMIT = "nalgae.checkpoint_after_commit"


class Database:
    """One engine and session factory; created by entry points, passed down."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False,
                 token_key: str = "") -> None:
        self.url = url
        # Stored tokens are encrypted; sessions carry the keyring (storage.secrets).
        self.keyring = Keyring.for_database(url, token_key)
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        # hide_parameters: statement errors and echo never log the bound values (titles,
        # names, search terms are personal data).
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False,
                                               info={SESSION_KEY: self.keyring})

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on error."""
        async with self.sessionmaker() as session:
            async with session.begin():
                yield session
            if session.info.get(CHECKPOINT_AFTER_COMMIT):
                await self.checkpoint()

    async def checkpoint(self) -> None:
        """SQLite: copy the WAL into the file and truncate it (after an erasure the WAL still
        holds the erased rows' old pages). Nothing to do on PostgreSQL (see the README)."""
        if self.dialect != "sqlite":
            return
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    async def create_all(self) -> None:
        """Create every table (tests); production uses Alembic migrations."""
        from storage import supporter_counts
        from storage.models import Base

        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.run_sync(supporter_counts.install)

    async def drop_all(self) -> None:
        from storage.models import Base

        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)

    async def dispose(self) -> None:
        await self.engine.dispose()
