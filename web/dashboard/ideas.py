"""Ideas on the dashboard: per campaign, the review queue (approve, or reject with a
reason the proposer receives), the published ideas with their backs, and answers."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from bots.telegram import direct
from campaigns import ideas
from storage import dashboard as queries
from web import auth
from web.pages import RULE_ERRORS, back, database, error_text, language, page
from web.scope import national_only

router = APIRouter(include_in_schema=False)


@router.get("/ideas", response_class=HTMLResponse)
async def idea_list(request: Request) -> Response:
    await auth.require(request)
    async with database(request).session() as s:
        campaign_rows = await queries.campaigns(s)
        chosen = request.query_params.get("campaign") or (
            campaign_rows[0].slug if campaign_rows else "")
        queue, published = [], []
        if chosen:
            try:
                queue = await ideas.listing(s, chosen, ("pending",))
                published = await ideas.listing(s, chosen, ideas.PUBLIC)
            except RULE_ERRORS:
                raise HTTPException(404, "no such campaign") from None
    return page(request, "ideas.html", {
        "campaigns": campaign_rows, "campaign": chosen, "queue": queue,
        "published": published, "answers": ideas.ANSWERS,
        "error": request.query_params.get("error")})


@router.post("/ideas/{idea_id}/{action}")
async def idea_action(request: Request, idea_id: int, action: str) -> Response:
    form = await request.form()
    me = await auth.require_change(request, form)
    clock = request.app.state.clock
    campaign = str(form.get("campaign") or "")
    target = "/ideas" + (f"?campaign={campaign}" if campaign else "")
    messages = []
    try:
        # Moderating and answering a campaign's ideas is national work.
        await national_only(request, me, f"idea.{action}:{idea_id}")
        async with database(request).session() as s:
            if action == "approve":
                messages = await ideas.approve(s, idea_id, actor=me.actor, clock=clock)
            elif action == "reject":
                messages = await ideas.reject(s, idea_id, reason=str(form.get("reason") or ""),
                                              actor=me.actor, clock=clock)
            elif action == "answer":
                # Backers hear the answer from the bot's delivery job, each once.
                await ideas.answer(s, idea_id, outcome=str(form.get("outcome") or ""),
                                   text=str(form.get("text") or ""), actor=me.actor,
                                   clock=clock)
            else:
                raise HTTPException(404)
    except RULE_ERRORS as exc:
        return back(target, error=error_text(exc, language(request)))
    # After the commit: the decision stands even if Telegram cannot be reached.
    await direct.deliver(database(request), messages)
    return back(target)
