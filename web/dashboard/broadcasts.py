"""Broadcasts on the dashboard: the list, the composer (audience count and message preview
as you type), test sends, a broadcast's page with live progress, pause/resume/cancel."""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from markupsafe import Markup

from campaigns import audience as audiences
from campaigns import broadcasts as bc
from campaigns.chapters import OutOfScope
from campaigns.i18n import LANGUAGES, _, t_plain
from campaigns.regions import DISTRICTS, region_name
from campaigns.times import parse_optional
from storage import broadcasts as broadcast_store
from storage import dashboard as queries
from storage import petitions as petition_store
from storage import polls as poll_store
from storage import supporters as supporter_store
from web import auth
from web.pages import RULE_ERRORS, back, database, error_text, language, live, page, send_telegram
from web.scope import forbidden, scope_of

router = APIRouter(include_in_schema=False)

# What composing can refuse: shown on the composer with the form as it was.
_REFUSED = RULE_ERRORS  # BroadcastError and AudienceError are RuleErrors

_ALLOWED_PREVIEW_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code",
                         "pre", "tg-spoiler", "blockquote", "span"}


def preview_html(text: str) -> Markup:
    """Telegram-HTML as the app would show it: allowed tags kept, everything else escaped."""
    out: list[str] = []
    pos = 0
    for match in re.finditer(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s[^<>]*)?)>", text):
        out.append(html.escape(html.unescape(text[pos:match.start()]), quote=False))
        closing, tag, attrs = match.group(1), match.group(2).lower(), match.group(3)
        if tag in _ALLOWED_PREVIEW_TAGS:
            out.append(f"<{closing}{tag}>")
        elif tag == "a":
            href = re.search(r'href\s*=\s*"(https?://[^"]*)"', attrs or "", re.I)
            out.append("</a>" if closing else
                       f'<a href="{html.escape(href.group(1)) if href else "#"}" '
                       f'rel="noopener noreferrer" target="_blank">')
        else:
            out.append(html.escape(match.group(0), quote=False))
        pos = match.end()
    out.append(html.escape(html.unescape(text[pos:]), quote=False))
    return Markup("".join(out))


def _progress(status: dict[str, Any]) -> int:
    total = int(status["audience"] or 0)
    if status["status"] in ("done", "cancelled"):
        return 100
    if not total:
        return 0
    return min(100, int(100 * (total - int(status["pending"])) / total))


@router.get("/broadcasts", response_class=HTMLResponse)
async def broadcast_list(request: Request) -> Response:
    await auth.require(request)
    async with database(request).session() as s:
        rows = await broadcast_store.recent(s)
    return page(request, "broadcasts.html", {"broadcasts": rows})


async def _composer(request: Request, bot_id: int | None, *, error: str | None,
                    form: dict[str, str], status_code: int = 200) -> Response:
    """The composer page: what can be linked or targeted, and the form as it was (tag
    counts within a scoped organiser's chapters)."""
    me = await auth.require(request)
    areas = (await scope_of(request, me)).region_filter
    async with database(request).session() as s:
        petition_rows = await petition_store.petitions(s)
        poll_rows = await poll_store.polls(s)
        tags = await queries.tag_counts(s, bot_id, areas) if bot_id is not None else []
    return page(request, "broadcast_new.html", {
        "petitions": petition_rows, "polls": poll_rows, "tags": tags, "districts": DISTRICTS,
        "error": error, "form": form}, status_code=status_code)


@router.get("/broadcasts/new", response_class=HTMLResponse)
async def composer(request: Request) -> Response:
    await auth.require(request)
    async with database(request).session() as s:
        bot = await queries.default_telegram_bot(s)
    return await _composer(request, bot.id if bot else None,
                           error=request.query_params.get("error"), form={})


@router.get("/broadcasts/audience-count")
async def audience_count(request: Request) -> JSONResponse:
    me = await auth.require(request)
    lang = language(request)
    text = request.query_params.get("audience", "")
    async with database(request).session() as s:
        bot = await queries.default_telegram_bot(s)
    if bot is None:
        return JSONResponse({"count": 0, "description": ""})
    try:
        # Counted as the organiser's broadcast would be: within their chapters.
        count = await bc.preview_size(database(request), bot.id, text, actor=me.actor,
                                      clock=request.app.state.clock)
        description = audiences.describe(audiences.parse(text), lang)
    except (audiences.AudienceError, OutOfScope) as exc:
        return JSONResponse({"error": exc.message(lang)})
    return JSONResponse({"count": count, "description": description})


@router.get("/broadcasts/preview")
async def preview(request: Request) -> JSONResponse:
    await auth.require(request)
    lang = language(request)
    text = request.query_params.get("text", "")
    which = request.query_params.get("lang", "ko")
    if not text.strip():
        return JSONResponse({"html": ""})
    try:
        template = bc.compile_template(text, which if which in LANGUAGES else "ko")
    except bc.BroadcastError as exc:
        return JSONResponse({"error": exc.message(lang)})
    sample = template.render(t_plain(which, _("Minji")) if which in LANGUAGES else "Minji",
                             region_name("seoul", which if which in LANGUAGES else "ko"))
    return JSONResponse({"html": str(preview_html(sample))})


