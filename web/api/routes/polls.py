"""/polls (OSDI questions): list, read, create, close; answers of open ballots; results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from campaigns import api as rules
from campaigns import polls
from storage import api as store
from storage.models import Poll, PollAnswer
from web.api.errors import ApiProblem
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
    scope_of,
)
from web.api.schemas import MAX_ID, PollIn

router = APIRouter(prefix=PREFIX, tags=["api"])


def poll_json(request: Request, p: Poll) -> dict[str, Any]:
    return {
        "identifiers": [f"nalgae:{p.id}"],
        "id": p.id,
        "name": p.slug,
        "title": p.question_ko,
        "title_en": p.question_en,
        "question_type": p.kind,
        "responses": [{"key": str(i), "name": o["ko"], "title": o["ko"],
                       "title_en": o.get("en") or o["ko"]} for i, o in enumerate(p.options)],
        "weights": p.weights,
        "secret": p.secret,
        "allow_change": p.allow_change,
        "eligible_tier": p.eligible_tier,
        "eligible_region": p.eligible_region,
        "status": p.status,
        "closes_at": iso(p.closes_at),
        "created_date": iso(p.created_at),
        "modified_date": iso(p.updated_at),
        "_links": {"self": href(request, f"/polls/{p.id}"),
                   "osdi:answers": href(request, f"/polls/{p.id}/answers"),
                   "nalgae:results": href(request, f"/polls/{p.id}/results")},
    }


def answer_json(request: Request, a: PollAnswer, *, identities: bool = False,
                ) -> dict[str, Any]:
    """An answer; its person only for an identities token (and never once erased)."""
    links: dict[str, Any] = {"osdi:question": href(request, f"/polls/{a.poll_id}")}
    if identities and a.supporter_id is not None:
        links["osdi:person"] = href(request, f"/people/{a.supporter_id}")
    return {
        "identifiers": [f"nalgae:{a.id}"],
        "id": a.id,
        "responses": [str(c) for c in polls.parse_choices(a.choices)],
        "tier": a.tier,
        "weight": a.weight,
        "created_date": iso(a.answered_at),
        "modified_date": iso(a.changed_at or a.answered_at),
        "_links": links,
    }



@router.get("/polls", summary="Polls (OSDI questions)")
async def list_polls(request: Request, token: Read, page: PageNo = 1,
                     per_page: PerPage = 25,
                     campaign_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                     ) -> dict[str, Any]:
    return await paged(request, store.polls_query(campaign_id), page, per_page,
                        "osdi:questions", lambda p: poll_json(request, p))


@router.get("/polls/{poll_id}", summary="One poll")
async def get_poll(request: Request, token: Read, poll_id: RowId) -> dict[str, Any]:
    return poll_json(request, await get_row(request, Poll, poll_id, "poll"))


@router.post("/polls", status_code=201, summary="Create a poll (open unless status=draft)")
async def create_poll(request: Request, token: Write, body: PollIn) -> dict[str, Any]:
    await national_only(request, token, "poll.create")
    async with database(request).session() as session:
        p = await polls.create_poll(
            session, campaign_slug=body.campaign, slug=body.slug,
            question_ko=body.question_ko, question_en=body.question_en, kind=body.kind,
            options=[(o.ko, o.en) for o in body.options],
            weights={str(k): v for k, v in body.weights.items()} if body.weights else None,
            eligible_tier=body.eligible_tier, eligible_region=body.eligible_region,
            secret=body.secret, allow_change=body.allow_change, native=body.native,
            closes_at=body.closes_at, status=body.status, clock=clock_of(request),
            actor=rules.actor(token))
    return poll_json(request, p)


@router.post("/polls/{poll_id}/close", summary="Close a poll")
async def close_poll(request: Request, token: Write, poll_id: RowId) -> dict[str, Any]:
    p = await get_row(request, Poll, poll_id, "poll")
    await national_only(request, token, f"poll.close:{p.slug}")
    async with database(request).session() as session:
        p = await polls.close_poll(session, p.slug, actor=rules.actor(token),
                                   clock=clock_of(request))
    return poll_json(request, p)


@router.get("/polls/{poll_id}/answers", summary="Answers of an open (not secret) poll")
async def list_answers(request: Request, token: Read, poll_id: RowId, page: PageNo = 1,
                       per_page: PerPage = 25) -> dict[str, Any]:
    p = await get_row(request, Poll, poll_id, "poll")
    if p.secret:
        raise ApiProblem(403, "secret_ballot",
                         "a secret ballot's answers are never listed; see its results")
    identities = rules.sees_identities(token)

    async def audit(session: Any, rows: Any) -> None:
        if identities:
            await rules.audit_identities(
                session, token, poll_id=poll_id, clock=clock_of(request),
                supporter_ids=[a.supporter_id for a in rows if a.supporter_id is not None])

    areas = (await scope_of(request, token)).region_filter  # a scoped token: its chapters
    return await paged(request, store.answers_query(poll_id, areas), page, per_page,
                        "osdi:answers", lambda a: answer_json(request, a, identities=identities),
                        extra=audit)


@router.get("/polls/{poll_id}/results",
       summary="Results, raw and weighted (exact decimals or fractions, as strings)")
async def poll_results(request: Request, token: Read, poll_id: RowId) -> dict[str, Any]:
    p = await get_row(request, Poll, poll_id, "poll")
    areas = (await scope_of(request, token)).region_filter
    async with database(request).session() as session:
        # A scoped token: its chapters' results (the national ones once published).
        result = await polls.summary(session, p.slug, areas=areas)
    return result  # small groups already withheld (polls.groups_json)
