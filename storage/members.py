"""Member codes (SQL only): stored as SHA-256 hashes, never in clear."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import MemberCode

CHUNK = 5000


async def insert_code_hashes(
    session: AsyncSession, hashes: Sequence[str], now: datetime
) -> set[str]:
    """Insert new code hashes in one statement; returns those stored (a clash is skipped)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stored: set[str] = set()
    # Chunked: SQLite and asyncpg both cap one statement at 32,767 parameters.
    for start in range(0, len(hashes), CHUNK):
        result = await session.execute(
            insert(MemberCode)
            .values([{"code_hash": h, "created_at": now} for h in hashes[start : start + CHUNK]])
            .on_conflict_do_nothing(index_elements=["code_hash"])
            .returning(MemberCode.code_hash)
        )
        stored.update(result.scalars())
    return stored


async def code_counts(session: AsyncSession) -> dict[str, int]:
    """How many codes were issued and how many redeemed."""
    issued, redeemed = (
        await session.execute(
            select(func.count(), func.count(MemberCode.redeemed_at)).select_from(MemberCode)
        )
    ).one()
    return {"issued": int(issued), "redeemed": int(redeemed)}
