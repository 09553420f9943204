"""The organiser dashboard: sign-in, petitions, polls, broadcasts, supporters, exports.

Server-rendered pages; the live parts are Server-Sent Events that the small script
in web/static/live.js applies. Every change is a POST that `auth.require_change`
checks (session, CSRF token, role) before anything is touched; the rules it calls
in campaigns/ write the audit log.
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from markupsafe import Markup
from sse_starlette.sse import EventSourceResponse

from campaigns import audience as audiences
from campaigns import broadcasts as bc
from campaigns import importer, petitions, polls, signin
from campaigns.errors import RuleError
from campaigns.i18n import LANGUAGES, _, t_plain
from campaigns.organisers import MANAGE, allows
from campaigns.regions import REGIONS, region_name
from campaigns.text import quote_formula
from campaigns.times import DISPLAY_TZ
from storage import dashboard as queries
from storage import petitions as petition_store
from storage import polls as poll_store
from storage.db import Database
from web import auth, charts

LIVE_INTERVAL = 1.0
_ALLOWED_PREVIEW_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code",
                         "pre", "tg-spoiler", "blockquote", "span"}


# --- helpers ----------------------------------------------------------------------------------

def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _lang(request: Request) -> str:
    from web.app import _language

    return _language(request)


def _page(request: Request, name: str, ctx: dict[str, Any], status_code: int = 200,
          session: auth.Session | None = None) -> Response:
    from web.app import _render

    lang = _lang(request)
    session = session or getattr(request.state, "session", None)
    return _render(request, lang, name, {
        "me": session, "csrf": session.csrf if session else "",
        "can_change": bool(session and session.can_change),
        "region_label": lambda code: region_name(code, lang) if code else t_plain(
            lang, _("No region given")),
        "kst": lambda at: at.astimezone(DISPLAY_TZ).strftime("%Y-%m-%d %H:%M") if at else "",
        "regions": REGIONS, **ctx,
    }, status_code=status_code)


def _back(url: str, **params: str) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(url + (("&" if "?" in url else "?") + query if query else ""), 303)


def _kst(value: str | None) -> datetime | None:
    """A datetime-local value ("2026-12-01T18:00") as organisers in Korea mean it."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RuleError(f"{value!r} is not a time like 2026-12-31T18:00") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=DISPLAY_TZ)


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


async def _send_telegram(request: Request, chat_id: int, message: bc.OutgoingMessage) -> bool:
    """Send one message through the default bot (login links, test sends)."""
    from bots.channel import Outcome
    from bots.telegram.sender import TelegramSender, make_http_session

    async with _db(request).session() as s:
        bot = await queries.default_telegram_bot(s)
    if bot is None or not bot.token:
        return False
    async with make_http_session(pool=2) as http:
        result = await TelegramSender(bot.token, bot.base_url or "", session=http).send(
            chat_id, message)
    return result.outcome is Outcome.SENT


async def bot_username(request: Request) -> str | None:
    """The default bot's @username (asked once with getMe, then kept in the bot row)."""
    cached = getattr(request.app.state, "bot_username", None)
    if cached:
        return str(cached)
    async with _db(request).session() as s:
        bot = await queries.default_telegram_bot(s)
        if bot is None:
            return None
        if bot.username:
            request.app.state.bot_username = bot.username
            return str(bot.username)
        token, base_url, bot_id = bot.token, bot.base_url, bot.id
    if not token:
        return None
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, \
                http.get(f"{base_url or 'https://api.telegram.org/bot'}{token}/getMe") as resp:
            data = orjson.loads(await resp.read())
        username = str(data["result"]["username"])
    except Exception:
        return None
    async with _db(request).session() as s:
        await queries.set_bot_username(s, bot_id, username)
    request.app.state.bot_username = username
    return username


def _live(request: Request, fetch: Callable[[], Awaitable[Any]],
          encode: Callable[[Any], str] = lambda v: orjson.dumps(v).decode()) -> Response:
    """An SSE stream sending ``fetch()`` whenever it changes (checked every second)."""
    async def events() -> AsyncIterator[dict[str, str]]:
        last: Any = object()
        while not await request.is_disconnected():
            value = await fetch()
            if value != last:
                last = value
                yield {"event": "update", "data": encode(value)}
            await asyncio.sleep(LIVE_INTERVAL)

    return EventSourceResponse(events(), ping=15, send_timeout=10)


