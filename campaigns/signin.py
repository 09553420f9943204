"""Organiser sign-in for the dashboard: argon2 passwords and one-time login links.

A login link is ``itsdangerous``-signed (organiser id + random nonce) and short-lived;
the nonce is also stored, and marking it used is a single conditional UPDATE, so a
link works once even with many web processes. Every attempt is audited with internal
ids only (never the login typed, never the link).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.clock import Clock
from campaigns.errors import RuleError
from campaigns.i18n import _
from campaigns.organisers import ROLES, actor
from storage import signin as store
from storage import supporters
from storage.models import Organiser

LINK_SECONDS = 10 * 60
MIN_PASSWORD = 10
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the login is unknown, so that the answer takes as long.

    Made on first use, not at import: one argon2 hash takes 64 MiB and ~0.1 s, which every
    process importing this module (the worker, every CLI command) would otherwise pay.
    """
    return _HASHER.hash("not-a-real-password")


# Argon2 is slow on purpose (about half a second here) and holds a core: checks run on two
# threads of their own, never on the event loop (which also answers /healthz and the
# Telegram webhook), and never in the default executor other libraries share.
# They also run at a lower CPU priority (Linux priorities are per thread, and argon2's own
# lanes inherit it), so that on a busy machine the loop still gets the core it needs.
def _lower_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


_ARGON2_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2",
                                  initializer=_lower_priority)


class SignInError(RuleError):
    """A refused administrative change (short password, unknown login...)."""


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise SignInError(_("a password has at least {min} characters"), min=MIN_PASSWORD)
    return _HASHER.hash(password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


async def set_password(
    session: AsyncSession, login: str, password: str, clock: Clock, *, by: str,
    role: str | None = None, create: bool = False, telegram_user_id: str | None = None,
) -> Organiser:
    """Set an organiser's password (creating a login-only organiser when ``create``)."""
    login = login.strip().lower()
    if not login or len(login) > 64:
        raise SignInError(_("a login is 1 to 64 characters"))
    password_hash = hash_password(password)
    organiser = await store.by_login(session, login)
    now = clock.now()
    if organiser is None and create and telegram_user_id:
        # Someone named by Telegram id (`organiser add`) gets a login for the dashboard.
        from storage import organisers

        organiser = await organisers.by_telegram_user(session, telegram_user_id)
        if organiser is not None:
            if organiser.login:
                raise SignInError(_("that Telegram user already has the login {login!r}"),
                                  login=organiser.login)
            await store.set_login(session, organiser.id, login)
            organiser.login = login
    if organiser is None:
        if not create:
            raise SignInError(_("no organiser with the login {login!r}"), login=login)
        if role is not None and role not in ROLES:
            raise SignInError(_("unknown role {role!r}"), role=role)
        organiser = await store.insert_organiser(session, login=login, role=role or "organiser",
                                                 now=now, telegram_user_id=telegram_user_id)
        await supporters.audit(session, actor=by, action="organiser.created",
                               target=actor(organiser), now=now,
                               details={"role": organiser.role})
    await store.set_password_hash(session, organiser.id, password_hash)
    await supporters.audit(session, actor=by, action="organiser.password_set",
                           target=actor(organiser), now=now)
    return organiser


def normal_login(login: str) -> str:
    return login.strip().lower().lstrip("@")[:64]


async def verify_password(organiser: Organiser | None, password: str) -> bool:
    """Whether the password is the organiser's (an unknown login takes as long), off the loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        _ARGON2_POOL, _verify, organiser.password_hash if organiser else None, password[:1024])


async def by_login(session: AsyncSession, login: str) -> Organiser | None:
    return await store.by_login(session, normal_login(login))


async def record_password_attempt(
    session: AsyncSession, organiser: Organiser | None, ok: bool, clock: Clock
) -> None:
    await supporters.audit(
        session, actor=actor(organiser) if organiser else "stranger",
        action="organiser.signed_in" if ok else "organiser.sign_in_refused",
        now=clock.now(), details={"method": "password"},
    )


async def authenticate(
    session: AsyncSession, login: str, password: str, clock: Clock
) -> Organiser | None:
    """The organiser if the password is right; every attempt audited. (The dashboard does the
    same in three steps, so that no database connection is held while argon2 runs.)"""
    organiser = await by_login(session, login)
    ok = await verify_password(organiser, password)
    await record_password_attempt(session, organiser, ok, clock)
    return organiser if ok else None


async def record_throttled(session: AsyncSession, who: str, method: str, wait: int,
                           clock: Clock) -> None:
    """A sign-in refused for too many tries: audited against the organiser it names, if any."""
    organiser = await by_login(session, who)
    await supporters.audit(
        session, actor=actor(organiser) if organiser else "stranger",
        action="organiser.sign_in_throttled", now=clock.now(),
        details={"method": method, "retry_after_s": wait},
    )


async def sign_out(session: AsyncSession, organiser: Organiser, clock: Clock) -> None:
    """End every dashboard session of this organiser (each browser signs in again)."""
    await store.bump_session_version(session, organiser.id)
    await supporters.audit(session, actor=actor(organiser), action="organiser.signed_out",
                           now=clock.now())


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt="nalgae.login-link")


async def issue_link_token(
    session: AsyncSession, organiser: Organiser, clock: Clock, secret_key: str,
    *, seconds: int = LINK_SECONDS,
) -> str:
    """A signed, single-use token for ``/login/link/<token>``."""
    nonce = secrets.token_urlsafe(24)
    now = clock.now()
    await store.add_login_link(session, nonce=nonce, organiser_id=organiser.id, now=now,
                               expires_at=now + timedelta(seconds=seconds))
    await supporters.audit(session, actor=actor(organiser), action="organiser.login_link_sent",
                           now=now)
    return _serializer(secret_key).dumps({"o": organiser.id, "n": nonce})


async def redeem_link_token(
    session: AsyncSession, token: str, clock: Clock, secret_key: str,
    *, seconds: int = LINK_SECONDS,
) -> Organiser | None:
    """The organiser the link was made for, the first time it is used within its life."""
    try:
        data = _serializer(secret_key).loads(token, max_age=seconds)
        organiser_id, nonce = int(data["o"]), str(data["n"])
    except (BadSignature, SignatureExpired, KeyError, TypeError, ValueError):
        data = None
    ok = data is not None and await store.use_login_link(
        session, nonce=nonce, organiser_id=organiser_id, now=clock.now())
    organiser = await store.by_id(session, organiser_id) if ok else None
    await supporters.audit(
        session, actor=actor(organiser) if organiser else "stranger",
        action="organiser.signed_in" if organiser else "organiser.sign_in_refused",
        now=clock.now(), details={"method": "link"},
    )
    return organiser


async def organiser_for_link(session: AsyncSession, who: str) -> Organiser | None:
    """The organiser a "send me a link" request names: a login or a Telegram user id."""
    from storage import organisers

    who = normal_login(who)
    if not who:
        return None
    organiser = await store.by_login(session, who)
    if organiser is None and who.isdigit():
        organiser = await organisers.by_telegram_user(session, who)
    return organiser if organiser is not None and organiser.telegram_user_id else None
