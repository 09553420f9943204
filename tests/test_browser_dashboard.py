"""The dashboard in a real headless Chromium (Debian's, driven by Playwright), against the whole
`nalgae run` composition: the sandbox Bot API, the real Telegram runtime (long polling), the
delivery worker, the scheduler and the web app, served by uvicorn on free ports.

Simulated supporters act through the sandbox's HTTP user API, so what the browser shows is
what the real bot and worker did. A failing test leaves a screenshot in tests/artifacts/.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from campaigns.clock import SystemClock
from campaigns.settings import Settings
from storage.db import Database
from storage.models import ChannelIdentity, Supporter, SupporterTag
from tests.conftest import run_sync, service_missing
from tests.dashboard_helpers import (
    PASSWORD,
    cheap_password_hashes,  # noqa: F401  (autouse)
    make_organiser,
)

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(__file__).parent / "artifacts"
WAIT_MS = 10_000
ORGANISER_TG = 990_001



def _expect(locator: Any) -> Any:
    """Playwright's polling assertions (imported late, like the browser itself)."""
    from playwright.sync_api import expect

    return expect(locator)

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    web: str  # http://127.0.0.1:<port>
    sandbox: str  # http://127.0.0.1:<port> (user API under /sandbox)
    db_url: str
    bot_id: int

    def run(self, fn: Callable[[Database], Any]) -> Any:
        """Run ``fn(db)`` against the same store, from the test's thread."""
        async def go() -> Any:
            db = Database(Settings(database_url=self.db_url).driver_database_url)
            try:
                return await fn(db)
            finally:
                await db.dispose()

        return run_sync(go)


async def _serve(settings: Settings, ready: threading.Event, stop_box: list[Any],
                 info: dict[str, Any]) -> None:
    """What `nalgae run` composes (runtime.serve), with handles the fixture can stop."""
    import uvicorn

    import scheduler
    from bots.sandbox import Sandbox
    from bots.telegram.runtime import TelegramRuntime
    from storage.bots import ensure_default_bot
    from storage.dedup import MemoryDedup
    from web.app import create_app
    from worker import make_worker

    clock = SystemClock()
    db = Database(settings.driver_database_url)
    await db.create_all()
    stop = asyncio.Event()
    sandbox = Sandbox()
    await sandbox.start("127.0.0.1", settings.sandbox_port)
    token, base_url = sandbox.default_token, sandbox.base_url
    async with db.session() as session:
        bot = await ensure_default_bot(
            session, replace(settings, telegram_token=token, telegram_base_url=base_url),
            clock.now())
    runtime = TelegramRuntime(bot_id=bot.id, token=token, base_url=base_url, db=db, clock=clock,
                              dedup=MemoryDedup(), admins=())
    await runtime.start()
    app = create_app(settings, db, telegram=lambda: [runtime],
                     sandbox_url=sandbox.base_url.removesuffix("/bot"),
                     sandbox_token=token, clock=clock)
    worker = make_worker(settings, db)
    tasks = [asyncio.create_task(worker.run(stop)),
             asyncio.create_task(scheduler.run_scheduler(settings, stop))]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.http_port,
                                           log_level="warning", lifespan="on"))
    stop_box.append((asyncio.get_running_loop(), server))
    info["bot_id"] = bot.id
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    ready.set()
    try:
        await serving
    finally:
        stop.set()
        for task in tasks:
            try:
                await asyncio.wait_for(task, 10)
            except Exception:  # shutting down: nothing more to do with a failed loop
                pass
        # Together: stopping the sandbox wakes the bot's long poll, so the runtime need not
        # wait out getUpdates' 10 s timeout.
        await asyncio.gather(runtime.stop(), sandbox.stop(), return_exceptions=True)
        await db.dispose()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole app on free ports, for this module (about a second to start)."""
    if not Path(CHROMIUM).exists():
        service_missing("Chromium", f"{CHROMIUM} not found (apt-get install chromium)")
    db_path = tmp_path_factory.mktemp("browser") / "nalgae.db"
    settings = Settings(database_url=f"sqlite:///{db_path}", http_host="127.0.0.1",
                        http_port=_free_port(), sandbox_port=_free_port(),
                        secret_key=uuid.uuid4().hex, telegram_max_rate=0)
    ready = threading.Event()
    stop_box: list[Any] = []
    info: dict[str, Any] = {}
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(_serve(settings, ready, stop_box, info))
        except BaseException as exc:  # reported to the fixture below
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=main, name="nalgae-run", daemon=True)
    thread.start()
    assert ready.wait(30), "the app did not start"
    if errors:
        raise errors[0]
    yield Stack(web=f"http://127.0.0.1:{settings.http_port}",
                sandbox=f"http://127.0.0.1:{settings.sandbox_port}",
                db_url=settings.database_url, bot_id=int(info["bot_id"]))
    loop, server = stop_box[0]
    loop.call_soon_threadsafe(setattr, server, "should_exit", True)
    thread.join(20)


# Module scope, not session: while Playwright's sync API is running, the main thread looks
# like it is inside an event loop, which breaks the async tests that run after this module.
@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        service_missing("Playwright", str(exc))
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        except Exception as exc:
            service_missing("Chromium", f"could not start: {exc}")
        yield browser
        browser.close()


def _page_for(browser: Any, stack: Stack, request: pytest.FixtureRequest,
              storage_state: Any = None) -> Iterator[Any]:
    """A fresh browser context per test, phone-sized; a screenshot when the test fails."""
    context = browser.new_context(base_url=stack.web, locale="ko-KR",
                                  viewport={"width": 420, "height": 860},
                                  storage_state=storage_state)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    failed_before = request.session.testsfailed
    yield page
    if request.session.testsfailed > failed_before:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()


@pytest.fixture
def page(browser: Any, stack: Stack, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A browser context with no cookies: nobody is signed in."""
    yield from _page_for(browser, stack, request)