def _error_text(exc: Exception, lang: str) -> str:
    if isinstance(exc, bc.BroadcastError | audiences.AudienceError):
        return exc.message(lang)
    return str(exc)


# --- pages -------------------------------------------------------------------------------------

def dashboard_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    # --- sign-in ---------------------------------------------------------------------------

    @router.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        token = auth.pre_csrf(request)
        response = _page(request, "login.html", {
            "login_csrf": token, "next": request.query_params.get("next", "/"),
            "error": request.query_params.get("error"), "sent": request.query_params.get("sent"),
        })
        auth.set_pre_csrf(request, response, token)
        return response

    def _safe_next(value: Any) -> str:
        value = str(value or "/")
        return value if value.startswith("/") and not value.startswith("//") else "/"

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        if not auth.pre_csrf_ok(request, form):
            raise HTTPException(403, "bad CSRF token")
        async with _db(request).session() as s:
            organiser = await signin.authenticate(
                s, str(form.get("login") or ""), str(form.get("password") or ""),
                request.app.state.clock)
        if organiser is None:
            return _back("/login", error="password", next=_safe_next(form.get("next")))
        response = RedirectResponse(_safe_next(form.get("next")), 303)
        auth.start_session(request, response, organiser)
        return response

    @router.post("/login/send-link")
    async def send_link(request: Request) -> Response:
        """Send a one-time link to a known organiser's Telegram; the answer never says who is."""
        form = await request.form()
        if not auth.pre_csrf_ok(request, form):
            raise HTTPException(403, "bad CSRF token")
        async with _db(request).session() as s:
            organiser = await signin.organiser_for_link(s, str(form.get("who") or ""))
            token = await signin.issue_link_token(
                s, organiser, request.app.state.clock, auth.secret(request)
            ) if organiser is not None else None
            lang = "ko"
            if organiser is not None:
                from storage import supporters as supporter_store

                async def language() -> str:
                    bot = await queries.default_telegram_bot(s)
                    known = await supporter_store.find(
                        s, bot.id, "telegram", str(organiser.telegram_user_id)) if bot else None
                    return known.supporter.language if known else _lang(request)

                lang = await language()
        if organiser is not None and token is not None:
            url = str(request.base_url).rstrip("/") + f"/login/link/{token}"
            text = t_plain(lang, _("Your sign-in link for the nalgae dashboard (valid for 10 "
                                   "minutes, works once):"))
            from campaigns.replies import Button

            await _send_telegram(request, int(str(organiser.telegram_user_id)), bc.OutgoingMessage(
                html.escape(text, quote=False),
                ((Button(t_plain(lang, _("Sign in")), url=url),),)))
        return _back("/login", sent="1")

    @router.get("/login/link/{token}", response_class=HTMLResponse)
    async def link_page(request: Request, token: str) -> Response:
        # A confirmation page: link previews (Telegram fetches URLs in messages) must not
        # use up the link, so only the POST below redeems it.
        tok = auth.pre_csrf(request)
        response = _page(request, "login_link.html", {"token": token, "login_csrf": tok})
        auth.set_pre_csrf(request, response, tok)
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @router.post("/login/link")
    async def redeem_link(request: Request) -> Response:
        form = await request.form()
        async with _db(request).session() as s:
            organiser = await signin.redeem_link_token(
                s, str(form.get("token") or ""), request.app.state.clock,
                auth.secret(request))
        if organiser is None:
            return _back("/login", error="link")
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

    # --- petitions -------------------------------------------------------------------------

    @router.get("/petitions", response_class=HTMLResponse)
    async def petition_list(request: Request) -> Response:
        await auth.require(request)
        async with _db(request).session() as s:
            rows = []
            for p in await petition_store.petitions(s):
                rows.append((p, await petitions.live_count(s, p)))
            campaign_rows = await queries.campaigns(s)
        return _page(request, "petitions.html", {
            "petitions": rows, "campaigns": campaign_rows,
            "error": request.query_params.get("error")})

    @router.post("/campaigns")
    async def campaign_create(request: Request) -> Response:
        form = await request.form()
        me = await auth.require_change(request, form)
        back = "/polls" if form.get("back") == "/polls" else "/petitions"  # never elsewhere
        try:
            async with _db(request).session() as s:
                await petitions.create_campaign(
                    s, slug=str(form.get("slug") or ""), title_ko=str(form.get("title_ko") or ""),
                    title_en=str(form.get("title_en") or "") or None,
                    clock=request.app.state.clock, actor=me.actor)
        except RuleError as exc:
            return _back(back, error=str(exc))
        return _back(back)

    @router.post("/petitions")
    async def petition_create(request: Request) -> Response:
        form = await request.form()
        me = await auth.require_change(request, form)
        clock = request.app.state.clock
        try:
            async with _db(request).session() as s:
                p = await petitions.create_petition(
                    s, campaign_slug=str(form.get("campaign") or ""),
                    slug=str(form.get("slug") or ""), title_ko=str(form.get("title_ko") or ""),
                    title_en=str(form.get("title_en") or "") or None,
                    body_ko=str(form.get("body_ko") or "") or None,
                    body_en=str(form.get("body_en") or "") or None,
                    closes_at=_kst(str(form.get("closes_at") or "")),
                    milestones=str(form.get("milestones") or ""), clock=clock, actor=me.actor)
                if form.get("open_now"):
                    await petitions.open_petition(s, p.slug, actor=me.actor, clock=clock)
        except RuleError as exc:
            return _back("/petitions", error=str(exc))
        return RedirectResponse(f"/petitions/{p.slug}", 303)

    async def _petition(request: Request, slug: str) -> Any:
        async with _db(request).session() as s:
            p = await petition_store.petition_by_slug(s, slug)
        if p is None:
            raise HTTPException(404, "no such petition")
        return p

    @router.get("/petitions/{slug}", response_class=HTMLResponse)
    async def petition_page(request: Request, slug: str) -> Response:
        await auth.require(request)
        lang = _lang(request)
        q = request.query_params.get("q") or None
        try:
            offset = max(0, int(request.query_params.get("offset") or 0))
        except ValueError:
            offset = 0
        async with _db(request).session() as s:
            p = await petition_store.petition_by_slug(s, slug)
            if p is None:
                raise HTTPException(404, "no such petition")
            count = await petitions.live_count(s, p)
            by_region = await petition_store.counts_by_region(s, p.id)
            rows, total = await queries.signatures(s, p.id, search=q, offset=offset)
        chart = charts.hbars(
            [(region_name(code, lang) if code and code != petitions.NO_REGION else
              t_plain(lang, _("No region given")), n, f"{n:,}") for code, n in by_region.items()],
            chart_id="petition-regions", title=t_plain(lang, _("Signatures by region")))
        return _page(request, "petition.html", {
            "p": p, "count": count, "chart": chart, "signatures": rows, "total": total, "q": q,
            "offset": offset, "page": queries.PAGE, "error": request.query_params.get("error"),
            "done": request.query_params.get("done"),
        })

    @router.get("/petitions/{slug}/live")
    async def petition_live(request: Request, slug: str) -> Response:
        await auth.require(request)
        p = await _petition(request, slug)
        return _live(request, lambda: _count(request, p.id))

    @router.post("/petitions/{slug}/{action}")
    async def petition_action(request: Request, slug: str, action: str) -> Response:
        form = await request.form()
        me = await auth.require_change(request, form)
        clock = request.app.state.clock
        back = f"/petitions/{slug}"
        try:
            async with _db(request).session() as s:
                if action == "open":
                    await petitions.open_petition(s, slug, actor=me.actor, clock=clock)
                elif action == "close":
                    await petitions.close_petition(s, slug, actor=me.actor, clock=clock)
                elif action == "invalidate":
                    return await _invalidate(request, s, slug, form, me)
                else:
                    raise HTTPException(404)
        except RuleError as exc:
            return _back(back, error=str(exc))
        return _back(back)

    async def _invalidate(request: Request, s: Any, slug: str, form: Any,
                          me: auth.Session) -> Response:
        """First a preview (how many, exactly), then the same conditions confirmed."""
        clock = request.app.state.clock
        since = _kst(str(form.get("since") or ""))
        until = _kst(str(form.get("until") or ""))
        source_ref = str(form.get("source_ref") or "").strip() or None
        region = str(form.get("region") or "").strip() or None
        reason = str(form.get("reason") or "")
        confirmed = form.get("confirm") == "yes"
        expected = form.get("expected")
        result = await petitions.invalidate(
            s, slug, reason=reason or "(preview)", actor=me.actor, clock=clock, dry_run=True,
            since=since, until=until, source_ref=source_ref, region=region)
        if confirmed and expected is not None and str(result.matched) != str(expected):
            # What would be invalidated changed since the preview: show the new preview.
            confirmed = False
        if not confirmed:
            return _page(request, "invalidate_preview.html", {
                "slug": slug, "matched": result.matched, "before": result.count_before,
                "form": {k: str(form.get(k) or "") for k in
                         ("since", "until", "source_ref", "region", "reason")},
            })
        done = await petitions.invalidate(s, slug, reason=reason, actor=me.actor, clock=clock,
                                          since=since, until=until, source_ref=source_ref,
                                          region=region)
        return _back(f"/petitions/{slug}", done=str(done.invalidated))

    # --- polls -----------------------------------------------------------------------------

    @router.get("/polls", response_class=HTMLResponse)
    async def poll_list(request: Request) -> Response:
        await auth.require(request)
        async with _db(request).session() as s:
            rows = [(p, await poll_store.voter_count(s, p.id)) for p in await poll_store.polls(s)]
            campaign_rows = await queries.campaigns(s)
        return _page(request, "polls.html", {"polls": rows, "campaigns": campaign_rows,
                                             "error": request.query_params.get("error")})

    @router.post("/polls")
    async def poll_create(request: Request) -> Response:
        form = await request.form()
        me = await auth.require_change(request, form)
        options = []
        for line in str(form.get("options") or "").splitlines():
            if line.strip():
                ko, _sep, en = line.partition("|")
                options.append((ko.strip(), en.strip() or None))
        try:
            async with _db(request).session() as s:
                poll = await polls.create_poll(
                    s, campaign_slug=str(form.get("campaign") or ""),
                    slug=str(form.get("slug") or ""),
                    question_ko=str(form.get("question_ko") or ""),
                    question_en=str(form.get("question_en") or "") or None,
                    kind=str(form.get("kind") or "yes_no_abstain"), options=options,
                    weights=str(form.get("weights") or "").replace(" ", "") or None,
                    eligible_tier="member" if form.get("members_only") else None,
                    secret=bool(form.get("secret")),
                    closes_at=_kst(str(form.get("closes_at") or "")),
                    clock=request.app.state.clock, actor=me.actor)
        except RuleError as exc:
            return _back("/polls", error=str(exc))
        return RedirectResponse(f"/polls/{poll.slug}", 303)

    async def _poll_fragment(request: Request, slug: str, lang: str) -> str:
        async with _db(request).session() as s:
            poll = await poll_store.poll_by_slug(s, slug)
            if poll is None:
                raise HTTPException(404, "no such poll")
            results = await polls.results(s, poll)
            voters = await poll_store.voter_count(s, poll.id)
        return render_results(request, poll, results, voters, lang)

    @router.get("/polls/{slug}", response_class=HTMLResponse)
    async def poll_page(request: Request, slug: str) -> Response:
        await auth.require(request)
        lang = _lang(request)
        async with _db(request).session() as s:
            poll = await poll_store.poll_by_slug(s, slug)
        if poll is None:
            raise HTTPException(404, "no such poll")
        return _page(request, "poll.html", {
            "poll": poll, "results": Markup(await _poll_fragment(request, slug, lang)),
            "error": request.query_params.get("error")})

    @router.get("/polls/{slug}/live")
    async def poll_live(request: Request, slug: str) -> Response:
        await auth.require(request)
        lang = _lang(request)
        await _poll_fragment(request, slug, lang)  # 404 before the stream starts
        return _live(request, lambda: _poll_fragment(request, slug, lang),
                     encode=lambda v: orjson.dumps({"html": v}).decode())

    @router.post("/polls/{slug}/{action}")
    async def poll_action(request: Request, slug: str, action: str) -> Response:
        form = await request.form()
        me = await auth.require_change(request, form)
        clock = request.app.state.clock
        try:
            async with _db(request).session() as s:
                if action == "close":
                    await polls.close_poll(s, slug, actor=me.actor, clock=clock)
                elif action == "open":
                    await polls.open_poll(s, slug, actor=me.actor, clock=clock)
                else:
                    raise HTTPException(404)
        except RuleError as exc:
            return _back(f"/polls/{slug}", error=str(exc))
        return _back(f"/polls/{slug}")

    # --- broadcasts ------------------------------------------------------------------------

    @router.get("/broadcasts", response_class=HTMLResponse)
    async def broadcast_list(request: Request) -> Response:
        await auth.require(request)
        from storage import broadcasts as broadcast_store

        async with _db(request).session() as s:
            rows = await broadcast_store.recent(s)
        return _page(request, "broadcasts.html", {"broadcasts": rows})

    @router.get("/broadcasts/new", response_class=HTMLResponse)
    async def composer(request: Request) -> Response:
        await auth.require(request)
        async with _db(request).session() as s:
            petition_rows = await petition_store.petitions(s)
            poll_rows = await poll_store.polls(s)
            bot = await queries.default_telegram_bot(s)
            tags = await queries.tag_counts(s, bot.id) if bot else []
        return _page(request, "broadcast_new.html", {
            "petitions": petition_rows, "polls": poll_rows, "tags": tags,
            "error": request.query_params.get("error"), "form": {}})

    @router.get("/broadcasts/audience-count")
    async def audience_count(request: Request) -> JSONResponse:
        await auth.require(request)
        lang = _lang(request)
        text = request.query_params.get("audience", "")
        async with _db(request).session() as s:
            bot = await queries.default_telegram_bot(s)
        if bot is None:
            return JSONResponse({"count": 0, "description": ""})
        try:
            count = await bc.preview_size(_db(request), bot.id, text)
            description = audiences.describe(audiences.parse(text), lang)
        except audiences.AudienceError as exc:
            return JSONResponse({"error": exc.message(lang)})
        return JSONResponse({"count": count, "description": description})

    @router.get("/broadcasts/preview")
    async def preview(request: Request) -> JSONResponse:
        await auth.require(request)
        lang = _lang(request)
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

    def _draft(form: Any) -> bc.Draft:
        buttons = []
        for line in str(form.get("buttons") or "").splitlines():
            if line.strip():
                buttons.append([bc.parse_button(line)])
        when = str(form.get("when") or "now")
        send_at = _kst(str(form.get("send_at") or "")) if when in ("at", "window") else None
        window = None
        if when == "window":
            try:
                window = float(str(form.get("window_minutes") or "0"))
            except ValueError:
                raise bc.BroadcastError(_("The sending window cannot be negative.")) from None
        return bc.Draft(
            texts={lang: str(form.get(f"text_{lang}") or "") for lang in LANGUAGES
                   if str(form.get(f"text_{lang}") or "").strip()},
            audience=str(form.get("audience") or ""), buttons=buttons or None,
            poll=str(form.get("poll") or "") or None,
            campaign=str(form.get("campaign") or "") or None,
            send_at=send_at, window_minutes=window)

    @router.post("/broadcasts")
    async def broadcast_create(request: Request) -> Response:
        form = await request.form()
        me = await auth.require_change(request, form)
        lang = _lang(request)
        test_only = form.get("intent") == "test"
        async with _db(request).session() as s:
            bot = await queries.default_telegram_bot(s)
        try:
            if bot is None:
                raise bc.BroadcastError(_("There is no bot to send with."))
            draft = _draft(form)
            status = await bc.compose(_db(request), request.app.state.clock, bot_id=bot.id,
                                      draft=draft, created_by=me.actor, schedule=not test_only)
        except (bc.BroadcastError, audiences.AudienceError, RuleError) as exc:
            async with _db(request).session() as s:
                petition_rows = await petition_store.petitions(s)
                poll_rows = await poll_store.polls(s)
                tags = await queries.tag_counts(s, bot.id) if bot else []
            return _page(request, "broadcast_new.html", {
                "petitions": petition_rows, "polls": poll_rows, "tags": tags,
                "error": _error_text(exc, lang),
                "form": {k: str(v) for k, v in form.items() if k != "csrf"}},
                status_code=400)
        if test_only:
            sent = await _test_send(request, me, status["id"])
            return _back(f"/broadcasts/{status['id']}", test="sent" if sent else "failed")
        return RedirectResponse(f"/broadcasts/{status['id']}", 303)

    async def _test_send(request: Request, me: auth.Session, broadcast_id: int) -> bool:
        chat = me.organiser.telegram_user_id
        if not chat or not str(chat).isdigit():
            return False
        from storage import supporters as supporter_store

        async with _db(request).session() as s:
            bot = await queries.default_telegram_bot(s)
            known = await supporter_store.find(s, bot.id, "telegram", str(chat)) if bot else None
        language = known.supporter.language if known else _lang(request)
        message = await bc.test_message(_db(request), broadcast_id, language=language,
                                        name=(known.supporter.display_name if known else None)
                                        or me.name,
                                        region=known.supporter.region if known else None)
        async with _db(request).session() as s:
            from storage import supporters as supporter_store

            await supporter_store.audit(s, actor=me.actor, action="broadcast.test",
                                        target=f"broadcast:{broadcast_id}",
                                        now=request.app.state.clock.now())
        return await _send_telegram(request, int(chat), message)

    @router.get("/broadcasts/{broadcast_id}", response_class=HTMLResponse)
    async def broadcast_page(request: Request, broadcast_id: int) -> Response:
        await auth.require(request)
        lang = _lang(request)
        try:
            status = await bc.status(_db(request), broadcast_id)
        except bc.BroadcastError:
            raise HTTPException(404, "no such broadcast") from None
        texts = status["details"]["texts"]
        return _page(request, "broadcast.html", {
            "b": status, "progress": _progress(status),
            "audience_text": audiences.describe(status["details"]["audience_filter"], lang),
            "previews": {k: preview_html(v) for k, v in texts.items()},
            "error": request.query_params.get("error"), "test": request.query_params.get("test"),
        })

    @router.get("/broadcasts/{broadcast_id}/live")
    async def broadcast_live(request: Request, broadcast_id: int) -> Response:
        await auth.require(request)

        async def fetch() -> dict[str, Any]:
            status = await bc.status(_db(request), broadcast_id)
            return {**{k: status[k] for k in ("status", "audience", "sent", "blocked", "failed",
                                              "pending")}, "percent": _progress(status)}

        return _live(request, fetch)

    @router.post("/broadcasts/{broadcast_id}/{action}")
    async def broadcast_action(request: Request, broadcast_id: int, action: str) -> Response:
        form = await request.form()
        me = await auth.require_change(request, form)
        clock = request.app.state.clock
        back = f"/broadcasts/{broadcast_id}"
        try:
            if action in ("pause", "resume", "cancel"):
                await bc.control(_db(request), clock, broadcast_id, action, actor=me.actor)
            elif action == "schedule":
                await bc.schedule(_db(request), clock, broadcast_id, actor=me.actor)
            elif action == "test":
                sent = await _test_send(request, me, broadcast_id)
                return _back(back, test="sent" if sent else "failed")
            else:
                raise HTTPException(404)
        except bc.BroadcastError as exc:
            return _back(back, error=exc.message(_lang(request)))
        return _back(back)

    # --- supporters, import, exports ---------------------------------------------------------

    @router.get("/supporters", response_class=HTMLResponse)
    async def supporter_list(request: Request) -> Response:
        await auth.require(request)
        qp = request.query_params
        filters = {k: qp.get(k) or None for k in ("region", "tier", "status", "tag", "q")}
        try:
            offset = max(0, int(qp.get("offset") or 0))
        except ValueError:
            offset = 0
        async with _db(request).session() as s:
            bot = await queries.default_telegram_bot(s)
            rows, total = await queries.supporters(
                s, bot.id, region=filters["region"], tier=filters["tier"],
                status=filters["status"], tag=filters["tag"], search=filters["q"],
                offset=offset) if bot else ([], 0)
            tags = await queries.tag_counts(s, bot.id) if bot else []
        return _page(request, "supporters.html", {
            "supporters": rows, "total": total, "tags": tags, "filters": filters,
            "qs": urlencode({k: v for k, v in filters.items() if v}),
            "offset": offset, "page": queries.PAGE})

    @router.post("/supporters/import", response_class=HTMLResponse)
    async def supporter_import(request: Request) -> Response:
        form = await request.form()
        me = await auth.require_change(request, form)
        lang = _lang(request)
        upload = form.get("file")
        data = await upload.read() if upload is not None and hasattr(upload, "read") else b""
        result: importer.ImportResult | None = None
        error = None
        try:
            text = importer.decode(data)
            async with _db(request).session() as s:
                bot = await queries.default_telegram_bot(s)
                if bot is None:
                    error = t_plain(lang, _("There is no bot to send with."))
                else:
                    result = await importer.import_supporters(
                        s, bot.id, text, request.app.state.clock,
                        skip_invalid=bool(form.get("skip_invalid")),
                        dry_run=bool(form.get("dry_run")), actor=me.actor)
            if result is not None:
                await importer.after_import(_db(request), result)
        except importer.UnreadableFile:
            error = t_plain(lang, importer.M_UNREADABLE)
        return _page(request, "import_result.html", {
            "result": result, "error": error,
            "problems": [(p.line, p.text(lang)) for p in (result.problems if result else [])]})

    async def _require_export(request: Request) -> auth.Session:
        me = await auth.require(request)
        if not allows(me.role, MANAGE):
            raise HTTPException(403, "viewers cannot export personal data")
        return me

    @router.get("/export/supporters.{fmt}")
    async def export_supporters(request: Request, fmt: str) -> Response:
        me = await _require_export(request)
        if fmt not in ("csv", "json"):
            raise HTTPException(404)
        out = io.StringIO()
        async with _db(request).session() as s:
            bot = await queries.default_telegram_bot(s)
            if bot is not None:
                await importer.export_supporters(s, bot.id, out, request.app.state.clock,
                                                 fmt=fmt, actor=me.actor)
        return _download(out.getvalue(), f"supporters.{fmt}", fmt)

    @router.get("/export/signatures.{fmt}")
    async def export_signatures(request: Request, fmt: str) -> Response:
        me = await _require_export(request)
        if fmt not in ("csv", "json"):
            raise HTTPException(404)
        slug = request.query_params.get("petition")
        rows: list[dict[str, Any]] = []
        async with _db(request).session() as s:
            pid = None
            if slug:
                p = await petition_store.petition_by_slug(s, slug)
                if p is None:
                    raise HTTPException(404, "no such petition")
                pid = p.id
            async for batch in queries.iter_signatures(s, pid):
                rows.extend(batch)
            from storage import supporters as supporter_store

            await supporter_store.audit(s, actor=me.actor, action="signatures.exported",
                                        target=f"petition:{pid}" if pid else None,
                                        now=request.app.state.clock.now(),
                                        details={"count": len(rows), "format": fmt})
        return _table_download(rows, ["petition", "signed_at", "name", "region", "valid"],
                               f"signatures.{fmt}", fmt)

    @router.get("/export/polls/{slug}.{fmt}")
    async def export_poll(request: Request, slug: str, fmt: str) -> Response:
        me = await _require_export(request)
        if fmt not in ("csv", "json"):
            raise HTTPException(404)
        async with _db(request).session() as s:
            try:
                # Stored answers and ballots without supporter ids: a secret ballot stays
                # secret, and anyone can recompute the published result from the file.
                rows = await polls.stored_ballots(s, slug)
            except RuleError:
                raise HTTPException(404, "no such poll") from None
            from storage import supporters as supporter_store

            await supporter_store.audit(s, actor=me.actor, action="poll.answers_exported",
                                        target=f"poll:{slug}", now=request.app.state.clock.now(),
                                        details={"count": len(rows), "format": fmt})
        return _table_download(rows, ["choices", "tier", "region", "weight"],
                               f"poll-{slug}.{fmt}", fmt)

    return router


