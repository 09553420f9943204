"""/broadcasts: list, status, compose, schedule, pause/resume/cancel; /audience/preview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from campaigns import api as rules
from campaigns import audience as audiences
from campaigns import broadcasts
from campaigns.chapters import Scope
from campaigns.settings import Settings
from storage import api as store
from storage import bots
from storage.models import Broadcast
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
    out_of_scope,
    paged,
    scope_of,
)
from web.api.schemas import BroadcastIn, ScheduleIn, Text

router = APIRouter(prefix=PREFIX, tags=["api"])


def broadcast_json(request: Request, status: dict[str, Any]) -> dict[str, Any]:
    out = dict(status)
    out["_links"] = {"self": href(request, f"/broadcasts/{status['id']}")}
    return out


def _broadcast_brief(request: Request, b: Broadcast, scope: Scope) -> dict[str, Any]:
    return {
        "id": b.id,
        "status": b.status,
        "audience_filter": b.audience,
        # Another chapter's (or a national) audience size is not a chapter token's figure.
        "audience": b.audience_size if broadcasts.kept_to(scope, b.audience) else None,
        "send_at": iso(b.send_at),
        "created_by": b.created_by,
        "created_date": iso(b.created_at),
        "_links": {"self": href(request, f"/broadcasts/{b.id}")},
    }



@router.get("/broadcasts", summary="Broadcasts, newest last")
async def list_broadcasts(request: Request, token: Read, page: PageNo = 1,
                          per_page: PerPage = 25) -> dict[str, Any]:
    scope = await scope_of(request, token)
    return await paged(request, store.broadcasts_query(), page, per_page,
                        "nalgae:broadcasts", lambda b: _broadcast_brief(request, b, scope))


@router.get("/broadcasts/{broadcast_id}", summary="A broadcast's status and progress")
async def get_broadcast(request: Request, token: Read, broadcast_id: RowId
                        ) -> dict[str, Any]:
    status = await broadcasts.status(database(request), broadcast_id)
    # A chapter's token: its chapters' broadcasts only (another's counts are not theirs).
    if not broadcasts.kept_to(await scope_of(request, token),
                              status["details"]["audience_filter"]):
        raise await out_of_scope(request, token, f"broadcast:{broadcast_id}")
    return broadcast_json(request, status)


@router.post("/broadcasts", status_code=201,
        summary="Compose a broadcast: scheduled for send_at (now if absent) unless draft")
async def create_broadcast(request: Request, token: Write, body: BroadcastIn
                           ) -> dict[str, Any]:
    db, clock = database(request), clock_of(request)
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


@router.post("/broadcasts/{broadcast_id}/schedule", summary="Schedule a draft broadcast")
async def schedule_broadcast(request: Request, token: Write, broadcast_id: RowId,
                             body: ScheduleIn) -> dict[str, Any]:
    await get_row(request, Broadcast, broadcast_id, "broadcast")
    status = await broadcasts.schedule(
        database(request), clock_of(request), broadcast_id, actor=rules.actor(token),
        send_at=body.send_at, window_minutes=body.window_minutes)
    return broadcast_json(request, status)


def control(action: str) -> Any:
    async def handler(request: Request, token: Write, broadcast_id: RowId
                      ) -> dict[str, Any]:
        await get_row(request, Broadcast, broadcast_id, "broadcast")
        status = await broadcasts.control(database(request), clock_of(request), broadcast_id,
                                          action, actor=rules.actor(token))
        return broadcast_json(request, status)

    handler.__name__ = f"{action}_broadcast"
    return handler


for _action in ("pause", "resume", "cancel"):
    router.add_api_route(f"/broadcasts/{{broadcast_id}}/{_action}", control(_action),
                         methods=["POST"], summary=f"{_action.capitalize()} a broadcast")


@router.get("/audience/preview", summary="How many people an audience filter reaches now")
async def audience_preview(
    request: Request, token: Read,
    audience: Annotated[Text, Query(max_length=2000, description=(
        "Filters, e.g. `region=서울|부산,tier=member` or `district=seoul:mapo`; "
        "empty = everyone."))] = "",
) -> dict[str, Any]:
    db = database(request)
    parsed = audiences.parse(audience)
    async with db.session() as session:
        # A read: find the bot, never create it (no bot yet means nobody to reach).
        bot = await bots.find_bot(session, "telegram", bots.DEFAULT_BOT_NAME)
    count = await broadcasts.preview_size(db, bot.id, audience, actor=rules.actor(token),
                                          clock=clock_of(request)) if bot else 0
    return {"audience": audience, "filter": parsed, "count": count}
