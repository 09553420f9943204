"""The JSON resources under /api/v1, named and shaped after OSDI where OSDI has a name.

Collections are HAL-ish as in OSDI: ``{"total_records", "total_pages", "page",
"per_page", "_links": {"self", "next", "prev"}, "_embedded": {"osdi:people": [...]}}``.
Handlers are thin: parse, call one rule in campaigns/, shape the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy import Select

from campaigns import api as rules
from campaigns import audience as audiences
from campaigns import broadcasts, petitions, polls
from campaigns.clock import Clock
from campaigns.settings import Settings
from storage import api as store
from storage import bots
from storage import petitions as petition_store
from storage.db import Database
from storage.models import (
    ApiToken,
    Broadcast,
    Campaign,
    Petition,
    Poll,
    PollAnswer,
    Signature,
    Supporter,
)
from web.api import auth
from web.api.errors import ApiProblem
from web.api.schemas import (
    MAX_ID,
    BroadcastIn,
    CampaignIn,
    PetitionIn,
    PollIn,
    ScheduleIn,
    SignatureIn,
    Text,
)

PREFIX = "/api/v1"
Read = Annotated[ApiToken, Depends(auth.read)]
Write = Annotated[ApiToken, Depends(auth.write)]
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
PageNo = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number.")]
PerPage = Annotated[int, Query(ge=1, le=100, description="Items per page (at most 100).")]


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at else None


def _href(request: Request, path: str) -> dict[str, str]:
    return {"href": str(request.base_url).rstrip("/") + PREFIX + path}


async def _paged(
    request: Request, stmt: Select[Any], page: int, per_page: int, key: str,
    shape: Callable[[Any], dict[str, Any]],
    extra: Callable[[Any, Sequence[Any]], Any] | None = None,
) -> dict[str, Any]:
    async with _db(request).session() as session:
        total, rows = await store.page(session, stmt, offset=(page - 1) * per_page,
                                       limit=per_page)
        if extra is not None:
            await extra(session, rows)
    total_pages = max(1, -(-total // per_page))
    links: dict[str, Any] = {"self": {"href": str(request.url)}}
    if page < total_pages:
        links["next"] = {"href": str(request.url.include_query_params(page=page + 1,
                                                                      per_page=per_page))}
    if page > 1:
        links["prev"] = {"href": str(request.url.include_query_params(
            page=min(page - 1, total_pages), per_page=per_page))}
    return {
        "total_records": total,
        "total_pages": total_pages,
        "page": page,
        "per_page": per_page,
        "_links": links,
        "_embedded": {key: [shape(r) for r in rows]},
    }


async def _get(request: Request, model: Any, row_id: int, what: str) -> Any:
    async with _db(request).session() as session:
        row = await store.get(session, model, row_id)
    if row is None:
        raise rules.NotFound(f"no {what} {row_id}")
    return row


# --- shapes -----------------------------------------------------------------------------------

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
        "postal_addresses": [{"region": s.region, "country": "KR"}] if s.region else [],
        "email_addresses": [],
        "custom_fields": {"tier": s.tier, "tags": tags},
        "status": s.status,
        "created_date": _iso(s.created_at),
        "modified_date": _iso(s.updated_at),
        "_links": {"self": _href(request, f"/people/{s.id}")},
    }


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
        "start_date": _iso(c.starts_at),
        "end_date": _iso(c.ends_at),
        "created_date": _iso(c.created_at),
        "_links": {"self": _href(request, f"/campaigns/{c.id}"),
                   "osdi:petitions": _href(request, f"/petitions?campaign_id={c.id}"),
                   "nalgae:polls": _href(request, f"/polls?campaign_id={c.id}")},
    }


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
        "opens_at": _iso(p.opens_at),
        "closes_at": _iso(p.closes_at),
        "created_date": _iso(p.created_at),
        "modified_date": _iso(p.updated_at),
        "_links": {"self": _href(request, f"/petitions/{p.id}"),
                   "osdi:signatures": _href(request, f"/petitions/{p.id}/signatures"),
                   "nalgae:campaign": _href(request, f"/campaigns/{p.campaign_id}")},
    }


def signature_json(request: Request, s: Signature) -> dict[str, Any]:
    links: dict[str, Any] = {
        "self": _href(request, f"/petitions/{s.petition_id}/signatures/{s.id}"),
        "osdi:petition": _href(request, f"/petitions/{s.petition_id}"),
    }
    # An erased person's signature still counts but is linked to nobody.
    if s.supporter_id is not None:
        links["osdi:person"] = _href(request, f"/people/{s.supporter_id}")
    return {
        "identifiers": [f"nalgae:{s.id}"],
        "id": s.id,
        "created_date": _iso(s.created_at),
        "modified_date": _iso(s.invalidated_at or s.created_at),
        "valid": s.valid,
        "referrer_data": {"source": s.source_ref},
        "_links": links,
    }


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
        "closes_at": _iso(p.closes_at),
        "created_date": _iso(p.created_at),
        "modified_date": _iso(p.updated_at),
        "_links": {"self": _href(request, f"/polls/{p.id}"),
                   "osdi:answers": _href(request, f"/polls/{p.id}/answers"),
                   "nalgae:results": _href(request, f"/polls/{p.id}/results")},
    }


def answer_json(request: Request, a: PollAnswer) -> dict[str, Any]:
    links: dict[str, Any] = {"osdi:question": _href(request, f"/polls/{a.poll_id}")}
    if a.supporter_id is not None:
        links["osdi:person"] = _href(request, f"/people/{a.supporter_id}")
    return {
        "identifiers": [f"nalgae:{a.id}"],
        "id": a.id,
        "responses": [str(c) for c in polls.parse_choices(a.choices)],
        "tier": a.tier,
        "weight": a.weight,
        "created_date": _iso(a.answered_at),
        "modified_date": _iso(a.changed_at or a.answered_at),
        "_links": links,
    }


def broadcast_json(request: Request, status: dict[str, Any]) -> dict[str, Any]:
    out = dict(status)
    out["_links"] = {"self": _href(request, f"/broadcasts/{status['id']}")}
    return out


def _secret_results(results: dict[str, Any]) -> dict[str, Any]:
    """Small groups of a secret ballot are withheld: one voter's group shows their choice."""
    for key in ("by_tier", "by_region"):
        if key not in results:  # still open: polls.summary shows no running tally at all
            continue
        results[key] = {
            name: group if group["voters"] >= polls.MIN_SECRET_GROUP
            else {"voters": group["voters"], "withheld": True}
            for name, group in results[key].items()
        }
    return results


