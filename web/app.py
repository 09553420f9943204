"""The ASGI app: health check, organiser dashboard, sandbox chat page, and whatever routers
the caller adds (the Telegram webhook, the HTTP API).

One app serves every web process; it holds no state of its own beyond the
Database and Settings it is given, so any number of copies can run behind a load
balancer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import text

from campaigns import dashboard
from campaigns.clock import Clock, SystemClock
from campaigns.i18n import DEFAULT_LANGUAGE, LANGUAGES, _, t_plain
from campaigns.regions import region_name
from campaigns.settings import Settings
from storage.db import Database

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent
LANG_COOKIE = "nalgae_lang"
HEALTH_TIMEOUT = 5.0

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(
    settings: Settings,
    db: Database,
    *,
    routers: Sequence[APIRouter] = (),
    sandbox_url: str | None = None,
    sandbox_token: str | None = None,
    clock: Clock | None = None,
    lifespan: Lifespan | None = None,
) -> FastAPI:
    """Build the web app.

    ``routers`` are included as given: this is where the Telegram webhook route and
    the HTTP API plug in. ``sandbox_url`` (e.g. ``http://127.0.0.1:8081``) enables the
    `/sandbox` chat page against the sandbox Bot API's user endpoints; without it (a
    real token is configured) the page does not exist. ``lifespan`` runs around the
    app's life (start the bot, the delivery loop...); the caller owns ``db``.
    """
    app = FastAPI(title="nalgae", docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json", lifespan=lifespan)
    app.state.settings = settings
    app.state.db = db
    app.state.clock = clock or SystemClock()
    app.state.sandbox_url = sandbox_url.rstrip("/") if sandbox_url else None
    app.state.sandbox_token = sandbox_token

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    templates = Jinja2Templates(env=env)
    app.state.templates = templates

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    app.include_router(_pages())
    from web.dashboard import dashboard_router
    from web.public import public_router

    app.include_router(dashboard_router())
    app.include_router(public_router())
    # The HTTP API (/api/v1), its JSON error answers and /metrics: in every web process.
    from web import api

    api.install(app)
    for router in routers:
        app.include_router(router)
    return app


def _pages() -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> JSONResponse:
        """200 when the database answers; 503 otherwise (load balancers take it out)."""
        db: Database = request.app.state.db
        try:
            await asyncio.wait_for(_ping(db), HEALTH_TIMEOUT)
        except Exception as exc:
            # The exception text may contain the database URL; log its type only.
            log.warning("health check: database unreachable (%s)", type(exc).__name__)
            return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    @router.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home(request: Request) -> Response:
        from web import auth
        from web.dashboard import overview_extras

        me = await auth.require(request)  # supporter counts are for organisers only
        lang = _language(request)
        app = request.app
        async with app.state.db.session() as session:
            overview = await dashboard.overview(session, app.state.clock)
            extras = await overview_extras(session, overview, lang)
        return _render(request, lang, "dashboard.html", {
            "overview": overview, "me": me, "csrf": me.csrf, **extras,
            "region_name": lambda code: region_name(code, lang) if code else t_plain(
                lang, NO_REGION),
        })

    @router.get("/sandbox", response_class=HTMLResponse, include_in_schema=False)
    async def sandbox_page(request: Request) -> Response:
        lang = _language(request)
        url = request.app.state.sandbox_url
        if not url:
            return _render(request, lang, "no_sandbox.html", {}, status_code=404)
        return _render(request, lang, "sandbox.html", {
            "config": {
                "sandboxUrl": url,
                "token": request.app.state.sandbox_token,
                "lang": lang,
                "texts": {key: t_plain(lang, msgid) for key, msgid in SANDBOX_TEXTS.items()},
            },
        })

    return router


async def _ping(db: Database) -> None:
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def _language(request: Request) -> str:
    """?lang= (remembered in a cookie), else the cookie, else the browser's, else Korean."""
    for candidate in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if candidate in LANGUAGES:
            return candidate
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def _render(
    request: Request, lang: str, name: str, context: dict[str, Any], status_code: int = 200
) -> Response:
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


NO_REGION = _("No region given")

# Texts the sandbox page's script shows (keys used in web/static/sandbox.js).
SANDBOX_TEXTS: dict[str, str] = {
    "start": _("Start chatting"),
    "name": _("Your name"),
    "userId": _("Telegram user id"),
    "language": _("Telegram language"),
    "send": _("Send"),
    "placeholder": _("Write a message…"),
    "block": _("Block the bot"),
    "unblock": _("Unblock the bot"),
    "blocked": _("You blocked the bot: it cannot write to you."),
    "newUser": _("New person"),
    "unreachable": _("The sandbox does not answer. Is `nalgae run` still running?"),
    "document": _("Document"),
    "poll": _("Poll"),
}
