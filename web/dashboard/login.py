"""Sign-in: a password, or a one-time link sent to the organiser's Telegram; sign-out."""

from __future__ import annotations

import html
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

router = APIRouter(include_in_schema=False)


def _safe_next(value: Any) -> str:
    value = str(value or "/")
    return value if value.startswith("/") and not value.startswith("//") else "/"


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    token = auth.pre_csrf(request)
    response = page(request, "login.html", {
        "login_csrf": token, "next": request.query_params.get("next", "/"),
        "error": request.query_params.get("error"), "sent": request.query_params.get("sent"),
    })
    auth.set_pre_csrf(request, response, token)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    if not auth.pre_csrf_ok(request, form):
        raise HTTPException(403, "bad CSRF token")
    async with database(request).session() as s:
        organiser = await signin.authenticate(
            s, str(form.get("login") or ""), str(form.get("password") or ""),
            request.app.state.clock)
    if organiser is None:
        return back("/login", error="password", next=_safe_next(form.get("next")))
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
    """Send a one-time link to a known organiser's Telegram; the answer never says who is."""
    form = await request.form()
    if not auth.pre_csrf_ok(request, form):
        raise HTTPException(403, "bad CSRF token")
    async with database(request).session() as s:
        organiser = await signin.organiser_for_link(s, str(form.get("who") or ""))
        token = await signin.issue_link_token(
            s, organiser, request.app.state.clock, auth.secret(request)
        ) if organiser is not None else None
        lang = "ko"
        if organiser is not None:
            lang = await _organiser_language(request, s, organiser)
    if organiser is not None and token is not None:
        url = absolute(request, f"/login/link/{token}")
        text = t_plain(lang, _("Your sign-in link for the nalgae dashboard (valid for 10 "
                               "minutes, works once):"))
        await send_telegram(request, int(str(organiser.telegram_user_id)), bc.OutgoingMessage(
            html.escape(text, quote=False),
            ((Button(t_plain(lang, _("Sign in")), url=url),),)))
    return back("/login", sent="1")


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
    await auth.require_change(request, form, need="viewer")
    response = RedirectResponse("/login", 303)
    auth.end_session(response)
    return response
