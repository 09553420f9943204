"""/ideas: ideas supporters proposed, with their backs and answers (never who proposed or
backed them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from campaigns import ideas
from storage import ideas as store
from storage.models import Idea
from web.api.routes.common import (
    PREFIX,
    PageNo,
    PerPage,
    Read,
    RowId,
    database,
    get_row,
    href,
    iso,
    paged,
)
from web.api.schemas import MAX_ID

router = APIRouter(prefix=PREFIX, tags=["api"])
Status = Literal["pending", "approved", "rejected", "answered"]


def idea_json(request: Request, i: Idea) -> dict[str, Any]:
    return {
        "identifiers": [f"nalgae:{i.id}"],
        "id": i.id,
        "campaign_id": i.campaign_id,
        "title": i.title,
        "description": i.body,
        "status": i.status,
        "backs": i.back_count,
        "threshold_reached_date": iso(i.threshold_reached_at),
        "answer": i.answer,
        "answer_text": i.answer_text,
        "answered_date": iso(i.answered_at),
        "created_date": iso(i.created_at),
        "modified_date": iso(i.updated_at),
        "_links": {"self": href(request, f"/ideas/{i.id}")},
    }


@router.get("/ideas", summary="Ideas (published ones unless status is given)")
async def list_ideas(request: Request, token: Read, page: PageNo = 1, per_page: PerPage = 25,
                     campaign_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                     status: Status | None = None) -> dict[str, Any]:
    statuses = (status,) if status else ideas.PUBLIC
    return await paged(request, store.ideas_query(campaign_id, statuses), page, per_page,
                        "nalgae:ideas", lambda i: idea_json(request, i))


@router.get("/ideas/{idea_id}", summary="One idea, with backs by tier and region")
async def get_idea(request: Request, token: Read, idea_id: RowId) -> dict[str, Any]:
    i = await get_row(request, Idea, idea_id, "idea")
    async with database(request).session() as session:
        counts = await store.back_counts(session, i.id)
    return {**idea_json(request, i), **counts}
