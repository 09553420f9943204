"""Sign-in: a password, or a one-time link sent to the organiser's Telegram; sign-out."""

from __future__ import annotations

import asyncio
import html
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import broadcasts as bc
from campaigns import signin
from campaigns.i18n import _, t_plain
from campaigns.replies import Button
from storage import dashboard as queries
from storage import supporters as supporter_store
from storage.models import Organiser
from web import auth
from web.pages import absolute, back, database, language, page, send_telegram
from web.throttle import Throttle

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


def _safe_next(value: Any) -> str:
    value = str(value or "/")
    return value if value.startswith("/") and not value.startswith("//") else "/"


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    return _login_page(request, error=request.query_params.get("error"),
                       next_url=request.query_params.get("next", "/"))


def _login_page(request: Request, *, error: str | None = None, next_url: str = "/",
                wait: int = 0) -> Response:
    token = auth.pre_csrf(request)
    response = page(request, "login.html", {
        "login_csrf": token, "next": next_url, "error": error,
        "sent": request.query_params.get("sent"), "wait_minutes": max(1, -(-wait // 60)),
    }, status_code=429 if wait else 200)
    auth.set_pre_csrf(request, response, token)
    if wait:
        response.headers["Retry-After"] = str(wait)
    return response


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _throttled(request: Request, kind: str, who: str) -> Response | None:
    """The 429 page when this login or address has had its tries (audited once a minute)."""
    throttle: Throttle = request.app.state.throttle
    wait = await throttle.attempt(kind, who, _address(request))
    if wait is None:
        return None
    if await throttle.first_refusal(kind, who):
        async with database(request).session() as s:
            await signin.record_throttled(s, who, kind, wait, request.app.state.clock)
    return _login_page(request, error="throttled", wait=wait)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    if not auth.pre_csrf_ok(request, form):
        raise HTTPException(403, "bad CSRF token")
    login_name = signin.normal_login(str(form.get("login") or ""))
    refused = await _throttled(request, "password", login_name)
    if refused is not None:
        return refused
    clock = request.app.state.clock
    # Three short steps: no database connection is held while argon2 runs (off the loop).
    async with database(request).session() as s:
        organiser = await signin.by_login(s, login_name)
    ok = await signin.verify_password(organiser, str(form.get("password") or ""))
    async with database(request).session() as s:
        await signin.record_password_attempt(s, organiser, ok, clock)
    if organiser is None or not ok:
        return back("/login", error="password", next=_safe_next(form.get("next")))
    await request.app.state.throttle.succeeded("password", login_name)
    response = RedirectResponse(_safe_next(form.get("next")), 303)
    auth.start_session(request, response, organiser)
    return response


async def _organiser_language(request: Request, s: AsyncSession, organiser: Organiser) -> str:
    """The language the organiser chose in the bot, else the browser's."""
    bot = await queries.default_telegram_bot(s)
    known = await supporter_store.find(
        s, bot.id, "telegram", str(organiser.telegram_user_id)) if bot else None
    return known.supporter.language if known else language(request)


@router.post("/login/send-link")
async def send_link(request: Request) -> Response:
    """Send a one-time link to a known organiser's Telegram. The answer, and how long it
    takes, never say whether the login exists: the lookup and the send happen after it."""
    form = await request.form()
    if not auth.pre_csrf_ok(request, form):
        raise HTTPException(403, "bad CSRF token")
    who = signin.normal_login(str(form.get("who") or ""))
    refused = await _throttled(request, "link", who)
    if refused is not None:
        return refused
    task = asyncio.create_task(_send_link(request, who))
    # Keep a reference until it is done (the loop holds tasks weakly).
    pending: set[asyncio.Task[None]] = request.app.state.background
    pending.add(task)
    task.add_done_callback(pending.discard)
    return back("/login", sent="1")


async def _send_link(request: Request, who: str) -> None:
    try:
        async with database(request).session() as s:
            organiser = await signin.organiser_for_link(s, who)
            if organiser is None or not await request.app.state.throttle.link_allowed(
                    organiser.id):
                return
            token = await signin.issue_link_token(
                s, organiser, request.app.state.clock, auth.secret(request))
            lang = await _organiser_language(request, s, organiser)
        url = absolute(request, f"/login/link/{token}")
        text = t_plain(lang, _("Your sign-in link for the nalgae dashboard (valid for 10 "
                               "minutes, works once):"))
        await send_telegram(request, int(str(organiser.telegram_user_id)), bc.OutgoingMessage(
            html.escape(text, quote=False),
            ((Button(t_plain(lang, _("Sign in")), url=url),),)))
    except Exception:
        log.exception("sending a sign-in link failed")


@router.get("/login/link/{token}", response_class=HTMLResponse)
async def link_page(request: Request, token: str) -> Response:
    # A confirmation page: link previews (Telegram fetches URLs in messages) must not
    # use up the link, so only the POST below redeems it.
    tok = auth.pre_csrf(request)
    response = page(request, "login_link.html", {"token": token, "login_csrf": tok})
    auth.set_pre_csrf(request, response, tok)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.post("/login/link")
async def redeem_link(request: Request) -> Response:
    form = await request.form()
    # Without this check, a page elsewhere could sign a browser in as someone else.
    if not auth.pre_csrf_ok(request, form):
        raise HTTPException(403, "bad CSRF token")
    async with database(request).session() as s:
        organiser = await signin.redeem_link_token(
            s, str(form.get("token") or ""), request.app.state.clock,
            auth.secret(request))
    if organiser is None:
        return back("/login", error="link")
    response = RedirectResponse("/", 303)
    auth.start_session(request, response, organiser)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    session = await auth.require_change(request, form, need="viewer")
    async with database(request).session() as s:
        await signin.sign_out(s, session.organiser, request.app.state.clock)
    response = RedirectResponse("/login", 303)
    auth.end_session(request, response)
    return response
