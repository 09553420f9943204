"""Organiser accounts under attack (issue 15): forged hosts, guessed passwords, sign-in link
floods, stolen or stale session cookies, and API tokens that outlive their use. Every test
goes through the app users get (create_app), against real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from campaigns.clock import FixedClock
from campaigns.settings import Settings
from storage.db import Database
from storage.models import AuditLog
from tests.builders import make_bot, setup_petition
from tests.dashboard_helpers import (
    cheap_password_hashes,  # noqa: F401  (autouse)
    csrf_of,
    make_organiser,
)
from web.app import create_app

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SECRET = "test-secret-key-for-sessions"
PUBLIC = "https://nalgae.example.org"


def client_for(app: Any, base_url: str = PUBLIC) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def app(db: Database, clock: FixedClock) -> Any:
    return create_app(Settings(secret_key=SECRET, public_url=PUBLIC), db, clock=clock)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


async def _audit(db: Database, action: str) -> list[AuditLog]:
    async with db.session() as s:
        return list((await s.execute(
            select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))).scalars())


async def _bot_at(db: Database, sb: Any) -> None:
    await make_bot(db, NOW, token=sb.default_token, base_url=sb.base_url)


# --- 1. sign-in link poisoning -------------------------------------------------------------

async def test_a_forged_host_cannot_poison_the_sign_in_link(db: Database, app: Any) -> None:
    from bots.sandbox import Sandbox

    async with Sandbox.serve() as sb:
        await _bot_at(db, sb)
        me = sb.user(7001, "민지", language_code="en")
        await make_organiser(db, NOW, "minji", telegram_user_id="7001")
        async with client_for(app) as c:
            page = await c.get("/login")
            form = {"csrf": csrf_of(page.text), "who": "minji"}
            # The attacker's Host is refused before any page sees it, and nothing is sent.
            evil = await c.post("/login/send-link", data=form, headers={"Host": "evil.example"})
            assert evil.status_code == 400
            assert (await c.get("/login", headers={"Host": "evil.example"})).status_code == 400
            sent = await c.post("/login/send-link", data=form)
            assert sent.status_code == 303
        message = await me.next_message(timeout=5)
        url = message.raw["reply_markup"]["inline_keyboard"][0][0]["url"]
        assert url.startswith(f"{PUBLIC}/login/link/")
        await asyncio.sleep(0.2)
        assert len(me.messages) == 1  # the forged request sent nothing


async def test_share_links_and_api_hrefs_come_from_the_public_url(
    db: Database, app: Any, clock: FixedClock
) -> None:
    await setup_petition(db, clock, slug="clean-air")
    # Behind a TLS-terminating load balancer the request arrives as plain http: links must
    # still say https, as configured.
    async with client_for(app, "http://nalgae.example.org") as c:
        page = await c.get("/p/clean-air")
        assert f'value="{PUBLIC}/p/clean-air"' in page.text
        assert "http://nalgae.example.org" not in page.text
        poster = await c.get("/p/clean-air/poster")
        assert "http://nalgae.example.org" not in poster.text


async def test_the_local_default_serves_loopback_names_only(db: Database) -> None:
    app = create_app(Settings(secret_key=SECRET, http_port=8123), db)
    assert Settings(http_port=8123).base_url == "http://127.0.0.1:8123"
    for host in ("127.0.0.1:8123", "localhost:8123"):
        async with client_for(app, f"http://{host}") as c:
            assert (await c.get("/login")).status_code == 200
    async with client_for(app, "http://nalgae.example.org") as c:
        assert (await c.get("/login")).status_code == 400


async def test_the_webhook_answers_under_a_load_balancers_host(db: Database) -> None:
    """The webhook is authenticated by its secret header, not by the Host a load balancer
    forwards: it is answered ahead of the host check (a wrong secret: 403, not 400)."""
    app = create_app(Settings(secret_key=SECRET, public_url=PUBLIC), db)
    async with client_for(app, "http://10.0.3.7:8000") as c:
        hook = await c.post("/telegram/webhook", json={"update_id": 1},
                            headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})
        assert hook.status_code == 403
        assert (await c.get("/healthz")).status_code == 400


def test_a_public_url_must_be_a_web_address() -> None:
    with pytest.raises(ValueError, match="NALGAE_PUBLIC_URL"):
        Settings.from_env({"NALGAE_PUBLIC_URL": "nalgae.example.org"})
    assert Settings.from_env({"NALGAE_PUBLIC_URL": PUBLIC + "/"}).base_url == PUBLIC


# --- 2. sign-in attempts: limits, back-off, argon2 off the loop, the link form ------------

async def test_thirty_wrong_passwords_are_not_all_tried(db: Database, client: httpx.AsyncClient
                                                        ) -> None:
    from tests.dashboard_helpers import PASSWORD

    await make_organiser(db, NOW, "minji")
    csrf = csrf_of((await client.get("/login")).text)
    started = time.monotonic()
    answers = [await client.post("/login", data={"csrf": csrf, "login": "minji",
                                                 "password": f"guess {i}"}) for i in range(30)]
    assert time.monotonic() - started < 5
    tried = [a for a in answers if a.status_code == 303]
    refused = [a for a in answers if a.status_code == 429]
    assert len(tried) == 5 and len(refused) == 25
    assert int(refused[0].headers["retry-after"]) > 0
    assert 'id="throttled"' in refused[0].text
    # Locked means locked: even the right password waits.
    right = await client.post("/login", data={"csrf": csrf, "login": "minji",
                                              "password": PASSWORD})
    assert right.status_code == 429
    assert len(await _audit(db, "organiser.sign_in_refused")) == 5
    throttled = await _audit(db, "organiser.sign_in_throttled")
    assert len(throttled) == 1 and throttled[0].actor.startswith("organiser:")


async def test_the_back_off_grows_exponentially(monkeypatch: pytest.MonkeyPatch) -> None:
    from web.throttle import Throttle

    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    throttle = Throttle()
    waits: list[int] = []
    for _ in range(4):
        while (wait := await throttle.attempt("password", "minji", "10.0.0.1")) is None:
            pass
        waits.append(wait)
        now[0] += wait
    assert waits[0] <= 61 and waits[1] > waits[0], waits
    assert waits[2] >= 3 * waits[1] and waits[3] >= 3 * waits[2], waits


async def test_one_address_cannot_try_every_login(client: httpx.AsyncClient) -> None:
    csrf = csrf_of((await client.get("/login")).text)
    answers = [(await client.post("/login", data={"csrf": csrf, "login": f"user{i}",
                                                  "password": "x"})).status_code
               for i in range(30)]
    assert answers[:20] == [303] * 20 and set(answers[20:]) == {429}


async def test_fifty_concurrent_bad_logins_leave_healthz_fast(
    db: Database, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from argon2 import PasswordHasher

    from campaigns import signin

    # The real argon2 costs: the point is that they do not stall the event loop.
    monkeypatch.setattr(signin, "_HASHER", PasswordHasher())
    await make_organiser(db, NOW, "minji")

    async def healthz() -> float:
        started = time.monotonic()
        assert (await client.get("/healthz")).status_code == 200
        return time.monotonic() - started

    quiet = sorted([await healthz() for _ in range(5)])[2]
    csrf = csrf_of((await client.get("/login")).text)
    logins = [asyncio.create_task(client.post("/login", data={
        "csrf": csrf, "login": "minji" if i % 2 else f"stranger{i}", "password": f"guess {i}"}))
        for i in range(50)]
    await asyncio.sleep(0.05)
    busy = []
    for _ in range(5):
        busy.append(await healthz())
        await asyncio.sleep(0.02)
    answers = await asyncio.gather(*logins)
    assert {a.status_code for a in answers} <= {303, 429}
    # Before the fix: 5.4 s and a 503. Generous, as the machine is shared: the typical answer
    # within 100 ms of what a quiet app answers in, and none near a second.
    assert sorted(busy)[2] < 0.1 + quiet and max(busy) < 1.0, (quiet, busy)


async def test_the_link_form_answers_the_same_for_known_and_unknown_logins(
    db: Database, app: Any
) -> None:
    from bots.sandbox import Sandbox

    async with Sandbox.serve() as sb:
        await _bot_at(db, sb)
        me = sb.user(7001, "민지", language_code="en")
        await make_organiser(db, NOW, "minji", telegram_user_id="7001")
        async with client_for(app) as c:
            csrf = csrf_of((await c.get("/login")).text)

            async def ask(who: str) -> tuple[int, str, str, float]:
                started = time.monotonic()
                r = await c.post("/login/send-link", data={"csrf": csrf, "who": who})
                return (r.status_code, r.headers.get("location", ""), r.text,
                        time.monotonic() - started)

            known, unknown = await ask("minji"), await ask("nobody-here")
            assert known[:3] == unknown[:3]
            assert abs(known[3] - unknown[3]) < 0.05
            # A flood of requests for one organiser: a few links at most reach the chat.
            for i in range(26):
                await ask("minji" if i % 2 else "7001")
        await asyncio.sleep(1.0)
        assert 1 <= len(me.messages) <= 3


async def test_limits_are_shared_through_redis(db: Database) -> None:
    import uuid

    from web.throttle import Throttle

    prefix = f"nalgae-test:{uuid.uuid4().hex}"
    one, two = (Throttle("redis://127.0.0.1:6379/0", prefix=prefix) for _ in range(2))
    answers = [await (one if i % 2 else two).attempt("password", "minji", "10.0.0.1")
               for i in range(8)]
    assert answers[:5] == [None] * 5 and all(a is not None and a > 0 for a in answers[5:])


async def test_sign_in_still_answers_when_redis_is_unreachable(
    db: Database, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import socket

    from tests.dashboard_helpers import PASSWORD

    with socket.socket() as probe:  # a port nothing listens on once this closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    local = "http://127.0.0.1:8000"
    app = create_app(Settings(secret_key=SECRET, public_url=local,
                              redis_url=f"redis://127.0.0.1:{port}/0"), db, clock=clock)
    await make_organiser(db, NOW, "minji")
    caplog.set_level(logging.WARNING)
    async with client_for(app, local) as c:
        csrf = csrf_of((await c.get("/login")).text)
        answers = [await c.post("/login", data={"csrf": csrf, "login": "minji",
                                                "password": f"guess {i}"}) for i in range(6)]
        # Counted in this process instead: five tries, then the limit, never a 500.
        assert [a.status_code for a in answers] == [303] * 5 + [429]
    async with client_for(app, local) as c:
        csrf = csrf_of((await c.get("/login")).text)
        right = await c.post("/login", data={"csrf": csrf, "login": "dahye-unknown",
                                             "password": PASSWORD})
        assert right.status_code == 303
    warnings = [r for r in caplog.records if r.name == "web.throttle"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "minji" not in caplog.text and "dahye" not in caplog.text


# --- 3. sessions that end, cookies, CSP, CSRF on the link, API tokens -----------------------

@contextlib.asynccontextmanager
async def _signed_in(app: Any, login: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    from tests.dashboard_helpers import sign_in

    async with client_for(app) as c:
        yield c, await sign_in(c, login)


async def _close(db: Database, c: httpx.AsyncClient, csrf: str) -> int:
    """Try a change with this browser: closing the petition (status code)."""
    return (await c.post("/petitions/clean-air/close", data={"csrf": csrf})).status_code


async def test_sign_out_password_role_change_and_removal_end_sessions_at_once(
    db: Database, app: Any, clock: FixedClock
) -> None:
    from campaigns import organisers, signin

    await setup_petition(db, clock, slug="clean-air")
    await make_organiser(db, NOW, "minji")
    # Sign-out: a copy of the cookie (stolen, or another tab) stops working too.
    async with _signed_in(app, "minji") as (c, csrf), client_for(app) as thief:
        thief.cookies.update(c.cookies)
        assert (await thief.get("/")).status_code == 200
        assert (await c.post("/logout", data={"csrf": csrf})).status_code == 303
        assert (await thief.get("/")).status_code == 303
        assert await _close(db, thief, csrf) == 403
    # A new password.
    async with _signed_in(app, "minji") as (c, csrf):
        async with db.session() as s:
            await signin.set_password(s, "minji", "another long password", clock, by="cli")
        assert (await c.get("/")).status_code == 303
        assert await _close(db, c, csrf) == 403
    # A new role.
    await make_organiser(db, NOW, "dahye", telegram_user_id="7002")
    async with _signed_in(app, "dahye") as (c, csrf):
        async with db.session() as s:
            await organisers.set_role(s, "7002", "admin", clock, by="cli")
        assert (await c.get("/")).status_code == 303
    # Removal.
    async with _signed_in(app, "dahye") as (c, csrf):
        async with db.session() as s:
            oid = (await signin.by_login(s, "dahye")).id  # type: ignore[union-attr]
            await organisers.remove(s, oid, clock, by="cli")
        assert (await c.get("/")).status_code == 303
    assert len(await _audit(db, "organiser.signed_out")) == 1
    assert len(await _audit(db, "organiser.removed")) == 1


async def test_an_idle_session_ends_and_a_busy_one_lasts(db: Database, app: Any,
                                                         clock: FixedClock) -> None:
    from web.auth import IDLE_SECONDS, SESSION_SECONDS

    await make_organiser(db, NOW, "minji")
    async with _signed_in(app, "minji") as (c, _csrf):
        for _ in range(3):  # used every 50 minutes: still signed in after 2.5 hours
            clock.advance(seconds=IDLE_SECONDS - 600)
            assert (await c.get("/")).status_code == 200
        clock.advance(seconds=IDLE_SECONDS + 1)
        assert (await c.get("/")).status_code == 303
    async with _signed_in(app, "minji") as (c, _csrf):
        for _ in range(SESSION_SECONDS // (IDLE_SECONDS - 600) + 1):
            clock.advance(seconds=IDLE_SECONDS - 600)
            last = (await c.get("/")).status_code
        assert last == 303  # never more than SESSION_SECONDS after sign-in


async def test_https_cookies_are_secure_behind_a_load_balancer_with_hsts_and_csp(
    db: Database, app: Any
) -> None:
    await make_organiser(db, NOW, "minji")
    async with client_for(app) as c:
        page = await c.get("/login")
        signed = await c.post("/login", data={"csrf": csrf_of(page.text), "login": "minji",
                                              "password": "correct horse battery"})
        assert "secure" in signed.headers["set-cookie"].lower()
    # TLS ends at the load balancer: the request arrives as http, the cookies stay Secure.
    async with client_for(app, "http://nalgae.example.org") as c:
        assert "secure" in (await c.get("/login")).headers["set-cookie"].lower()
        for path in ("/login", "/p/none", "/healthz", "/api/v1/people"):
            answer = await c.get(path)
            csp = answer.headers["content-security-policy"]
            assert "script-src 'self';" in csp and "unsafe-inline' https" not in csp, path
            assert answer.headers["strict-transport-security"].startswith("max-age="), path
    local = create_app(Settings(secret_key=SECRET), db)
    async with client_for(local, "http://127.0.0.1:8000") as c:
        answer = await c.get("/login")
        assert "strict-transport-security" not in answer.headers
        assert "content-security-policy" in answer.headers


def test_no_page_has_inline_script() -> None:
    """What the CSP forbids: every <script> is a file from /static or a JSON data block."""
    import re
    from pathlib import Path

    for template in (Path(__file__).parent.parent / "web" / "templates").glob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, (template.name, tag)
        assert not re.search(r"\son[a-z]+=", text), template.name


async def test_the_link_sign_in_needs_its_csrf_token(db: Database, app: Any,
                                                      clock: FixedClock) -> None:
    from campaigns import signin

    oid = await make_organiser(db, NOW, "minji", telegram_user_id="7001")
    async with db.session() as s:
        organiser = await s.get_one(signin.Organiser, oid)
        token = await signin.issue_link_token(s, organiser, clock, SECRET)
    async with client_for(app) as c:
        # A page elsewhere posting a link of the attacker's choice: refused, link unused.
        forged = await c.post("/login/link", data={"token": token})
        assert forged.status_code == 403
        page = await c.get(f"/login/link/{token}")
        used = await c.post("/login/link", data={"token": token, "csrf": csrf_of(page.text)})
        assert used.status_code == 303 and used.headers["location"] == "/"


async def test_api_tokens_expire_and_record_their_last_use(db: Database, app: Any,
                                                           clock: FixedClock) -> None:
    from campaigns import api as api_rules
    from storage import api as api_store

    async with db.session() as s:
        short = await api_rules.create_token(s, name="script", scope="read", clock=clock,
                                             actor="cli", expires_in_days=1)
        forever = await api_rules.create_token(s, name="other", scope="read", clock=clock,
                                               actor="cli")
    async with client_for(app) as c:
        def get(secret: str) -> Any:
            return c.get("/api/v1/people", headers={"Authorization": f"Bearer {secret}"})

        assert (await get(short.secret)).status_code == 200
        clock.advance(days=1, seconds=1)
        assert (await get(short.secret)).status_code == 401
        assert (await get(forever.secret)).status_code == 200
    async with db.session() as s:
        rows = {t.name: t for t in await api_store.tokens(s)}
    assert rows["script"].last_used_at == NOW
    assert rows["other"].last_used_at == clock.now()


def test_cli_lists_and_revokes_tokens_and_removes_organisers(tmp_path: Any) -> None:
    import json

    from click.testing import CliRunner

    from cli import cli
    from tests.conftest import run_sync

    url = f"sqlite:///{tmp_path}/cli.db"

    async def create() -> None:
        db = Database(Settings(database_url=url).driver_database_url)
        await db.create_all()
        await db.dispose()

    run_sync(create)
    env = {"NALGAE_DATABASE_URL": url}
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(cli, [*args, "--json"], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    # The options `api-token create` always had still work as they did.
    plain = run("api-token", "create", "--name", "script", "--scope", "read")
    assert plain["expires_at"] is None and plain["token"].startswith("nalgae_")
    timed = run("api-token", "create", "--name", "cron", "--scope", "write",
                "--expires-in-days", "30")
    assert timed["expires_at"] is not None
    listed = run("api-token", "list")
    assert [(t["name"], t["last_used_at"], t["expires_at"] is None) for t in listed] == [
        ("script", None, True), ("cron", None, False)]
    assert run("api-token", "revoke", "cron") == {"revoked": [timed["id"]]}
    assert [t["revoked_at"] is not None for t in run("api-token", "list")] == [False, True]
    added = run("organiser", "add", "7001")
    assert run("organiser", "remove", str(added["id"])) == {"removed": added["id"]}
    assert run("organiser", "list") == []
    missing = runner.invoke(cli, ["organiser", "remove", "99"], env=env)
    assert missing.exit_code == 1 and "#99" in missing.output
