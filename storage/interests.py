"""The interests offered per chapter and the tags they set: the queries
(rules: campaigns/interests.py)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from storage.chapters import AREA_SEP
from storage.db import upsert_insert
from storage.models import Chapter, Interest, SupporterTag


async def replace(session: AsyncSession, chapter_id: int | None, names: Sequence[str]) -> None:
    """The list of one chapter (None: everyone's), replaced as a whole, in the order given.

    A name taken off the list stays as a `retired` row (`withdrawn`), so that people who
    chose it can still see and drop it; listed again, it is offered again."""
    where = _of(chapter_id)
    was: dict[str, bool] = {name: retired for name, retired in (await session.execute(
        select(Interest.name, Interest.retired).where(where))).all()}
    await session.execute(delete(Interest).where(
        where, or_(Interest.retired.is_(False), Interest.name.in_(list(names)))))
    rows = [{"chapter_id": chapter_id, "name": name, "position": i, "retired": False}
            for i, name in enumerate(names)]
    rows += [{"chapter_id": chapter_id, "name": name, "position": 0, "retired": True}
             for name, retired in was.items() if not retired and name not in names]
    if rows:
        await session.execute(insert(Interest), rows)


def _of(chapter_id: int | None) -> ColumnElement[bool]:
    return (Interest.chapter_id == chapter_id if chapter_id is not None
            else Interest.chapter_id.is_(None))


async def listed(session: AsyncSession, chapter_id: int | None) -> list[str]:
    return list((await session.execute(
        select(Interest.name).where(_of(chapter_id), Interest.retired.is_(False))
        .order_by(Interest.position, Interest.id))).scalars())


async def _chapters_of(session: AsyncSession, region: str | None, bot_id: int,
                       district: str | None = None) -> list[int]:
    """The chapters covering `region` (a whole province, or the person's district of it)
    or speaking through `bot_id` (chapters are few: their area lists are read here)."""
    mine = {region, f"{region}{AREA_SEP}{district}"} if region is not None else set()
    return [c.id for c in (await session.execute(select(Chapter))).scalars()
            if mine & set(c.regions or []) or c.bot_id == bot_id]


async def offered(session: AsyncSession, region: str | None, bot_id: int,
                  district: str | None = None) -> list[Interest]:
    """Everyone's interests, then those of the chapters covering `region` or speaking
    through `bot_id`."""
    chapter_ids = await _chapters_of(session, region, bot_id, district)
    rows = (await session.execute(
        select(Interest).where(or_(Interest.chapter_id.is_(None),
                                   Interest.chapter_id.in_(chapter_ids)),
                               Interest.retired.is_(False))
        .order_by(Interest.chapter_id.is_not(None), Interest.chapter_id, Interest.position,
                  Interest.id))).scalars()
    return list(rows)


async def withdrawn(session: AsyncSession, supporter_id: int, region: str | None,
                    bot_id: int, district: str | None = None) -> list[Interest]:
    """The interests of those same lists that were taken off them and that this person
    still has as a tag (one row per name)."""
    chapter_ids = await _chapters_of(session, region, bot_id, district)
    rows = (await session.execute(
        select(Interest).join(SupporterTag, SupporterTag.tag == Interest.name)
        .where(SupporterTag.supporter_id == supporter_id, Interest.retired.is_(True),
               or_(Interest.chapter_id.is_(None), Interest.chapter_id.in_(chapter_ids)))
        .order_by(Interest.name, Interest.id))).scalars()
    first: dict[str, Interest] = {}
    for row in rows:
        first.setdefault(row.name, row)
    return list(first.values())


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
