"""Dashboard sessions: a signed cookie, a CSRF token per session, roles checked per request.

The cookie holds the organiser id, the session's CSRF token, the organiser's session
version and when the session began, signed with NALGAE_SECRET_KEY. The organiser row is
read on every request: its role decides what may be done, and a session whose version
is not the row's any more (signed out, new password, new role) or whose organiser was
removed is over at once, in every web process. A session also ends after IDLE_SECONDS
without a request (the cookie is re-signed as it is used) and SESSION_SECONDS after
sign-in. Pages (GET) send a stranger to the sign-in page; any change (POST) without a
session, with a wrong CSRF token or by a viewer is refused with 403 before anything is
touched, and the refusal is audited.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request, Response
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from campaigns.organisers import MANAGE, VIEW, actor, allows
from storage import signin as store
from storage import supporters
from storage.db import Database
from storage.models import Organiser

SESSION_COOKIE = "nalgae_session"
PRE_CSRF_COOKIE = "nalgae_csrf"  # double-submit token for the sign-in forms (no session yet)
SESSION_SECONDS = 12 * 3600  # from sign-in, however busy
IDLE_SECONDS = 3600  # without a request
REFRESH_SECONDS = 60  # re-sign the cookie (for the idle clock) at most this often

__all__ = ["MANAGE", "VIEW", "Session", "current", "require", "require_change"]


class Session:
    def __init__(self, organiser: Organiser, csrf: str) -> None:
        self.organiser = organiser
        self.csrf = csrf

    @property
    def role(self) -> str:
        return self.organiser.role

    @property
    def can_change(self) -> bool:
        return allows(self.organiser.role, MANAGE)

    @property
    def actor(self) -> str:
        return actor(self.organiser)

    @property
    def name(self) -> str:
        o = self.organiser
        return o.display_name or o.login or f"#{o.id}"


def secret(request: Request) -> str:
    """NALGAE_SECRET_KEY; an app built without one (tests, tools) gets a random key of its own."""
    key = str(request.app.state.settings.secret_key or "")
    if not key:
        key = getattr(request.app.state, "random_secret", "") or secrets.token_hex(32)
        request.app.state.random_secret = key
    return key


def _now(request: Request) -> int:
    return int(request.app.state.clock.now().timestamp())


def _serializer(request: Request) -> URLSafeTimedSerializer:
    now = _now(request)

    class ClockSigner(TimestampSigner):
        # The app's clock, not the machine's: the idle timeout is then testable.
        def get_timestamp(self) -> int:
            return now

    return URLSafeTimedSerializer(secret(request), salt="nalgae.session", signer=ClockSigner)


def _secure(request: Request) -> bool:
    """Secure cookies whenever the public URL is https, whatever scheme the request came in
    with (a load balancer terminating TLS forwards plain http)."""
    return bool(request.app.state.settings.https) or request.url.scheme == "https"


def _set_cookie(request: Request, response: Response, data: dict[str, Any]) -> None:
    response.set_cookie(SESSION_COOKIE, _serializer(request).dumps(data),
                        max_age=SESSION_SECONDS, httponly=True, samesite="lax",
                        secure=_secure(request), path="/")


def start_session(request: Request, response: Response, organiser: Organiser) -> None:
    """Sign in: a fresh session cookie (and a fresh CSRF token) for this organiser."""
    request.state.session_refresh = None
    _set_cookie(request, response, {"o": organiser.id, "c": secrets.token_urlsafe(24),
                                    "v": organiser.session_version, "s": _now(request)})


def end_session(request: Request, response: Response) -> None:
    request.state.session_refresh = None
    response.delete_cookie(SESSION_COOKIE, path="/")


def refresh_cookie(request: Request, response: Response) -> None:
    """Re-sign a session cookie that is in use (called for every response), so that the idle
    timeout counts from the last request."""
    data = getattr(request.state, "session_refresh", None)
    if data is not None:
        _set_cookie(request, response, data)


async def current(request: Request) -> Session | None:
    """The signed-in organiser of this request, or None."""
    if hasattr(request.state, "session"):
        cached: Session | None = request.state.session
        return cached
    session = None
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        now = _now(request)
        try:
            data, signed = _serializer(request).loads(raw, max_age=IDLE_SECONDS,
                                                      return_timestamp=True)
            organiser_id, csrf = int(data["o"]), str(data["c"])
            version, started = int(data["v"]), int(data["s"])
        except (BadSignature, KeyError, TypeError, ValueError):
            data = None
        if data is not None and now - started <= SESSION_SECONDS:
            db: Database = request.app.state.db
            async with db.session() as s:
                organiser = await store.by_id(s, organiser_id)
            if (organiser is not None and organiser.role in ("viewer", "organiser", "admin")
                    and organiser.session_version == version):
                session = Session(organiser, csrf)
                if now - int(signed.timestamp()) >= REFRESH_SECONDS:
                    request.state.session_refresh = data
    request.state.session = session
    return session


async def require(request: Request) -> Session:
    """A page for organisers: strangers are sent to the sign-in page."""
    session = await current(request)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, headers={"Location": f"/login?next={quote(target, safe='')}"})
    return session


async def _refuse(request: Request, who: str, why: str) -> HTTPException:
    db: Database = request.app.state.db
    async with db.session() as s:
        await supporters.audit(s, actor=who, action="dashboard.refused",
                               target=request.url.path[:200], now=request.app.state.clock.now(),
                               details={"why": why})
    return HTTPException(403, detail=why)


async def require_change(request: Request, form: Any, need: str = MANAGE) -> Session:
    """A change: a session, the right CSRF token and a role that may; else 403, audited."""
    session = await current(request)
    if session is None:
        raise await _refuse(request, "stranger", "not signed in")
    token = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
    if not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise await _refuse(request, session.actor, "bad CSRF token")
    if not allows(session.role, need):
        raise await _refuse(request, session.actor, f"role {session.role} may not")
    return session


def pre_csrf(request: Request) -> str:
    """The token for sign-in forms (kept in its own cookie until there is a session)."""
    token = request.cookies.get(PRE_CSRF_COOKIE)
    return token if token and len(token) >= 20 else secrets.token_urlsafe(24)


def set_pre_csrf(request: Request, response: Response, token: str) -> None:
    response.set_cookie(PRE_CSRF_COOKIE, token, httponly=True, samesite="lax",
                        secure=_secure(request), path="/login")


def pre_csrf_ok(request: Request, form: Any) -> bool:
    cookie = request.cookies.get(PRE_CSRF_COOKIE) or ""
    token = str(form.get("csrf") or "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), token.encode())
