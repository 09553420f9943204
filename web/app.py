"""The ASGI app, assembled: every web process (`nalgae run`, `nalgae web`) and every
test builds it with `create_app`, so tests go through the mount users get.

Only assembly lives here: the pages are in web/dashboard/ (one router per feature),
web/public.py, web/sandbox.py and web/health.py; what they share is web/pages.py;
the HTTP API is web/api/. The app holds no state of its own beyond the Database and
Settings it is given, so any number of copies can run behind a load balancer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.trustedhost import TrustedHostMiddleware

from bots.telegram.runtime import TelegramRuntime
from bots.telegram.webhook import Runtimes, webhook_asgi
from campaigns.clock import Clock, SystemClock
from campaigns.settings import Settings
from storage.db import Database
from web import api, auth, health, public, public_events, sandbox
from web.dashboard import dashboard_router
from web.throttle import Throttle

WEB_DIR = Path(__file__).parent
WEBHOOK_PATH = "/telegram/webhook"


def _no_bots() -> Sequence[TelegramRuntime]:
    return ()


def create_app(
    settings: Settings,
    db: Database,
    *,
    telegram: Runtimes = _no_bots,
    webhook_path: str = WEBHOOK_PATH,
    sandbox_url: str | None = None,
    sandbox_token: str | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """Build the web app: pages, dashboard, HTTP API, /metrics, and the Telegram webhook.

    `telegram` names the bots whose webhook updates POST `webhook_path` accepts (the
    secret header says which); it is answered in front of the app's middleware stack
    (see bots/telegram/webhook.py). ``sandbox_url`` (e.g. ``http://127.0.0.1:8081``)
    enables the `/sandbox` chat page against the sandbox Bot API's user endpoints;
    without it (a real token is configured) the page does not exist. The caller owns
    ``db``.
    """
    app = FastAPI(title="nalgae", docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.settings = settings
    app.state.db = db
    app.state.clock = clock or SystemClock()
    app.state.sandbox_url = sandbox_url.rstrip("/") if sandbox_url else None
    app.state.sandbox_token = sandbox_token
    app.state.throttle = Throttle(settings.redis_url)
    app.state.background = set()  # tasks answered before they finish (sign-in links)
    app.state.templates = Jinja2Templates(env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    ))
    app.state.content_security_policy = _csp(app.state.sandbox_url)
    app.middleware("http")(_security_headers)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    app.include_router(health.router)
    app.include_router(sandbox.router)
    app.include_router(dashboard_router())
    app.include_router(public.router)
    app.include_router(public_events.router)
    # The HTTP API (/api/v1), its JSON error answers and /metrics: in every web process.
    api.install(app)
    # Only the configured host is served (a forged Host cannot poison what pages build).
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))
    # Added last, so outermost: a webhook call skips the middleware written for browsers,
    # the host check included: its secret header authenticates it, and a load balancer
    # may forward it under an internal name.
    app.add_middleware(webhook_asgi, runtimes=telegram, path=webhook_path)
    return app


def _csp(sandbox_url: str | None) -> str:
    """No inline script anywhere (pages load /static/*.js; JSON data blocks are not run);
    inline style attributes stay allowed for progress bars and SVG charts. The sandbox chat
    page talks to the sandbox Bot API on its own port."""
    sandbox = f" {urlsplit(sandbox_url).scheme}://{urlsplit(sandbox_url).netloc}" \
        if sandbox_url else ""
    return ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data:{sandbox}; connect-src 'self'{sandbox}; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


# FastAPI's API reference page loads Swagger UI from its CDN with an inline bootstrap
# script: that one page gets its own policy.
_DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
             "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: "
             "https://fastapi.tiangolo.com; object-src 'none'; base-uri 'none'; "
             "frame-ancestors 'none'")


async def _security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    auth.refresh_cookie(request, response)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        _DOCS_CSP if request.url.path == request.app.docs_url
        else request.app.state.content_security_policy)
    if request.app.state.settings.https:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
