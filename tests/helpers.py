"""Small shared test helpers (no fakes of our own store)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from storage.db import Database
from storage.models import Base, Bot


async def make_bot(db: Database, now: datetime, token: str | None = None,
                   base_url: str | None = None) -> int:
    async with db.session() as s:
        bot = Bot(channel="telegram", name="default", token=token, base_url=base_url,
                  created_at=now)
        s.add(bot)
        await s.flush()
        return bot.id


async def dump_all(db: Database) -> list[tuple[str, dict[str, Any]]]:
    """Every row of every table, for scans such as 'is this person gone everywhere?'."""
    out: list[tuple[str, dict[str, Any]]] = []
    async with db.session() as s:
        for table in Base.metadata.sorted_tables:
            for row in (await s.execute(select(table))).mappings():
                out.append((table.name, dict(row)))
    return out


async def find_anywhere(db: Database, needles: list[str]) -> list[str]:
    """Table.column places where any needle appears in any value (as text)."""
    hits = []
    for table, row in await dump_all(db):
        for column, value in row.items():
            if value is None:
                continue
            text = str(value)
            for needle in needles:
                if needle and needle in text:
                    hits.append(f"{table}.{column} contains {needle!r}")
    return hits
