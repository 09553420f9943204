"""The interests offered per chapter and the tags they set: the queries
(rules: campaigns/interests.py)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import upsert_insert
from storage.models import Chapter, Interest, SupporterTag


async def replace(session: AsyncSession, chapter_id: int | None, names: Sequence[str]) -> None:
    """The list of one chapter (None: everyone's), replaced as a whole, in the order given."""
    where = (Interest.chapter_id == chapter_id if chapter_id is not None
             else Interest.chapter_id.is_(None))
    await session.execute(delete(Interest).where(where))
    if names:
        await session.execute(insert(Interest), [
            {"chapter_id": chapter_id, "name": name, "position": i}
            for i, name in enumerate(names)])


async def listed(session: AsyncSession, chapter_id: int | None) -> list[str]:
    where = (Interest.chapter_id == chapter_id if chapter_id is not None
             else Interest.chapter_id.is_(None))
    return list((await session.execute(
        select(Interest.name).where(where).order_by(Interest.position, Interest.id))).scalars())


async def offered(session: AsyncSession, region: str | None, bot_id: int) -> list[Interest]:
    """Everyone's interests, then those of the chapters covering `region` or speaking
    through `bot_id` (chapters are few: their region lists are read here)."""
    chapter_ids = [c.id for c in (await session.execute(select(Chapter))).scalars()
                   if (region is not None and region in (c.regions or [])) or c.bot_id == bot_id]
    rows = (await session.execute(
        select(Interest).where(or_(Interest.chapter_id.is_(None),
                                   Interest.chapter_id.in_(chapter_ids)))
        .order_by(Interest.chapter_id.is_not(None), Interest.chapter_id, Interest.position,
                  Interest.id))).scalars()
    return list(rows)


async def has_tag(session: AsyncSession, supporter_id: int, tag: str) -> bool:
    return (await session.execute(select(SupporterTag.tag).where(
        SupporterTag.supporter_id == supporter_id, SupporterTag.tag == tag))).first() is not None


async def set_tag(session: AsyncSession, supporter_id: int, tag: str, on: bool) -> None:
    if on:
        await session.execute(upsert_insert(session, SupporterTag.__table__)
                              .values(supporter_id=supporter_id, tag=tag)
                              .on_conflict_do_nothing())
    else:
        await session.execute(delete(SupporterTag).where(
            SupporterTag.supporter_id == supporter_id, SupporterTag.tag == tag))
