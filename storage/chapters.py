"""Chapters and their organisers: the queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, false, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ApiToken, Chapter, ChapterOrganiser, Organiser, Supporter

# An area is a province code ("seoul") or a district within one ("gyeonggi/goyang").
AREA_SEP = "/"


def in_areas(areas: Iterable[str], region: Any = None, district: Any = None) -> Any:
    """THE condition that keeps a query to a scoped organiser's areas.

    Every scope filter goes through here (supporter lists, exports, audiences, figures),
    so a chapter covering a district is never widened to its whole province by a query
    that only looked at the region. `region`/`district` default to the supporter's
    columns; no areas at all matches nothing (a scope is never "everyone" by accident).
    """
    region = Supporter.region if region is None else region
    district = Supporter.district if district is None else district
    whole: list[str] = []
    parts: dict[str, list[str]] = {}
    for area in areas:
        province, sep, town = area.partition(AREA_SEP)
        if sep:
            parts.setdefault(province, []).append(town)
        else:
            whole.append(province)
    conds: list[Any] = [region.in_(sorted(whole))] if whole else []
    conds += [and_(region == province, district.in_(sorted(towns)))
              for province, towns in sorted(parts.items()) if province not in whole]
    return or_(*conds) if conds else false()


def keep_to(query: Any, areas: Sequence[str] | None, rows: Any = None) -> Any:
    """`query` (over `rows`: a table with `region` copied at the time and `supporter_id`,
    e.g. signatures, answers, RSVPs) kept to `areas` by `in_areas`: the row's region,
    the linked person's district now (an unlinked row counts for whole provinces only).
    None: no scope (national)."""
    if areas is None:
        return query
    if rows is None:
        return query.where(in_areas(areas))
    return query.outerjoin(Supporter, Supporter.id == rows.supporter_id).where(
        in_areas(areas, rows.region, Supporter.district))


def area_of(areas: Iterable[str], region: Any = None, district: Any = None) -> Any:
    """The area (of `areas`) a row falls in, as SQL: for figures per area of a chapter.
    Rows outside every area get NULL; filter with `in_areas` as well."""
    region = Supporter.region if region is None else region
    district = Supporter.district if district is None else district
    whole = sorted(a for a in areas if AREA_SEP not in a)
    towns = sorted(a for a in areas if AREA_SEP in a and a.partition(AREA_SEP)[0] not in whole)
    whens: list[Any] = [(region == a, literal(a)) for a in whole]
    whens += [(and_(region == a.partition(AREA_SEP)[0], district == a.partition(AREA_SEP)[2]),
               literal(a)) for a in towns]
    return case(*whens, else_=None) if whens else literal(None)


async def find(session: AsyncSession, name: str) -> Chapter | None:
    return (await session.execute(select(Chapter).where(Chapter.name == name))).scalar_one_or_none()


async def create(session: AsyncSession, *, name: str, title: str | None, regions: list[str],
                 bot_id: int | None, now: datetime) -> Chapter:
    chapter = Chapter(name=name, title=title, regions=regions, bot_id=bot_id, created_at=now)
    session.add(chapter)
    await session.flush()
    return chapter


async def all_chapters(session: AsyncSession) -> list[Chapter]:
    return list((await session.execute(select(Chapter).order_by(Chapter.name))).scalars())


async def organiser_by_name(session: AsyncSession, who: str) -> Organiser | None:
    """An organiser by dashboard login, Telegram user id or numeric id."""
    conds = [Organiser.login == who, Organiser.telegram_user_id == who]
    if who.isdigit():
        conds.append(Organiser.id == int(who))
    return (await session.execute(
        select(Organiser).where(or_(*conds)).order_by(Organiser.id).limit(1)
    )).scalar_one_or_none()


async def token_creator(session: AsyncSession, token_id: int) -> str | None:
    """Who created an API token (an actor string): the token acts within their scope."""
    token = await session.get(ApiToken, token_id)
    return token.created_by if token is not None else None


async def add_organiser(session: AsyncSession, chapter_id: int, organiser_id: int) -> None:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(insert(ChapterOrganiser).values(
        chapter_id=chapter_id, organiser_id=organiser_id).on_conflict_do_nothing())


async def chapters_of(session: AsyncSession, organiser_id: int) -> list[Chapter]:
    return list((await session.execute(
        select(Chapter).join(ChapterOrganiser, ChapterOrganiser.chapter_id == Chapter.id)
        .where(ChapterOrganiser.organiser_id == organiser_id).order_by(Chapter.name)
    )).scalars())


async def organisers_of(session: AsyncSession, chapter_id: int) -> list[int]:
    return list((await session.execute(
        select(ChapterOrganiser.organiser_id).where(ChapterOrganiser.chapter_id == chapter_id)
        .order_by(ChapterOrganiser.organiser_id)
    )).scalars())
