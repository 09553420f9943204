"""Alembic environment for nalgae's async engines (aiosqlite, asyncpg).

Normally `storage.migrate` hands us an open connection in
``config.attributes["connection"]`` (so migrations run inside the caller's
event loop and engine). Without one (the plain `alembic` command with a
``sqlalchemy.url``), we build a throwaway async engine ourselves.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import storage.models
from storage.migrations.options import comparison_options, render_item

config = context.config
target_metadata = storage.models.Base.metadata


def configure_options(connection: Connection) -> dict[str, Any]:
    # SQLite cannot ALTER most things; batch mode recreates the table instead.
    # regenerate.py turns it off: the initial migration only creates tables.
    batch = config.attributes.get("render_as_batch", connection.dialect.name == "sqlite")
    return {"target_metadata": target_metadata, "render_as_batch": batch, **comparison_options()}


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, **configure_options(connection))
    with context.begin_transaction():
        context.run_migrations()


async def run_with_own_engine(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
elif (shared := config.attributes.get("connection")) is not None:
    do_run_migrations(shared)
else:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection given and no sqlalchemy.url configured")
    # An async driver URL (sqlite+aiosqlite://, postgresql+asyncpg://), as Database takes.
    asyncio.run(run_with_own_engine(url))
