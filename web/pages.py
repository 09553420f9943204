"""What every server-rendered page shares: the language, the page frame, redirects back,
live (Server-Sent Events) streams, the default bot, poll results and file downloads.

The dashboard's feature modules and the public pages import these by their public
names; nothing here imports a router.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlencode

import orjson
from fastapi import Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from sse_starlette.sse import EventSourceResponse

from campaigns import broadcasts as bc
from campaigns import petitions, polls
from campaigns.errors import RuleError
from campaigns.i18n import DEFAULT_LANGUAGE, LANGUAGES, _, t_plain
from campaigns.regions import REGIONS, region_name
from campaigns.text import quote_formula
from campaigns.times import DISPLAY_TZ
from campaigns.x.results import share as x_share
from storage import dashboard as queries
from storage import petitions as petition_store
from storage.db import Database
from web import auth, charts

T = TypeVar("T")

LANG_COOKIE = "nalgae_lang"
LIVE_INTERVAL = 1.0
NO_REGION = _("No region given")

# What a form handler shows back to the organiser instead of failing: one family.
RULE_ERRORS: tuple[type[Exception], ...] = (RuleError,)


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def language(request: Request) -> str:
    """?lang= (remembered in a cookie), else the cookie, else the browser's, else Korean."""
    for candidate in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if candidate in LANGUAGES:
            return candidate
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def render(
    request: Request, lang: str, name: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    """A template in `lang`, with `_` translating; remembers a chosen ?lang= in a cookie."""
    templates: Jinja2Templates = request.app.state.templates

    def translate(msgid: str, **params: Any) -> str:
        return t_plain(lang, msgid, **params)

    response = templates.TemplateResponse(
        request, name,
        {"_": translate, "lang": lang, "other_lang": "en" if lang == "ko" else "ko",
         "has_sandbox": bool(request.app.state.sandbox_url), **context},
        status_code=status_code,
    )
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax")
    return response


def page(request: Request, name: str, ctx: dict[str, Any], status_code: int = 200,
         session: auth.Session | None = None) -> Response:
    """A dashboard or public page: `render` plus who is signed in and the shared filters."""
    lang = language(request)
    session = session or getattr(request.state, "session", None)
    return render(request, lang, name, {
        "me": session, "csrf": session.csrf if session else "",
        "can_change": bool(session and session.can_change),
        "region_label": lambda code: region_name(code, lang) if code else t_plain(
            lang, NO_REGION),
        "kst": lambda at: at.astimezone(DISPLAY_TZ).strftime("%Y-%m-%d %H:%M") if at else "",
        "regions": REGIONS, **ctx,
    }, status_code=status_code)


def absolute(request: Request, path: str) -> str:
    """An absolute URL for links that leave the site (shares, QR codes, sign-in links): from
    NALGAE_PUBLIC_URL, never from the request's Host, which a client chooses."""
    base: str = request.app.state.settings.base_url
    return base + path


def back(url: str, **params: str) -> RedirectResponse:
    """303 to `url` with the non-empty `params` added to its query."""
    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(url + (("&" if "?" in url else "?") + query if query else ""), 303)


def error_text(exc: Exception, lang: str) -> str:
    """A refusal as the organiser reads it, in their language."""
    return exc.message(lang) if isinstance(exc, RuleError) else str(exc)


def live(request: Request, fetch: Callable[[], Awaitable[Any]],
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


async def live_html(request: Request, fragment: Callable[[], Awaitable[str]]) -> Response:
    """`live` for a rendered HTML fragment (results pages); a 404 comes before the stream."""
    await fragment()
    return live(request, fragment, encode=lambda v: orjson.dumps({"html": v}).decode())


async def live_count(request: Request, petition_id: int) -> dict[str, Any]:
    """A petition's live count, read at most once a second per process however many
    browsers watch it (public pages can have thousands of viewers)."""
    cache: dict[int, tuple[float, dict[str, Any]]] | None = getattr(
        request.app.state, "live_counts", None)
    if cache is None:
        cache = request.app.state.live_counts = {}
    now = time.monotonic()
    hit = cache.get(petition_id)
    if hit is not None and now - hit[0] < LIVE_INTERVAL * 0.9:
        return hit[1]
    async with database(request).session() as s:
        p = await petition_store.petition_by_id(s, petition_id)
        if p is None:
            return {"count": 0}
        count = await petitions.live_count(s, p)
        value = {"count": count, "status": p.status,
                 "next_milestone": next((m for m in p.milestones if m > count), None)}
    cache[petition_id] = (now, value)
    return value


# A summary that took longer than SLOW_SUMMARY_S to compute is reused for SUMMARY_TTL_S.
SLOW_SUMMARY_S = 0.15
SUMMARY_TTL_S = 30.0


async def slow_summary(request: Request, key: str, fetch: Callable[[], Awaitable[T]],
                       ttl: float = SUMMARY_TTL_S) -> T:
    """`fetch()`, reused within this process for `ttl` seconds when it was slow to compute.

    Aggregates over every supporter (the tag list) take seconds
    at a million people and change slowly; several organisers (or one reloading) share
    one reading. A quick one, as on any small deployment, is computed every time, so
    figures there are always exact and current.
    """
    cache: dict[str, tuple[float, Any]] | None = getattr(request.app.state,
                                                          "slow_summaries", None)
    if cache is None:
        cache = request.app.state.slow_summaries = {}
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and now - hit[0] < ttl:
        return cast(T, hit[1])
    value = await fetch()
    if time.monotonic() - now > SLOW_SUMMARY_S:
        cache[key] = (now, value)
    else:
        cache.pop(key, None)
    return value


def _token(request: Request, stored: str | None) -> str | None:
    """A stored bot token decrypted; None when this process's key cannot read it (the
    start-up check and the fleet's log already name that bot)."""
    from storage.secrets import SecretKeyError

    try:
        return database(request).keyring.reveal(stored)
    except SecretKeyError:
        return None


async def send_telegram(request: Request, chat_id: int, message: bc.OutgoingMessage) -> bool:
    """Send one message through the default bot (login links, test sends)."""
    from bots.channel import Outcome
    from bots.telegram.sender import TelegramSender, make_http_session

    async with database(request).session() as s:
        bot = await queries.default_telegram_bot(s)
    token = _token(request, bot.token) if bot is not None else None
    if bot is None or not token:
        return False
    async with make_http_session(pool=2) as http:
        result = await TelegramSender(token, bot.base_url or "", session=http).send(
            chat_id, message)
    return result.outcome is Outcome.SENT


async def bot_username(request: Request) -> str | None:
    """The default bot's @username (asked once with getMe, then kept in the bot row)."""
    cached = getattr(request.app.state, "bot_username", None)
    if cached:
        return str(cached)
    async with database(request).session() as s:
        bot = await queries.default_telegram_bot(s)
        if bot is None:
            return None
        if bot.username:
            request.app.state.bot_username = bot.username
            return str(bot.username)
        token, base_url, bot_id = bot.token, bot.base_url, bot.id
    token = _token(request, token)
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
    async with database(request).session() as s:
        await queries.set_bot_username(s, bot_id, username)
    request.app.state.bot_username = username
    return username


def _results_block(poll: Any, lang: str, b: polls.Breakdown, chart_id: str,
                   weighted: bool) -> Markup:
    """One chart of a poll's results, counted raw or weighted."""
    items = []
    for i, cell in enumerate(b.options):
        option = poll.options[i]
        label = str(option.get(lang) or option.get("ko"))
        if weighted:
            share = float(cell.weight / b.weighted_voters) if b.weighted_voters else 0.0
            items.append((label, float(cell.weight),
                          f"{polls.rounded(cell.weight)} ({float(share) * 100:.0f}%)"))
        else:
            share = float(cell.count / b.voters) if b.voters else 0.0
            items.append((label, float(cell.count), f"{cell.count:,} ({share * 100:.0f}%)"))
    return charts.hbars(items, chart_id=chart_id, color="#7a4fd6" if weighted else "#2d6cdf")


def _x_block(poll: Any, lang: str, x: dict[str, Any]) -> Markup:
    """The X column's chart: native X poll totals, counted apart from everything else."""
    total = int(x["voters"])
    items = []
    for option in x["options"]:
        i, count = int(option["index"]), int(option["count"])
        label = (str(poll.options[i].get(lang) or poll.options[i].get("ko"))
                 if i < len(poll.options) else str(option["label"]))
        items.append((label, float(count), f"{count:,} ({x_share(count, total)}%)"))
    return charts.hbars(items, chart_id="chart-x", color="#555555")


def render_results(request: Request, poll: Any, results: polls.Results, voters: int,
                   lang: str, x: dict[str, Any] | None = None) -> str:
    """The results block (charts raw and weighted, by tier and by region) as HTML; with
    ``x`` (campaigns.x.results.x_column) the anonymous X column below them."""
    def block(b: polls.Breakdown, chart_id: str, weighted: bool) -> Markup:
        return _results_block(poll, lang, b, chart_id, weighted)

    # A small group's figures would reveal its members' choices: the one rule of
    # polls.too_small leaves them out here as in the bot and the API.
    def size(b: polls.Breakdown) -> int:
        return b.voters

    groups = [(t_plain(lang, tier), b)
              for tier, b in polls.shown_groups(results.by_tier, size).items()]
    regions = [(region_name(code, lang) if code else t_plain(lang, NO_REGION), b)
               for code, b in polls.shown_groups(results.by_region, size).items()]
    templates = request.app.state.templates
    template = templates.env.get_template("poll_results.html")

    def translate(msgid: str, **params: Any) -> str:
        return t_plain(lang, msgid, **params)

    return str(template.render(
        _=translate, poll=poll, voters=voters, overall=results.overall, block=block,
        tiers=groups, regions=regions, weighted=any(w != "1" for w in poll.weights.values()),
        hidden=bool(getattr(results, "hidden", False)), x=x,
        x_chart=_x_block(poll, lang, x) if x and x["closed"] else None))


def download(body: str, filename: str, fmt: str) -> Response:
    """A file to save (csv with a BOM for Excel, or json), never cached."""
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    if fmt == "csv":
        body = "\ufeff" + body  # Excel opens Korean CSV correctly with a BOM
    return Response(body, media_type=media, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
        "Cache-Control": "no-store"})


def stream_download(pieces: AsyncIterator[str], filename: str, fmt: str) -> Response:
    """`download`, sent as it is produced: a million-row export never sits in memory."""
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"

    async def body() -> AsyncIterator[bytes]:
        if fmt == "csv":
            yield "\ufeff".encode()  # Excel opens Korean CSV correctly with a BOM
        async for piece in pieces:
            if piece:
                yield piece.encode()

    return StreamingResponse(body(), media_type=media, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
        "Cache-Control": "no-store"})


def table_chunks(rows: list[dict[str, Any]], columns: list[str], fmt: str,
                 first: bool) -> str:
    """One batch of `table_download` rows as text (`first`: the batch opening the file)."""
    if fmt == "json":
        return "".join(("" if first and i == 0 else ",") + orjson.dumps(r).decode()
                       for i, r in enumerate(rows))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        values = ["" if row.get(c) is None else str(row.get(c)) for c in columns]
        writer.writerow([quote_formula(v) for v in values])
    return out.getvalue()


def table_download(rows: list[dict[str, Any]], columns: list[str], filename: str,
                   fmt: str) -> Response:
    """`rows` as a json list, or a csv of `columns` safe to open in a spreadsheet."""
    if fmt == "json":
        return download(orjson.dumps(rows).decode(), filename, fmt)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = ["" if row.get(c) is None else str(row.get(c)) for c in columns]
        writer.writerow([quote_formula(v) for v in values])
    return download(out.getvalue(), filename, fmt)