def _buttons(form: Any) -> list[list[dict[str, Any]]]:
    """One button a line: "label|url", the label "Korean/English" or one for both."""
    return [[bc.parse_button(line)] for line in str(form.get("buttons") or "").splitlines()
            if line.strip()]


def _draft(form: Any) -> bc.Draft:
    when = str(form.get("when") or "now")
    send_at = parse_optional(str(form.get("send_at") or ""), field="send_at") \
        if when in ("at", "window") else None
    window = None
    if when == "window":
        try:
            window = float(str(form.get("window_minutes") or "0"))
        except ValueError:
            raise bc.BroadcastError(_("The sending window cannot be negative.")) from None
    return bc.Draft(
        texts={lang: str(form.get(f"text_{lang}") or "") for lang in LANGUAGES
               if str(form.get(f"text_{lang}") or "").strip()},
        audience=str(form.get("audience") or ""), buttons=_buttons(form) or None,
        poll=str(form.get("poll") or "") or None,
        campaign=str(form.get("campaign") or "") or None,
        send_at=send_at, window_minutes=window)


@router.post("/broadcasts")
async def broadcast_create(request: Request) -> Response:
    form = await request.form()
    me = await auth.require_change(request, form)
    test_only = form.get("intent") == "test"
    async with database(request).session() as s:
        bot = await queries.default_telegram_bot(s)
    try:
        if bot is None:
            raise bc.BroadcastError(_("There is no bot to send with."))
        status = await bc.compose(database(request), request.app.state.clock, bot_id=bot.id,
                                  draft=_draft(form), created_by=me.actor,
                                  schedule=not test_only)
    except _REFUSED as exc:
        return await _composer(
            request, bot.id if bot else None, error=error_text(exc, language(request)),
            form={k: str(v) for k, v in form.items() if k != "csrf"}, status_code=400)
    if test_only:
        sent = await _test_send(request, me, status["id"])
        return back(f"/broadcasts/{status['id']}", test="sent" if sent else "failed")
    return RedirectResponse(f"/broadcasts/{status['id']}", 303)


async def _test_send(request: Request, me: auth.Session, broadcast_id: int) -> bool:
    """The broadcast to the organiser's own Telegram, as they would receive it."""
    chat = me.organiser.telegram_user_id
    if not chat or not str(chat).isdigit():
        return False
    async with database(request).session() as s:
        bot = await queries.default_telegram_bot(s)
        known = await supporter_store.find(s, bot.id, "telegram", str(chat)) if bot else None
    message = await bc.test_message(
        database(request), broadcast_id,
        language=known.supporter.language if known else language(request),
        name=(known.supporter.display_name if known else None) or me.name,
        region=known.supporter.region if known else None)
    async with database(request).session() as s:
        await supporter_store.audit(s, actor=me.actor, action="broadcast.test",
                                    target=f"broadcast:{broadcast_id}",
                                    now=request.app.state.clock.now())
    return await send_telegram(request, int(chat), message)


@router.get("/broadcasts/{broadcast_id}", response_class=HTMLResponse)
async def broadcast_page(request: Request, broadcast_id: int) -> Response:
    me = await auth.require(request)
    lang = language(request)
    try:
        status = await bc.status(database(request), broadcast_id)
    except bc.BroadcastError:
        raise HTTPException(404, "no such broadcast") from None
    if not bc.kept_to(await scope_of(request, me), status["details"]["audience_filter"]):
        raise await forbidden(request, me, f"broadcast:{broadcast_id}")
    texts = status["details"]["texts"]
    return page(request, "broadcast.html", {
        "b": status, "progress": _progress(status),
        "audience_text": audiences.describe(status["details"]["audience_filter"], lang),
        "previews": {k: preview_html(v) for k, v in texts.items()},
        "error": request.query_params.get("error"), "test": request.query_params.get("test"),
    })


@router.get("/broadcasts/{broadcast_id}/live")
async def broadcast_live(request: Request, broadcast_id: int) -> Response:
    me = await auth.require(request)
    scope = await scope_of(request, me)
    if not scope.national:  # another chapter's or a national broadcast: its counts refused
        async with database(request).session() as s:
            row = await broadcast_store.get(s, broadcast_id)
        if row is not None and not bc.kept_to(scope, row.audience):
            raise await forbidden(request, me, f"broadcast:{broadcast_id}")

    async def fetch() -> dict[str, Any]:
        status = await bc.status(database(request), broadcast_id)
        return {**{k: status[k] for k in ("status", "audience", "sent", "blocked", "failed",
                                          "pending")}, "percent": _progress(status)}

    return live(request, fetch)


@router.post("/broadcasts/{broadcast_id}/{action}")
async def broadcast_action(request: Request, broadcast_id: int, action: str) -> Response:
    form = await request.form()
    me = await auth.require_change(request, form)
    clock = request.app.state.clock
    to = f"/broadcasts/{broadcast_id}"
    try:
        if action in ("pause", "resume", "cancel"):
            await bc.control(database(request), clock, broadcast_id, action, actor=me.actor)
        elif action == "schedule":
            await bc.schedule(database(request), clock, broadcast_id, actor=me.actor)
        elif action == "test":
            sent = await _test_send(request, me, broadcast_id)
            return back(to, test="sent" if sent else "failed")
        else:
            raise HTTPException(404)
    except (bc.BroadcastError, OutOfScope) as exc:
        return back(to, error=exc.message(language(request)))
    return back(to)
