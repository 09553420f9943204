"""/petitions: list, read with the live count, create, open, close."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from campaigns import api as rules
from campaigns import chapters, petitions
from storage import api as store
from storage import petitions as petition_store
from storage.models import Petition
from web.api.routes.common import (
    PREFIX,
    PageNo,
    PerPage,
    Read,
    RowId,
    Write,
    clock_of,
    database,
    get_row,
    href,
    iso,
    national_only,
    paged,
)
from web.api.schemas import MAX_ID, PetitionIn

router = APIRouter(prefix=PREFIX, tags=["api"])


def petition_json(request: Request, p: Petition, count: int | None = None) -> dict[str, Any]:
    return {
        "identifiers": [f"nalgae:{p.id}"],
        "id": p.id,
        "name": p.slug,
        "title": p.title_ko,
        "title_en": p.title_en,
        "description": p.body_ko,
        "description_en": p.body_en,
        "status": p.status,
        "total_signatures": p.signature_count if count is None else count,
        "milestones": p.milestones,
        "opens_at": iso(p.opens_at),
        "closes_at": iso(p.closes_at),
        "created_date": iso(p.created_at),
        "modified_date": iso(p.updated_at),
        "_links": {"self": href(request, f"/petitions/{p.id}"),
                   "osdi:signatures": href(request, f"/petitions/{p.id}/signatures"),
                   "nalgae:campaign": href(request, f"/campaigns/{p.campaign_id}")},
    }



@router.get("/petitions", summary="Petitions")
async def list_petitions(request: Request, token: Read, page: PageNo = 1,
                         per_page: PerPage = 25,
                         campaign_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                         ) -> dict[str, Any]:
    return await paged(request, store.petitions_query(campaign_id), page, per_page,
                        "osdi:petitions", lambda p: petition_json(request, p))


@router.get("/petitions/{petition_id}", summary="One petition, with its live count")
async def get_petition(request: Request, token: Read, petition_id: RowId
                       ) -> dict[str, Any]:
    async with database(request).session() as session:
        p = await petition_store.petition_by_id(session, petition_id)
        if p is None:
            raise rules.NotFound(f"no petition {petition_id}")
        count = await petitions.live_count(session, p)
        scope = await chapters.scope_of_actor(session, rules.actor(token))
        if scope.national:
            by_region = await petition_store.counts_by_region(session, p.id)
        else:  # a scoped token: its chapters' areas; the national count only once public
            by_region = await chapters.petition_figures(session, p.id, scope)
            if not chapters.petition_total_public(p.status):
                count = sum(by_region.values())
    out = petition_json(request, p, count)
    out["by_region"] = by_region
    return out


@router.post("/petitions", status_code=201, summary="Create a petition (a draft unless open)")
async def create_petition(request: Request, token: Write, body: PetitionIn
                          ) -> dict[str, Any]:
    clock, actor = clock_of(request), rules.actor(token)
    await national_only(request, token, "petition.create")
    async with database(request).session() as session:
        p = await petitions.create_petition(
            session, campaign_slug=body.campaign, slug=body.slug, title_ko=body.title_ko,
            title_en=body.title_en, body_ko=body.body_ko, body_en=body.body_en,
            opens_at=body.opens_at, closes_at=body.closes_at, milestones=body.milestones,
            clock=clock, actor=actor)
        if body.open:
            p = await petitions.open_petition(session, p.slug, actor=actor, clock=clock)
    return petition_json(request, p)


@router.post("/petitions/{petition_id}/open", summary="Open a draft petition")
async def open_petition(request: Request, token: Write, petition_id: RowId
                        ) -> dict[str, Any]:
    p = await get_row(request, Petition, petition_id, "petition")
    await national_only(request, token, f"petition.open:{p.slug}")
    async with database(request).session() as session:
        p = await petitions.open_petition(session, p.slug, actor=rules.actor(token),
                                          clock=clock_of(request))
    return petition_json(request, p)


@router.post("/petitions/{petition_id}/close", summary="Close a petition")
async def close_petition(request: Request, token: Write, petition_id: RowId
                         ) -> dict[str, Any]:
    p = await get_row(request, Petition, petition_id, "petition")
    await national_only(request, token, f"petition.close:{p.slug}")
    async with database(request).session() as session:
        p = await petitions.close_petition(session, p.slug, actor=rules.actor(token),
                                           clock=clock_of(request))
    return petition_json(request, p)
