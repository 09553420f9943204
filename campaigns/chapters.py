"""Regional chapters and what a scoped organiser may see.

An organiser with no chapter is national (as before chapters existed). An organiser
named as an organiser of one or more chapters is scoped: they see, export and
broadcast to the supporters of those chapters' areas (provinces or districts) only,
and figures of them. Every path (dashboard, API tokens, CLI `--as`, Telegram organiser
commands) asks `scope_of` and passes `Scope.region_filter` to storage, which filters
with `storage.chapters.in_areas` alone; a request outside the scope is refused and
audited (`scope.refused`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.clock import Clock
from campaigns.errors import Conflict, NotFound, RuleError
from campaigns.regions import REGIONS, district_name, parse_district, parse_region, region_name
from storage import bots as bot_store
from storage import chapters as store
from storage import petitions as petition_store
from storage import supporters as supporter_store
from storage.chapters import AREA_SEP
from storage.db import Database

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Scope:
    """What one organiser may see: everything (national) or the areas of their chapters.

    An area is a province code ("seoul") or a district in one ("gyeonggi/goyang");
    storage filters on them with `storage.chapters.in_areas` only."""

    national: bool
    regions: frozenset[str] = frozenset()  # the areas (kept as "regions" for the callers)
    chapters: tuple[str, ...] = ()

    @property
    def region_filter(self) -> list[str] | None:
        """None for a national organiser, else the areas a query must keep to."""
        return None if self.national else sorted(self.regions)

    @property
    def provinces(self) -> frozenset[str]:
        """The provinces the areas lie in (a district chapter's province included)."""
        return frozenset(a.partition(AREA_SEP)[0] for a in self.regions)

    def covers(self, region: str | None, district: str | None = None) -> bool:
        """Whether a person (or a figure) of this province and district is in scope."""
        if self.national:
            return True
        if region is None:
            return False
        return region in self.regions or (
            district is not None and f"{region}{AREA_SEP}{district}" in self.regions)

    def touches(self, region: str | None) -> bool:
        """Whether any of the areas lies in this province (a filter by region may narrow
        to it; the areas still apply)."""
        return self.national or region in self.provinces


NATIONAL = Scope(national=True)


class OutOfScope(RuleError):
    """A scoped organiser asked for people outside their chapters."""

    code: ClassVar[str] = "forbidden"


async def scope_of(session: AsyncSession, organiser_id: int | None) -> Scope:
    if organiser_id is None:
        return NATIONAL
    chapters = await store.chapters_of(session, organiser_id)
    if not chapters:
        return NATIONAL
    regions = frozenset(r for c in chapters for r in c.regions)
    return Scope(national=False, regions=regions, chapters=tuple(c.name for c in chapters))


async def scope_of_actor(session: AsyncSession, actor: str) -> Scope:
    """The scope of an actor string: "organiser:3", "cli" (national), or "api_token:2"
    (the scope of whoever created the token)."""
    token = re.fullmatch(r"api_token:(\d+)", actor)
    if token:
        actor = await store.token_creator(session, int(token.group(1))) or ""
    match = re.fullmatch(r"organiser:(\d+)", actor)
    return await scope_of(session, int(match.group(1)) if match else None)


async def refuse(db: Database, clock: Clock, *, actor: str, what: str,
                 details: dict[str, Any] | None = None) -> OutOfScope:
    """Audit a refusal (in its own transaction: the refused one is rolled back) and
    return the error to raise."""
    async with db.session() as session:
        return await refused_here(session, clock, actor=actor, what=what, details=details)


def limit_audience(scope: Scope, audience: dict[str, list[str]]) -> dict[str, list[str]] | None:
    """A scoped organiser's audience kept to their areas (`chapter_areas`, applied by the
    outbox query through `storage.chapters.in_areas`); None when it asks for a region
    outside them."""
    if scope.national:
        return audience
    asked = audience.get("region")
    if asked and not all(scope.touches(r) for r in asked):
        return None
    return {**audience, "region": list(asked) if asked else sorted(scope.provinces),
            "chapter_areas": sorted(scope.regions)}


async def acting_as(session: AsyncSession, who: str | None) -> tuple[str, Scope]:
    """(actor, scope) for the CLI's `--as ORGANISER` (login, Telegram id or id); none: cli."""
    if not who:
        return "cli", NATIONAL
    organiser = await store.organiser_by_name(session, who)
    if organiser is None:
        raise NotFound("no organiser {who}", who=who)
    return f"organiser:{organiser.id}", await scope_of(session, organiser.id)


def parse_area(value: str) -> str | None:
    """An area from what an organiser types: a province (서울, seoul), a district under
    its province (경기/고양시, gyeonggi:goyang, 경기 고양) or a district alone when only one
    province has it (고양시); None if unknown."""
    text = value.strip()
    for sep in (AREA_SEP, ":"):
        if sep in text:
            head, _sep, tail = text.partition(sep)
            province = parse_region(head)
            town = parse_district(province, tail) if province else None
            return f"{province}{AREA_SEP}{town}" if town else None
    province = parse_region(text)
    if province is not None:
        return province
    words = text.split()
    if len(words) > 1 and (province := parse_region(words[0])) is not None:
        town = parse_district(province, " ".join(words[1:]))
        return f"{province}{AREA_SEP}{town}" if town else None
    found = {f"{code}{AREA_SEP}{town}" for code, _ko, _en in REGIONS
             if (town := parse_district(code, text))}
    return found.pop() if len(found) == 1 else None


def _regions(values: list[str]) -> list[str]:
    codes: list[str] = []
    for value in values:
        code = parse_area(value)
        if code is None:
            raise RuleError("unknown region {region}", region=value)
        if code not in codes:
            codes.append(code)
    if not codes:
        raise RuleError("a chapter covers at least one region")
    return codes


async def create(session: AsyncSession, clock: Clock, *, name: str, regions: list[str],
                 title: str | None = None, bot: str | None = None,
                 by: str = "cli") -> dict[str, Any]:
    if not NAME_RE.match(name):
        raise RuleError("a chapter name is lower-case letters, digits, - or _ (up to 64)")
    codes = _regions(regions)
    bot_id = None
    if bot:
        row = await bot_store.find_bot(session, "telegram", bot)
        if row is None:
            raise NotFound("no bot named {name}", name=bot)
        bot_id = row.id
    if await store.find(session, name) is not None:
        raise Conflict("there is already a chapter named {name}", name=name)
    chapter = await store.create(session, name=name, title=title, regions=codes,
                                 bot_id=bot_id, now=clock.now())
    await supporter_store.audit(session, actor=by, action="chapter.created",
                                target=f"chapter:{chapter.id}", now=clock.now())
    return {"id": chapter.id, "name": name, "title": title, "regions": codes, "bot": bot,
            "organisers": []}


async def assign(session: AsyncSession, clock: Clock, *, chapter: str, organiser: str,
                 by: str = "cli") -> dict[str, Any]:
    """Scope `organiser` (login, Telegram user id or id) to `chapter` (besides any other)."""
    row = await store.find(session, chapter)
    if row is None:
        raise NotFound("no chapter named {name}", name=chapter)
    who = await store.organiser_by_name(session, organiser)
    if who is None:
        raise NotFound("no organiser {who}", who=organiser)
    await store.add_organiser(session, row.id, who.id)
    await supporter_store.audit(session, actor=by, action="chapter.organiser_added",
                                target=f"organiser:{who.id}", now=clock.now(),
                                details={"chapter": row.id})
    return {"chapter": row.name, "organiser": who.id}


async def listing(session: AsyncSession) -> list[dict[str, Any]]:
    out = []
    for c in await store.all_chapters(session):
        out.append({"id": c.id, "name": c.name, "title": c.title, "regions": list(c.regions),
                    "bot_id": c.bot_id, "organisers": await store.organisers_of(session, c.id)})
    return out


# --- what a scoped organiser may do with national petitions, polls, events, surveys ----------
#
# Petitions, polls, events and surveys are national objects (they have no chapter). A
# scoped organiser sees their chapter's figures and rows of them, and the national total
# only where it is public anyway (a petition's count once it is open, a poll's results
# once it has closed: the public pages show both). Creating, opening, closing, editing
# and invalidating them are national decisions: a scoped organiser is refused, audited.

async def require_national(db: Database, clock: Clock, *, actor: str, what: str) -> None:
    """Raise OutOfScope (audited) unless `actor` is national (the CLI without --as is)."""
    async with db.session() as session:
        scope = await scope_of_actor(session, actor)
    if not scope.national:
        raise await refuse(db, clock, actor=actor, what=what)


async def refused_here(session: AsyncSession, clock: Clock, *, actor: str, what: str,
                       details: dict[str, Any] | None = None) -> OutOfScope:
    """Audit a refusal in the caller's transaction (which commits: a Telegram command
    answers with the refusal instead of raising) and return the error."""
    await supporter_store.audit(session, actor=actor, action="scope.refused", target=what,
                                now=clock.now(), details=details)
    return OutOfScope("that is outside your chapters")


def petition_total_public(status: str) -> bool:
    """A petition's national count is public from the moment it opens (its public page)."""
    return status != "draft"


def poll_results_public(status: str) -> bool:
    """A poll's results are published once it has closed (its public page, /results)."""
    return status == "closed"


async def petition_figures(session: AsyncSession, petition_id: int,
                           scope: Scope) -> dict[str, int]:
    """Signatures per area of the scope (valid ones, pending included)."""
    if scope.national:
        return {}
    return await petition_store.signatures_by_area(session, petition_id,
                                                   sorted(scope.regions))


async def chapter_scope(session: AsyncSession, name: str) -> Scope:
    """The scope of one chapter, as if its organiser looked (for its page)."""
    row = await store.find(session, name)
    if row is None:
        raise NotFound("no chapter named {name}", name=name)
    return Scope(national=False, regions=frozenset(row.regions), chapters=(row.name,))


def area_name(area: str, lang: str) -> str:
    """경기 고양시 / Goyang, Gyeonggi; 서울 / Seoul."""
    province, sep, town = area.partition(AREA_SEP)
    if not sep:
        return region_name(province, lang)
    if lang == "ko":
        return f"{region_name(province, 'ko')} {district_name(province, town, 'ko')}"
    return f"{district_name(province, town, 'en')}, {region_name(province, 'en')}"