async def _count(request: Request, petition_id: int) -> dict[str, Any]:
    """A petition's live count, read at most once a second per process however many
    browsers watch it (public pages can have thousands of viewers)."""
    import time

    cache: dict[int, tuple[float, dict[str, Any]]] | None = getattr(
        request.app.state, "live_counts", None)
    if cache is None:
        cache = request.app.state.live_counts = {}
    now = time.monotonic()
    hit = cache.get(petition_id)
    if hit is not None and now - hit[0] < LIVE_INTERVAL * 0.9:
        return hit[1]
    async with _db(request).session() as s:
        p = await petition_store.petition_by_id(s, petition_id)
        if p is None:
            return {"count": 0}
        count = await petitions.live_count(s, p)
        value = {"count": count, "status": p.status,
                 "next_milestone": next((m for m in p.milestones if m > count), None)}
    cache[petition_id] = (now, value)
    return value


def _progress(status: dict[str, Any]) -> int:
    total = int(status["audience"] or 0)
    if status["status"] in ("done", "cancelled"):
        return 100
    if not total:
        return 0
    return min(100, int(100 * (total - int(status["pending"])) / total))


def render_results(request: Request, poll: Any, results: polls.Results, voters: int,
                   lang: str) -> str:
    """The results block (charts raw and weighted, by tier and by region) as HTML."""
    def label(i: int) -> str:
        option = poll.options[i]
        return str(option.get(lang) or option.get("ko"))

    def block(b: polls.Breakdown, chart_id: str, weighted: bool) -> Markup:
        items = []
        for i, cell in enumerate(b.options):
            if weighted:
                share = float(cell.weight / b.weighted_voters) if b.weighted_voters else 0.0
                items.append((label(i), float(cell.weight),
                              f"{polls.rounded(cell.weight)} ({float(share) * 100:.0f}%)"))
            else:
                share = float(cell.count / b.voters) if b.voters else 0.0
                items.append((label(i), float(cell.count), f"{cell.count:,} ({share * 100:.0f}%)"))
        return charts.hbars(items, chart_id=chart_id, color="#7a4fd6" if weighted else "#2d6cdf")

    # In a secret ballot a small group's figures would reveal its members' choices: the bot
    # leaves them out of what voters see, and so does the dashboard.
    least = polls.MIN_SECRET_GROUP if poll.secret else 0
    groups = [(t_plain(lang, tier), b) for tier, b in results.by_tier.items()
              if b.voters >= least]
    regions = [(region_name(code, lang) if code else t_plain(lang, _("No region given")), b)
               for code, b in results.by_region.items() if b.voters >= least]
    templates = request.app.state.templates
    template = templates.env.get_template("poll_results.html")

    def translate(msgid: str, **params: Any) -> str:
        return t_plain(lang, msgid, **params)

    return str(template.render(
        _=translate, poll=poll, voters=voters, overall=results.overall, block=block,
        tiers=groups, regions=regions, weighted=any(w != "1" for w in poll.weights.values()),
        hidden=bool(getattr(results, "hidden", False))))