@pytest.fixture(scope="module")
def organiser(stack: Stack) -> str:
    """An organiser with a password and a Telegram account (a sandbox user)."""
    login = "minji"
    stack.run(lambda db: make_organiser(db, SystemClock().now(), login,
                                        telegram_user_id=str(ORGANISER_TG)))
    httpx.post(f"{stack.sandbox}/sandbox/users",
               json={"user_id": ORGANISER_TG, "first_name": "민지", "language_code": "ko"})
    return login


@pytest.fixture(scope="module")
def organiser_state(browser: Any, stack: Stack, organiser: str) -> Any:
    """The organiser's session cookie, signed in once through the form (argon2 is slow)."""
    context = browser.new_context(base_url=stack.web)
    try:
        page = context.new_page()
        sign_in(page, organiser)
        return context.storage_state()
    finally:
        context.close()


@pytest.fixture
def organiser_page(browser: Any, stack: Stack, request: pytest.FixtureRequest,
                   organiser_state: Any) -> Iterator[Any]:
    """A fresh context already signed in as the organiser."""
    yield from _page_for(browser, stack, request, organiser_state)


def sign_in(page: Any, login: str) -> None:
    page.goto("/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", PASSWORD)
    page.click("#password-form button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))


def supporters_in_sandbox(stack: Stack, n: int, tag: str, region: str = "seoul") -> list[int]:
    """`n` signed-up supporters who are also sandbox users (so messages reach a chat)."""
    base = 300_000 + (uuid.uuid4().int % 600_000)
    ids = [base + i for i in range(n)]
    for uid in ids:
        httpx.post(f"{stack.sandbox}/sandbox/users",
                   json={"user_id": uid, "first_name": f"지지자{uid}", "language_code": "ko"})

    async def seed(db: Database) -> None:
        now = SystemClock().now()
        async with db.session() as s:
            rows = [{"bot_id": stack.bot_id, "display_name": f"지지자{uid}", "language": "ko",
                     "region": region, "tier": "supporter", "status": "active",
                     "created_at": now, "updated_at": now, "consented_at": now} for uid in ids]
            sids = list((await s.execute(insert(Supporter).returning(
                Supporter.id, sort_by_parameter_order=True), rows)).scalars())
            await s.execute(insert(ChannelIdentity), [
                {"supporter_id": sid, "bot_id": stack.bot_id, "channel": "telegram",
                 "external_user_id": str(uid), "chat_id": uid, "reachable": True,
                 "created_at": now} for sid, uid in zip(sids, ids, strict=True)])
            await s.execute(insert(SupporterTag), [{"supporter_id": sid, "tag": tag}
                                                   for sid in sids])

    stack.run(seed)
    return ids


def bot_messages(stack: Stack, chat_id: int, after: int = 0, wait: float = 5.0
                 ) -> tuple[list[dict[str, Any]], int]:
    data = httpx.get(f"{stack.sandbox}/sandbox/chats/{chat_id}/messages",
                     params={"after": after, "wait": wait}, timeout=wait + 5).json()
    return data.get("messages", []), int(data.get("cursor", after))


def user_says(stack: Stack, user_id: int, text: str) -> None:
    httpx.post(f"{stack.sandbox}/sandbox/users/{user_id}/messages", json={"text": text})


def wait_for_bot_message(stack: Stack, chat_id: int, fragment: str, after: int = 0
                         ) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        messages, cursor = bot_messages(stack, chat_id, after)
        for m in messages:
            if fragment in (m["message"].get("text") or ""):
                return dict(m["message"])
        after = cursor
    raise AssertionError(f"the bot never said {fragment!r} to {chat_id}")


# --- the tests -----------------------------------------------------------------------------------

def test_sign_in_with_a_one_time_link_from_the_bot(page: Any, stack: Stack, organiser: str
                                                   ) -> None:
    _, cursor = bot_messages(stack, ORGANISER_TG, wait=0)
    page.goto("/login")
    page.fill("input[name=who]", str(ORGANISER_TG))
    page.click("#link-form button[type=submit]")
    page.wait_for_selector("#link-sent")
    message = wait_for_bot_message(stack, ORGANISER_TG, "로그인 링크", cursor)
    url = message["reply_markup"]["inline_keyboard"][0][0]["url"]
    assert url.startswith(stack.web + "/login/link/")
    page.goto(url)
    page.click("#use-link")
    page.wait_for_url(re.compile(r"/$"))
    assert page.locator("h1").first.inner_text() == "지지자"
    # The link is used up: a second browser gets the sign-in page with an error.
    other = page.context.browser.new_context(base_url=stack.web)
    try:
        second = other.new_page()
        second.goto(url)
        second.click("#use-link")
        second.wait_for_url(re.compile(r"/login\?error=link"))
    finally:
        other.close()


def test_create_a_petition_watch_it_count_and_use_its_public_page(
    organiser_page: Any, stack: Stack
) -> None:
    slug = f"air-{uuid.uuid4().hex[:6]}"
    [signer] = supporters_in_sandbox(stack, 1, tag=slug, region="busan")
    page = organiser_page
    page.goto("/petitions")
    if page.locator("#campaign-form").is_visible() or not page.locator("#petition-form").count():
        page.fill("#campaign-form input[name=slug]", "air")
        page.fill("#campaign-form input[name=title_ko]", "맑은 공기")
        page.click("#campaign-form button[type=submit]")
    page.fill("#petition-form input[name=slug]", slug)
    page.fill("#petition-form input[name=title_ko]", "미세먼지 대책을 요구합니다")
    page.fill("#petition-form textarea[name=body_ko]", "정부는 대책을 세워야 합니다.")
    page.click("#petition-form button[type=submit]")
    page.wait_for_url(f"**/petitions/{slug}")
    count = page.locator("#live-count")
    assert count.inner_text() == "0"
    user_says(stack, signer, f"/sign {slug}")
    # The live count moves without a reload (SSE).
    # (expect() polls without eval, which the Content-Security-Policy forbids.)
    _expect(count).to_have_text("1", timeout=30_000)
    # The public page: no sign-in, live count, share link and the Telegram deep link.
    public = page.context.browser.new_context(base_url=stack.web, locale="en-US")
    try:
        visitor = public.new_page()
        visitor.goto(f"/p/{slug}")
        assert visitor.locator("#live-count").inner_text() == "1"
        assert visitor.locator("#share-url").input_value() == f"{stack.web}/p/{slug}"
        deep = visitor.locator("#sign-link").get_attribute("href") or ""
        assert re.fullmatch(rf"https://t\.me/\w+\?start=sign_{slug}", deep)
        assert "Sign out" not in visitor.content()
        visitor.click(f"a[href='/p/{slug}/poster']")
        visitor.wait_for_url(f"**/p/{slug}/poster")
        assert visitor.locator("#qr svg").count() == 1
        assert deep in visitor.content()
    finally:
        public.close()


def test_compose_a_broadcast_and_watch_it_reach_100_percent(
    organiser_page: Any, stack: Stack
) -> None:
    tag = f"bt{uuid.uuid4().hex[:6]}"
    people = supporters_in_sandbox(stack, 3, tag=tag)
    page = organiser_page
    page.goto("/broadcasts/new")
    page.select_option("select[data-key=tags]", tag)
    _expect(page.locator("#audience-count")).to_have_text("3", timeout=30_000)
    assert page.locator("#audience").input_value() == f"tags={tag}"
    page.fill("textarea[name=text_ko]", "<b>{name}</b>님, 내일 집회에 함께해요!")
    page.wait_for_selector("#preview-ko b")
    assert page.locator("#preview-ko").inner_text().startswith("민지님, 내일 집회")
    page.fill("#buttons", "자세히 / More | https://example.org/rally")
    assert page.locator("[data-buttons-preview] .tg-button").first.inner_text() == "자세히"
    page.click("#send")
    page.wait_for_url(re.compile(r"/broadcasts/\d+$"))
    _expect(page.locator("[data-field=percent]")).to_have_text("100", timeout=30_000)
    assert page.locator("[data-field=sent]").inner_text() == "3"
    assert page.locator("[data-field=failed]").inner_text() == "0"
    assert page.locator(".progress-bar").get_attribute("style") == "width: 100%;"
    for uid in people:
        message = wait_for_bot_message(stack, uid, "내일 집회")
        assert message["text"].startswith(f"지지자{uid}님")


def test_a_poll_chart_updates_when_a_supporter_votes(organiser_page: Any, stack: Stack) -> None:
    slug = f"poll-{uuid.uuid4().hex[:6]}"
    [voter] = supporters_in_sandbox(stack, 1, tag=slug, region="daegu")
    page = organiser_page
    page.goto("/polls")
    if not page.locator("#poll-form").count():
        page.fill("#campaign-form input[name=slug]", "air")
        page.fill("#campaign-form input[name=title_ko]", "맑은 공기")
        page.click("#campaign-form button[type=submit]")
    page.fill("#poll-form input[name=slug]", slug)
    page.fill("#poll-form input[name=question_ko]", "다음 주 집회에 참석하시나요?")
    page.click("#poll-form button[type=submit]")
    page.wait_for_url(f"**/polls/{slug}")
    yes = "#chart-raw g[data-label='찬성']"
    assert page.locator(yes).get_attribute("data-value") == "0"
    _, cursor = bot_messages(stack, voter, wait=0)
    user_says(stack, voter, f"/poll {slug}")
    question = wait_for_bot_message(stack, voter, "다음 주 집회", cursor)
    httpx.post(f"{stack.sandbox}/sandbox/users/{voter}/press",
               json={"text": "찬성", "message_id": question["message_id"]})
    _expect(page.locator(yes)).to_have_attribute("data-value", "1", timeout=30_000)
    assert page.locator("section.results").get_attribute("data-voters") == "1"
    # One voter in 대구 is a group of one: its breakdown is withheld (fewer than 5).
    assert "대구 (1)" not in page.content()


def test_a_viewer_sees_no_buttons_and_the_language_toggle_works(
    page: Any, stack: Stack
) -> None:
    stack.run(lambda db: make_organiser(db, SystemClock().now(), "viewer-only", role="viewer"))
    sign_in(page, "viewer-only")
    page.click("#lang-toggle")
    page.wait_for_url(re.compile(r"lang=en"))
    assert page.locator("h1").first.inner_text() == "Supporters"
    page.goto("/petitions")
    assert page.locator("#petition-form").count() == 0
    page.goto("/broadcasts")
    assert page.locator("#new-broadcast").count() == 0


def test_a_survey_built_in_the_dashboard_charts_a_supporters_answer(
    organiser_page: Any, stack: Stack
) -> None:
    slug = f"sv-{uuid.uuid4().hex[:6]}"
    [who] = supporters_in_sandbox(stack, 1, tag=slug, region="busan")
    page = organiser_page
    page.goto("/surveys")
    if not page.locator("#survey-form").count():
        page.fill("#campaign-form input[name=slug]", "air")
        page.fill("#campaign-form input[name=title_ko]", "맑은 공기")
        page.click("#campaign-form button[type=submit]")
        page.goto("/surveys")
    page.fill("#survey-form input[name=slug]", slug)
    page.fill("#survey-form textarea[name=source]", "\n".join([
        'title: {ko: "동네 설문", en: "Neighbourhood"}',
        "questions:",
        "  - key: bus",
        "    kind: single",
        '    text: {ko: "버스가 충분한가요?", en: "Enough buses?"}',
        '    options: [{ko: "예", en: "Yes"}, {ko: "아니요", en: "No"}]']))
    page.check("#survey-form input[name=open_now]")
    page.click("#survey-form button[type=submit]")
    page.wait_for_url(f"**/surveys/{slug}")
    no = "#chart-bus-raw g[data-label='아니요']"
    assert page.locator(no).get_attribute("data-value") == "0"
    _, cursor = bot_messages(stack, who, wait=0)
    user_says(stack, who, f"/survey {slug}")
    question = wait_for_bot_message(stack, who, "버스가 충분한가요?", cursor)
    httpx.post(f"{stack.sandbox}/sandbox/users/{who}/press",
               json={"text": "아니요", "message_id": question["message_id"]})
    wait_for_bot_message(stack, who, "답을 확인해 주세요", cursor)
    httpx.post(f"{stack.sandbox}/sandbox/users/{who}/press",
               json={"text": "✅ 답 보내기", "message_id": question["message_id"]})
    _expect(page.locator(no)).to_have_attribute("data-value", "1", timeout=30_000)
    assert page.locator("section.results").get_attribute("data-respondents") == "1"


def test_create_an_event_watch_an_rsvp_arrive_and_check_the_supporter_in(
    organiser_page: Any, stack: Stack
) -> None:
    slug = f"screening-{uuid.uuid4().hex[:6]}"
    [guest] = supporters_in_sandbox(stack, 1, tag=slug, region="seoul")
    page = organiser_page
    page.goto("/events")
    if not page.locator("#event-form").count():
        page.fill("#campaign-form input[name=slug]", "cycle")
        page.fill("#campaign-form input[name=title_ko]", "온오프 순환")
        page.click("#campaign-form button[type=submit]")
    form = "#event-form"
    page.fill(f"{form} input[name=slug]", slug)
    page.fill(f"{form} input[name=title_ko]", "다큐 상영회")
    page.fill(f"{form} input[name=starts_at]", "2099-12-19T19:00")
    page.fill(f"{form} input[name=ends_at]", "2099-12-19T21:00")
    page.fill(f"{form} input[name=place]", "마포 문화센터")
    page.fill(f"{form} input[name=capacity]", "30")
    page.click(f"{form} button[type=submit]")
    page.wait_for_url(f"**/events/{slug}")
    going = page.locator("#event-counts [data-field=going]")
    assert going.inner_text() == "0"

    # The supporter opens the card in Telegram and presses 참석.
    _, cursor = bot_messages(stack, guest, wait=0)
    user_says(stack, guest, f"/event {slug}")
    card = wait_for_bot_message(stack, guest, "다큐 상영회", cursor)
    httpx.post(f"{stack.sandbox}/sandbox/users/{guest}/press",
               json={"message_id": card["message_id"], "data": f"ev:g:{slug}"})
    # The count moves without a reload (SSE).
    _expect(page.locator("#event-counts [data-field=going]")).to_have_text("1", timeout=30_000)

    # The supporter asks for their pass; the organiser types its code at the door.
    done = wait_for_bot_message(stack, guest, "참석 신청이 완료", cursor)
    httpx.post(f"{stack.sandbox}/sandbox/users/{guest}/press",
               json={"message_id": done["message_id"], "data": f"evp:{slug}"})
    deadline, code = time.monotonic() + 10, None
    while code is None and time.monotonic() < deadline:
        messages, cursor = bot_messages(stack, guest, cursor)
        for m in messages:
            found = re.search(r"[0-9A-Z]{5}-[0-9A-Z]{5}", m["message"].get("caption") or "")
            code = found.group(0) if found else code
    assert code, "no check-in pass arrived"
    page.click("#checkin-link")
    page.wait_for_url(f"**/events/{slug}/checkin")
    page.fill("#checkin-code", code.lower())
    page.click("#checkin-form button[type=submit]")
    assert "입장 확인되었습니다" in page.locator("#checkin-result").inner_text()
    page.fill("#checkin-code", code)
    page.click("#checkin-form button[type=submit]")
    assert "사용된 코드" in page.locator("#checkin-result").inner_text()
    page.goto(f"/events/{slug}")
    assert page.locator("#event-counts [data-field=checked_in]").inner_text() == "1"
