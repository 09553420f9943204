"""/people: supporters as OSDI people (erased people are never listed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request

from campaigns import api as rules
from campaigns import chapters
from storage import api as store
from storage.models import Supporter
from web.api.routes.common import (
    PREFIX,
    After,
    PageNo,
    PerPage,
    Read,
    RowId,
    database,
    href,
    iso,
    paged,
)

router = APIRouter(prefix=PREFIX, tags=["api"])


def split_name(display_name: str | None) -> tuple[str | None, str | None]:
    """(given_name, family_name). Only a space tells them apart: a Korean name written
    together ("홍길동") stays whole in given_name, since surnames have one or two syllables."""
    if not display_name or not display_name.strip():
        return None, None
    parts = display_name.split()
    if len(parts) == 1:
        return parts[0], None
    if any("\uac00" <= ch <= "\ud7a3" for ch in parts[0]):
        return " ".join(parts[1:]), parts[0]  # Korean order: family name first
    return " ".join(parts[:-1]), parts[-1]


def person_json(request: Request, s: Supporter, tags: list[str]) -> dict[str, Any]:
    given, family = split_name(s.display_name)
    return {
        "identifiers": [f"nalgae:{s.id}"],
        "id": s.id,
        "given_name": given,
        "family_name": family,
        "languages_spoken": [s.language],
        # OSDI's locality is the 시/군/구 (a code of campaigns.regions.DISTRICTS).
        "postal_addresses": [{"region": s.region, **({"locality": s.district} if s.district
                                                     else {}), "country": "KR"}]
        if s.region else [],
        "email_addresses": [],
        "custom_fields": {"tier": s.tier, "tags": tags},
        "status": s.status,
        "created_date": iso(s.created_at),
        "modified_date": iso(s.updated_at),
        "_links": {"self": href(request, f"/people/{s.id}")},
    }



@router.get("/people", summary="People (supporters; erased people are never listed)")
async def list_people(request: Request, token: Read, page: PageNo = 1,
                      per_page: PerPage = 25, after: After = None) -> dict[str, Any]:
    tags: dict[int, list[str]] = {}
    async with database(request).session() as session:
        scope = await chapters.scope_of_actor(session, token.created_by)

    async def load_tags(session: Any, rows: Sequence[Supporter]) -> None:
        tags.update(await store.tags_of(session, [s.id for s in rows]))

    return await paged(request, store.people_query(scope.region_filter), page, per_page,
                       "osdi:people",
                       lambda s: person_json(request, s, tags.get(s.id, [])), load_tags,
                       after=after, keyset=Supporter.id)


@router.get("/people/{person_id}", summary="One person")
async def get_person(request: Request, token: Read, person_id: RowId) -> dict[str, Any]:
    async with database(request).session() as session:
        s = await store.person(session, person_id)
        if s is None:
            raise rules.NotFound(f"no person {person_id}")
        scope = await chapters.scope_of_actor(session, token.created_by)
    if not scope.covers(s.region, s.district):
        raise await chapters.refuse(database(request), request.app.state.clock,
                                    actor=rules.actor(token), what=f"supporter:{s.id}")
    async with database(request).session() as session:
        tags = (await store.tags_of(session, [s.id])).get(s.id, [])
    return person_json(request, s, tags)