def _download(body: str, filename: str, fmt: str) -> Response:
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    if fmt == "csv":
        body = "\ufeff" + body  # Excel opens Korean CSV correctly with a BOM
    return Response(body, media_type=media, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
        "Cache-Control": "no-store"})


def _table_download(rows: list[dict[str, Any]], columns: list[str], filename: str,
                    fmt: str) -> Response:
    if fmt == "json":
        return _download(orjson.dumps(rows).decode(), filename, fmt)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = ["" if row.get(c) is None else str(row.get(c)) for c in columns]
        writer.writerow([quote_formula(v) for v in values])
    return _download(out.getvalue(), filename, fmt)


_EXTRA = (_("supporter"), _("member"))


async def overview_extras(session: Any, overview: Any, lang: str) -> dict[str, Any]:
    """What the overview adds to campaigns.dashboard: charts, tiers, reachable vs blocked."""
    reach = await queries.reachability(session)
    regions = charts.hbars(
        [(region_name(r.code, lang) if r.code else t_plain(lang, _("No region given")), r.count,
          f"{r.count:,}") for r in overview.regions if r.count],
        chart_id="chart-regions", title=t_plain(lang, _("Active supporters by region")))
    days = charts.columns([(d.day.strftime("%m-%d"), d.count) for d in overview.days],
                          chart_id="chart-days", title=t_plain(lang, _("Sign-ups by day")))
    return {"reach": reach, "chart_regions": regions, "chart_days": days,
            "tiers": {"member": overview.members, "supporter": overview.active - overview.members}}
