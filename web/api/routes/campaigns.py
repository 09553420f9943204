"""/campaigns: list, read, create."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from campaigns import api as rules
from campaigns import petitions
from storage import api as store
from storage.models import Campaign
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
from web.api.schemas import CampaignIn

router = APIRouter(prefix=PREFIX, tags=["api"])


def campaign_json(request: Request, c: Campaign) -> dict[str, Any]:
    return {
        "identifiers": [f"nalgae:{c.id}"],
        "id": c.id,
        "name": c.slug,
        "title": c.title_ko,
        "title_en": c.title_en,
        "description": c.description_ko,
        "description_en": c.description_en,
        "status": c.status,
        "start_date": iso(c.starts_at),
        "end_date": iso(c.ends_at),
        "created_date": iso(c.created_at),
        "_links": {"self": href(request, f"/campaigns/{c.id}"),
                   "osdi:petitions": href(request, f"/petitions?campaign_id={c.id}"),
                   "nalgae:polls": href(request, f"/polls?campaign_id={c.id}")},
    }



@router.get("/campaigns", summary="Campaigns")
async def list_campaigns(request: Request, token: Read, page: PageNo = 1,
                         per_page: PerPage = 25) -> dict[str, Any]:
    return await paged(request, store.campaigns_query(), page, per_page,
                        "nalgae:campaigns", lambda c: campaign_json(request, c))


@router.get("/campaigns/{campaign_id}", summary="One campaign")
async def get_campaign(request: Request, token: Read, campaign_id: RowId) -> dict[str, Any]:
    return campaign_json(request, await get_row(request, Campaign, campaign_id, "campaign"))


@router.post("/campaigns", status_code=201, summary="Create a campaign")
async def create_campaign(request: Request, token: Write, body: CampaignIn
                          ) -> dict[str, Any]:
    await national_only(request, token, "campaign.create")
    async with database(request).session() as session:
        c = await petitions.create_campaign(
            session, slug=body.slug, title_ko=body.title_ko, title_en=body.title_en,
            description_ko=body.description_ko, description_en=body.description_en,
            starts_at=body.starts_at, ends_at=body.ends_at, status=body.status,
            clock=clock_of(request), actor=rules.actor(token))
    return campaign_json(request, c)