# --- the router -------------------------------------------------------------------------------

def build_router() -> APIRouter:
    r = APIRouter(prefix=PREFIX, tags=["api"])

    @r.get("", summary="Entry point (OSDI AEP)")
    async def entry(request: Request, token: Read) -> dict[str, Any]:
        return {
            "motd": "nalgae HTTP API",
            "vendor_name": "nalgae",
            "osdi_version": "1.1",
            "_links": {
                "self": _href(request, ""),
                "osdi:people": _href(request, "/people"),
                "osdi:petitions": _href(request, "/petitions"),
                "osdi:questions": _href(request, "/polls"),
                "nalgae:campaigns": _href(request, "/campaigns"),
                "nalgae:broadcasts": _href(request, "/broadcasts"),
                "docs": {"href": str(request.base_url).rstrip("/") + "/api/openapi.json"},
            },
        }

    # people

    @r.get("/people", summary="People (supporters; erased people are never listed)")
    async def list_people(request: Request, token: Read, page: PageNo = 1,
                          per_page: PerPage = 25) -> dict[str, Any]:
        tags: dict[int, list[str]] = {}

        async def load_tags(session: Any, rows: Sequence[Supporter]) -> None:
            tags.update(await store.tags_of(session, [s.id for s in rows]))

        return await _paged(request, store.people_query(), page, per_page, "osdi:people",
                            lambda s: person_json(request, s, tags.get(s.id, [])), load_tags)

    @r.get("/people/{person_id}", summary="One person")
    async def get_person(request: Request, token: Read, person_id: RowId) -> dict[str, Any]:
        async with _db(request).session() as session:
            s = await store.person(session, person_id)
            if s is None:
                raise rules.NotFound(f"no person {person_id}")
            tags = (await store.tags_of(session, [s.id])).get(s.id, [])
        return person_json(request, s, tags)

    # campaigns

    @r.get("/campaigns", summary="Campaigns")
    async def list_campaigns(request: Request, token: Read, page: PageNo = 1,
                             per_page: PerPage = 25) -> dict[str, Any]:
        return await _paged(request, store.campaigns_query(), page, per_page,
                            "nalgae:campaigns", lambda c: campaign_json(request, c))

    @r.get("/campaigns/{campaign_id}", summary="One campaign")
    async def get_campaign(request: Request, token: Read, campaign_id: RowId) -> dict[str, Any]:
        return campaign_json(request, await _get(request, Campaign, campaign_id, "campaign"))

    @r.post("/campaigns", status_code=201, summary="Create a campaign")
    async def create_campaign(request: Request, token: Write, body: CampaignIn
                              ) -> dict[str, Any]:
        async with _db(request).session() as session:
            c = await petitions.create_campaign(
                session, slug=body.slug, title_ko=body.title_ko, title_en=body.title_en,
                description_ko=body.description_ko, description_en=body.description_en,
                starts_at=body.starts_at, ends_at=body.ends_at, status=body.status,
                clock=_clock(request), actor=rules.actor(token))
        return campaign_json(request, c)

    # petitions

    @r.get("/petitions", summary="Petitions")
    async def list_petitions(request: Request, token: Read, page: PageNo = 1,
                             per_page: PerPage = 25,
                             campaign_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                             ) -> dict[str, Any]:
        return await _paged(request, store.petitions_query(campaign_id), page, per_page,
                            "osdi:petitions", lambda p: petition_json(request, p))

    @r.get("/petitions/{petition_id}", summary="One petition, with its live count")
    async def get_petition(request: Request, token: Read, petition_id: RowId
                           ) -> dict[str, Any]:
        async with _db(request).session() as session:
            p = await petition_store.petition_by_id(session, petition_id)
            if p is None:
                raise rules.NotFound(f"no petition {petition_id}")
            count = await petitions.live_count(session, p)
            by_region = await petition_store.counts_by_region(session, p.id)
        out = petition_json(request, p, count)
        out["by_region"] = by_region
        return out

    @r.post("/petitions", status_code=201, summary="Create a petition (a draft unless open)")
    async def create_petition(request: Request, token: Write, body: PetitionIn
                              ) -> dict[str, Any]:
        clock, actor = _clock(request), rules.actor(token)
        async with _db(request).session() as session:
            p = await petitions.create_petition(
                session, campaign_slug=body.campaign, slug=body.slug, title_ko=body.title_ko,
                title_en=body.title_en, body_ko=body.body_ko, body_en=body.body_en,
                opens_at=body.opens_at, closes_at=body.closes_at, milestones=body.milestones,
                clock=clock, actor=actor)
            if body.open:
                p = await petitions.open_petition(session, p.slug, actor=actor, clock=clock)
        return petition_json(request, p)

    @r.post("/petitions/{petition_id}/open", summary="Open a draft petition")
    async def open_petition(request: Request, token: Write, petition_id: RowId
                            ) -> dict[str, Any]:
        p = await _get(request, Petition, petition_id, "petition")
        async with _db(request).session() as session:
            p = await petitions.open_petition(session, p.slug, actor=rules.actor(token),
                                              clock=_clock(request))
        return petition_json(request, p)

    @r.post("/petitions/{petition_id}/close", summary="Close a petition")
    async def close_petition(request: Request, token: Write, petition_id: RowId
                             ) -> dict[str, Any]:
        p = await _get(request, Petition, petition_id, "petition")
        async with _db(request).session() as session:
            p = await petitions.close_petition(session, p.slug, actor=rules.actor(token),
                                               clock=_clock(request))
        return petition_json(request, p)

    @r.get("/petitions/{petition_id}/signatures", summary="Signatures of a petition")
    async def list_signatures(request: Request, token: Read, petition_id: RowId,
                              page: PageNo = 1, per_page: PerPage = 25) -> dict[str, Any]:
        await _get(request, Petition, petition_id, "petition")
        return await _paged(request, store.signatures_query(petition_id), page, per_page,
                            "osdi:signatures", lambda s: signature_json(request, s))

    @r.get("/petitions/{petition_id}/signatures/{signature_id}", summary="One signature")
    async def get_signature(request: Request, token: Read, petition_id: RowId,
                            signature_id: RowId) -> dict[str, Any]:
        s = await _get(request, Signature, signature_id, "signature")
        if s.petition_id != petition_id:
            raise rules.NotFound(f"no signature {signature_id} on petition {petition_id}")
        return signature_json(request, s)

    @r.post("/petitions/{petition_id}/signatures", status_code=201,
            summary="Record a signature for an existing person (200 if already signed)")
    async def sign(request: Request, response: Response, token: Write, petition_id: RowId,
                   body: SignatureIn) -> dict[str, Any]:
        async with _db(request).session() as session:
            signed = await rules.record_signature(
                session, petition_id=petition_id, person_id=body.person_id,
                source_ref=body.source_ref, clock=_clock(request), actor=rules.actor(token))
        if not signed.created:
            response.status_code = 200
        return signature_json(request, signed.signature)

    # polls

    @r.get("/polls", summary="Polls (OSDI questions)")
    async def list_polls(request: Request, token: Read, page: PageNo = 1,
                         per_page: PerPage = 25,
                         campaign_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                         ) -> dict[str, Any]:
        return await _paged(request, store.polls_query(campaign_id), page, per_page,
                            "osdi:questions", lambda p: poll_json(request, p))

    @r.get("/polls/{poll_id}", summary="One poll")
    async def get_poll(request: Request, token: Read, poll_id: RowId) -> dict[str, Any]:
        return poll_json(request, await _get(request, Poll, poll_id, "poll"))

    @r.post("/polls", status_code=201, summary="Create a poll (open unless status=draft)")
    async def create_poll(request: Request, token: Write, body: PollIn) -> dict[str, Any]:
        async with _db(request).session() as session:
            p = await polls.create_poll(
                session, campaign_slug=body.campaign, slug=body.slug,
                question_ko=body.question_ko, question_en=body.question_en, kind=body.kind,
                options=[(o.ko, o.en) for o in body.options],
                weights={str(k): v for k, v in body.weights.items()} if body.weights else None,
                eligible_tier=body.eligible_tier, eligible_region=body.eligible_region,
                secret=body.secret, allow_change=body.allow_change, native=body.native,
                closes_at=body.closes_at, status=body.status, clock=_clock(request),
                actor=rules.actor(token))
        return poll_json(request, p)

    @r.post("/polls/{poll_id}/close", summary="Close a poll")
    async def close_poll(request: Request, token: Write, poll_id: RowId) -> dict[str, Any]:
        p = await _get(request, Poll, poll_id, "poll")
        async with _db(request).session() as session:
            p = await polls.close_poll(session, p.slug, actor=rules.actor(token),
                                       clock=_clock(request))
        return poll_json(request, p)

    @r.get("/polls/{poll_id}/answers", summary="Answers of an open (not secret) poll")
    async def list_answers(request: Request, token: Read, poll_id: RowId, page: PageNo = 1,
                           per_page: PerPage = 25) -> dict[str, Any]:
        p = await _get(request, Poll, poll_id, "poll")
        if p.secret:
            raise ApiProblem(403, "secret_ballot",
                             "a secret ballot's answers are never listed; see its results")
        return await _paged(request, store.answers_query(poll_id), page, per_page,
                            "osdi:answers", lambda a: answer_json(request, a))

    @r.get("/polls/{poll_id}/results",
           summary="Results, raw and weighted (exact decimals or fractions, as strings)")
    async def poll_results(request: Request, token: Read, poll_id: RowId) -> dict[str, Any]:
        p = await _get(request, Poll, poll_id, "poll")
        async with _db(request).session() as session:
            result = await polls.summary(session, p.slug)
        return _secret_results(result) if p.secret else result

    # broadcasts

    @r.get("/broadcasts", summary="Broadcasts, newest last")
    async def list_broadcasts(request: Request, token: Read, page: PageNo = 1,
                              per_page: PerPage = 25) -> dict[str, Any]:
        return await _paged(request, store.broadcasts_query(), page, per_page,
                            "nalgae:broadcasts", lambda b: _broadcast_brief(request, b))

    @r.get("/broadcasts/{broadcast_id}", summary="A broadcast's status and progress")
    async def get_broadcast(request: Request, token: Read, broadcast_id: RowId
                            ) -> dict[str, Any]:
        return broadcast_json(request, await broadcasts.status(_db(request), broadcast_id))

    @r.post("/broadcasts", status_code=201,
            summary="Compose a broadcast: scheduled for send_at (now if absent) unless draft")
    async def create_broadcast(request: Request, token: Write, body: BroadcastIn
                               ) -> dict[str, Any]:
        db, clock = _db(request), _clock(request)
        settings: Settings = request.app.state.settings
        async with db.session() as session:
            bot = await bots.ensure_default_bot(session, settings, clock.now(),
                                                keep_existing=True)
        draft = broadcasts.Draft(
            texts={str(k): v for k, v in body.texts.items()}, audience=body.audience,
            buttons=[[b.model_dump(exclude_none=True) for b in row] for row in body.buttons]
            or None,
            poll=body.poll, campaign=body.campaign, send_at=body.send_at,
            window_minutes=body.window_minutes)
        status = await broadcasts.compose(db, clock, bot_id=bot.id, draft=draft,
                                          created_by=rules.actor(token),
                                          schedule=not body.draft)
        return broadcast_json(request, status)

    @r.post("/broadcasts/{broadcast_id}/schedule", summary="Schedule a draft broadcast")
    async def schedule_broadcast(request: Request, token: Write, broadcast_id: RowId,
                                 body: ScheduleIn) -> dict[str, Any]:
        await _get(request, Broadcast, broadcast_id, "broadcast")
        status = await broadcasts.schedule(
            _db(request), _clock(request), broadcast_id, actor=rules.actor(token),
            send_at=body.send_at, window_minutes=body.window_minutes)
        return broadcast_json(request, status)

    def control(action: str) -> Any:
        async def handler(request: Request, token: Write, broadcast_id: RowId
                          ) -> dict[str, Any]:
            await _get(request, Broadcast, broadcast_id, "broadcast")
            status = await broadcasts.control(_db(request), _clock(request), broadcast_id,
                                              action, actor=rules.actor(token))
            return broadcast_json(request, status)

        handler.__name__ = f"{action}_broadcast"
        return handler

    for action in ("pause", "resume", "cancel"):
        r.add_api_route(f"/broadcasts/{{broadcast_id}}/{action}", control(action),
                        methods=["POST"], summary=f"{action.capitalize()} a broadcast")

    # audiences

    @r.get("/audience/preview", summary="How many people an audience filter reaches now")
    async def audience_preview(
        request: Request, token: Read,
        audience: Annotated[Text, Query(max_length=2000, description=(
            "Filters, e.g. `region=서울|부산,tier=member`; empty = everyone."))] = "",
    ) -> dict[str, Any]:
        db = _db(request)
        parsed = audiences.parse(audience)
        async with db.session() as session:
            # A read: find the bot, never create it (no bot yet means nobody to reach).
            bot = await bots.find_bot(session, "telegram", bots.DEFAULT_BOT_NAME)
        count = await broadcasts.preview_size(db, bot.id, audience) if bot else 0
        return {"audience": audience, "filter": parsed, "count": count}

    return r


def _broadcast_brief(request: Request, b: Broadcast) -> dict[str, Any]:
    return {
        "id": b.id,
        "status": b.status,
        "audience_filter": b.audience,
        "audience": b.audience_size,
        "send_at": _iso(b.send_at),
        "created_by": b.created_by,
        "created_date": _iso(b.created_at),
        "_links": {"self": _href(request, f"/broadcasts/{b.id}")},
    }

