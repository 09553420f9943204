"""The sandbox Bot API server, driven over real HTTP by python-telegram-bot and aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import socket
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    PollAnswerHandler,
    filters,
)
from telegram.request import HTTPXRequest

from bots.sandbox import DEFAULT_TOKEN, Sandbox
from bots.sandbox.markup import EntityParseError, parse_html, parse_markdown_v2

TOKEN = DEFAULT_TOKEN

# PTB 22 itself reads RetryAfter.retry_after, which warns that it will become a timedelta.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox.serve() as sandbox:
        yield sandbox


@pytest.fixture(params=[True, False], ids=["fast-path", "aiohttp-only"])
async def sb_both(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    """Both HTTP fronts must behave the same; wire-level tests run against each."""
    async with Sandbox.serve(fast_path=request.param) as sandbox:
        yield sandbox


@pytest.fixture
async def bot(sb: Sandbox) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=sb.base_url, base_file_url=sb.base_file_url) as ptb_bot:
        yield ptb_bot


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@contextlib.asynccontextmanager
async def running_app(
    sb: Sandbox, *handlers: Any, token: str = TOKEN
) -> AsyncIterator[Application]:
    app = Application.builder().token(token).base_url(sb.base_url).build()
    for handler in handlers:
        app.add_handler(handler)
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        yield app
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


async def wait_until(predicate: Any, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


def retry_seconds(exc: RetryAfter) -> float:
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


# --- wire format ---------------------------------------------------------------------------------


async def test_get_me_and_wire_format(sb_both: Sandbox, http: aiohttp.ClientSession) -> None:
    sb = sb_both
    async with Bot(TOKEN, base_url=sb.base_url) as bot:
        me = await bot.get_me()
    assert me.is_bot and me.id == 123456 and me.username == "sandbox123456_bot"

    async with http.get(f"{sb.base_url}{TOKEN}/getMe") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        body = await resp.json()
    assert body["ok"] is True and body["result"]["id"] == 123456

    async with http.post(f"{sb.base_url}not-a-token/getMe") as resp:
        assert resp.status == 401
        assert await resp.json() == {
            "ok": False, "error_code": 401, "description": "Unauthorized"
        }
    async with http.post(f"{sb.base_url}{TOKEN}/noSuchMethod") as resp:
        assert resp.status == 404
        assert (await resp.json())["description"] == "Not Found"
    with pytest.raises(InvalidToken):
        async with Bot("nope", base_url=sb.base_url) as bad:
            await bad.get_me()


async def test_parameter_encodings(sb_both: Sandbox, http: aiohttp.ClientSession) -> None:
    sb = sb_both
    user = sb.user(1001, "민지")
    url = f"{sb.base_url}{TOKEN}/sendMessage"
    keyboard = '{"inline_keyboard":[[{"text":"Go","callback_data":"go"}]]}'
    async with http.get(url, params={"chat_id": "1001", "text": "by query"}) as resp:
        assert (await resp.json())["result"]["text"] == "by query"
    async with http.post(
        url, data={"chat_id": "1001", "text": "by form", "reply_markup": keyboard}
    ) as resp:
        result = (await resp.json())["result"]
        assert result["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "go"
    async with http.post(
        url, json={"chat_id": 1001, "text": "by json", "reply_markup": {"inline_keyboard": []}}
    ) as resp:
        assert "reply_markup" not in (await resp.json())["result"]
    form = aiohttp.FormData()
    form.add_field("chat_id", "1001")
    form.add_field("text", "by multipart")
    async with http.post(url, data=form) as resp:
        assert (await resp.json())["result"]["text"] == "by multipart"
    assert [m.text for m in user.messages] == ["by query", "by form", "by json", "by multipart"]
    assert [m.message_id for m in user.messages] == [1, 2, 3, 4]
    message = user.messages[1].raw
    assert message["from"]["is_bot"] is True and isinstance(message["date"], int)
    assert message["chat"] == {"id": 1001, "type": "private", "first_name": "민지"}


async def test_html_and_entity_rules(bot: Bot, sb: Sandbox) -> None:
    user = sb.user(1002)
    sent = await bot.send_message(1002, "<b>Sign</b> 👉 <a href='example.org'>here</a>",
                                  parse_mode=ParseMode.HTML)
    assert sent.text == "Sign 👉 here"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [
        ("bold", 0, 4), ("text_link", 8, 4)  # the emoji counts as two UTF-16 units
    ]
    assert user.messages[-1].parse_mode == ParseMode.HTML
    with pytest.raises(BadRequest, match=r"(?i)can.t parse entities: unsupported start tag"):
        await bot.send_message(1002, "1 < 2", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match=r"(?i)find end tag corresponding to start tag"):
        await bot.send_message(1002, "<b>open", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match=r"reserved and must be escaped"):
        await bot.send_message(1002, "Thanks!", parse_mode=ParseMode.MARKDOWN_V2)
    with pytest.raises(BadRequest, match=r"[Mm]essage text is empty"):
        await bot.send_message(1002, "<b> </b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match=r"[Mm]essage is too long"):
        await bot.send_message(1002, "x" * 4097)
    ok = await bot.send_message(1002, "<b>x</b>" + "y" * 4095, parse_mode=ParseMode.HTML)
    assert ok.text is not None and len(ok.text) == 4096


def test_markup_parsers_match_tdlib_errors() -> None:
    assert parse_html("🏟 🏟<i>🏟 &gt;<b aba   =   caba>&lt🏟</b></i>") == (
        "🏟 🏟🏟 ><🏟",
        [{"type": "italic", "offset": 5, "length": 7}, {"type": "bold", "offset": 9, "length": 3}],
    )
    for markup, error in [
        ("🏟 🏟&lt;<abac aba>", 'Unsupported start tag "abac" at byte offset 13'),
        ("🏟 🏟&lt;<i>a</em   >",
         'Unmatched end tag at byte offset 17, expected "</i>", found "</em>"'),
        ("🏟 🏟&lt;</", "Unexpected end tag at byte offset 13"),
    ]:
        with pytest.raises(EntityParseError) as exc:
            parse_html(markup)
        assert str(exc.value) == error
    with pytest.raises(EntityParseError, match=r"Can't find end of Italic entity at byte offset 9"):
        parse_markdown_v2("🏟 🏟_abacaba")


# --- updates via long polling --------------------------------------------------------------------


async def test_command_button_and_edit_through_application(sb: Sandbox) -> None:
    seen_args: list[list[str]] = []

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        seen_args.append(list(context.args or []))
        keyboard = InlineKeyboardMarkup(
            [[InlineKeyboardButton("Sign", callback_data="sign:42"),
              InlineKeyboardButton("Site", url="https://example.org")]]
        )
        await update.effective_message.reply_text("Welcome!", reply_markup=keyboard)

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.message is not None
        await query.answer("Thanks for signing", show_alert=True)
        await query.edit_message_text(f"Signed ({query.data}) by {query.from_user.first_name}")

    user = sb.user(1001, "민지", language_code="ko")
    async with running_app(sb, CommandHandler("start", start),
                           CallbackQueryHandler(pressed, pattern=r"^sign:")):
        await user.send("/start ref_abc")
        welcome = await user.next_message()
        assert welcome.text == "Welcome!"
        assert welcome.button_texts == ["Sign", "Site"]

        await user.send("/start@sandbox123456_bot second")
        latest = await user.next_message()
        assert seen_args == [["ref_abc"], ["second"]]

        query_id = await user.press_button("Sign")  # on the latest message with that button
        answer = await user.wait_callback_answer(query_id)
        assert answer == {"show_alert": True, "text": "Thanks for signing"}
        await wait_until(lambda: latest.edit_date is not None)
        assert latest.text == "Signed (sign:42) by 민지"
        assert latest.reply_markup is None  # an edit without reply_markup drops the keyboard
        assert welcome.edit_date is None and welcome.button_texts == ["Sign", "Site"]
        with pytest.raises(ValueError, match=r"not a callback button"):
            await user.press_button("Site")


async def test_command_entities_use_utf16(sb: Sandbox) -> None:
    user = sb.user(1003, "Zoë")
    message = await user.send("👍 /vote@sandbox123456_bot yes")
    assert message.raw["entities"] == [{"type": "bot_command", "offset": 3, "length": 23}]
    update = sb.bot().updates[-1]
    assert update["message"]["from"] == {"id": 1003, "is_bot": False, "first_name": "Zoë"}
    assert update["message"]["chat"]["type"] == "private"


async def test_get_updates_semantics(sb: Sandbox, bot: Bot) -> None:
    user = sb.user(1004)
    for text in ("one", "two", "three"):
        await user.send(text)
    updates = await bot.get_updates(limit=2)
    assert [u.message.text for u in updates if u.message] == ["one", "two"]
    first_id = updates[0].update_id
    updates = await bot.get_updates(offset=first_id + 1)  # confirms "one"
    assert [u.message.text for u in updates if u.message] == ["two", "three"]
    assert (await bot.get_webhook_info()).pending_update_count == 2

    # A long poll returns as soon as an update arrives.
    async def later() -> None:
        await asyncio.sleep(0.2)
        await user.send("four")

    task = asyncio.create_task(later())
    started = time.monotonic()
    updates = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=5)
    await task
    assert time.monotonic() - started < 2
    assert [u.message.text for u in updates if u.message] == ["four"]

    # allowed_updates is remembered for later calls, as Telegram does.
    await bot.get_updates(offset=updates[-1].update_id + 1, allowed_updates=["callback_query"])
    await user.send("filtered out")
    assert await bot.get_updates(timeout=0) == ()
    await bot.get_updates(allowed_updates=[])
    await user.send("back")
    updates = await bot.get_updates()
    assert [u.message.text for u in updates if u.message] == ["back"]

    # A second bot instance polling terminates the first one's long poll with 409.
    offset = updates[-1].update_id + 1
    waiting = asyncio.create_task(bot.get_updates(offset=offset, timeout=5, read_timeout=10))
    await asyncio.sleep(0.2)
    async with Bot(TOKEN, base_url=sb.base_url) as second_instance:
        assert await second_instance.get_updates(offset=offset, timeout=0) == ()
    with pytest.raises(Conflict, match=r"terminated by other getUpdates request"):
        await waiting


# --- webhook -------------------------------------------------------------------------------------


async def test_webhook_delivery_secret_and_retry(sb: Sandbox, bot: Bot) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    attempts = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            return web.Response(status=500)
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"),
                         await request.json()))
        return web.Response(status=200)

    hook_app = web.Application()
    hook_app.router.add_post("/hook", hook)
    runner = web.AppRunner(hook_app)
    await runner.setup()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        user = sb.user(1005)
        await user.send("queued before the webhook")
        assert await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret_-",
                                     drop_pending_updates=True)
        with pytest.raises(Conflict, match=r"can't use getUpdates method while webhook is active"):
            await bot.get_updates()
        await user.send("first")
        await user.send("second")
        await wait_until(lambda: len(received) == 2)
        assert attempts == 4
        assert [secret for secret, _ in received] == ["s3cret_-", "s3cret_-"]
        assert [u["message"]["text"] for _, u in received] == ["first", "second"]
        info = await bot.get_webhook_info()
        assert info.url.endswith("/hook") and info.pending_update_count == 0
        assert info.last_error_message and "500" in info.last_error_message
        assert await bot.delete_webhook()
        await user.send("polled again")
        assert [u.message.text for u in await bot.get_updates() if u.message] == ["polled again"]
    finally:
        await runner.cleanup()


# --- files, polls, membership --------------------------------------------------------------------


async def test_send_document_multipart(sb: Sandbox, bot: Bot) -> None:
    user = sb.user(1006)
    payload = "name,city\n민지,Seoul\n".encode()
    sent = await bot.send_document(1006, document=payload, filename="signatures.csv",
                                   caption="<b>Export</b>", parse_mode=ParseMode.HTML)
    assert sent.document is not None and sent.document.file_name == "signatures.csv"
    assert sent.caption == "Export" and sent.caption_entities[0].type == "bold"
    received = await user.next_message()
    assert received.document is not None
    assert received.document.data == payload
    assert received.document.mime_type == "text/csv"
    file = await bot.get_file(sent.document.file_id)
    assert bytes(await file.download_as_bytearray()) == payload
    again = await bot.send_document(1006, document=sent.document.file_id)
    assert again.document is not None and again.document.file_id == sent.document.file_id


async def test_poll_answer_reaches_handler(sb: Sandbox, bot: Bot) -> None:
    answers: list[tuple[str, int, tuple[int, ...]]] = []

    async def on_answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        answer = update.poll_answer
        assert answer is not None and answer.user is not None
        answers.append((answer.poll_id, answer.user.id, answer.option_ids))

    user = sb.user(1007)
    async with running_app(sb, PollAnswerHandler(on_answer)):
        message = await bot.send_poll(1007, "Join the rally?", ["Yes", "No", "Maybe"],
                                      is_anonymous=False)
        assert message.poll is not None and not message.poll.is_anonymous
        poll_id = message.poll.id
        assert (await user.next_message()).poll is not None
        await user.answer_poll(poll_id, [0])
        await wait_until(lambda: len(answers) == 1)
        assert answers == [(poll_id, 1007, (0,))]
    stopped = await bot.stop_poll(1007, message.message_id)
    assert stopped.is_closed and stopped.total_voter_count == 1
    assert [o.voter_count for o in stopped.options] == [1, 0, 0]
    with pytest.raises(ValueError, match=r"closed"):
        await user.answer_poll(poll_id, [1])


async def test_block_sends_my_chat_member_and_403(sb: Sandbox, bot: Bot) -> None:
    changes: list[tuple[str, str]] = []

    async def on_member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        change = update.my_chat_member
        assert change is not None and change.new_chat_member.user.id == 123456
        changes.append((change.old_chat_member.status, change.new_chat_member.status))

    user = sb.user(1008)
    async with running_app(sb, ChatMemberHandler(on_member, ChatMemberHandler.MY_CHAT_MEMBER)):
        await user.block()
        await wait_until(lambda: len(changes) == 1)
        with pytest.raises(Forbidden, match=r"bot was blocked by the user"):
            await bot.send_message(1008, "are you there?")
        await user.unblock()
        await wait_until(lambda: len(changes) == 2)
    assert changes == [("member", "kicked"), ("kicked", "member")]
    await bot.send_message(1008, "welcome back")
    await user.deactivate()
    with pytest.raises(Forbidden, match=r"user is deactivated"):
        await bot.send_message(1008, "gone")
    assert sb.bot().counters.forbidden == 2


# --- errors and faults ---------------------------------------------------------------------------


async def test_unknown_chat_and_edit_errors(sb: Sandbox, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"[Cc]hat not found"):
        await bot.send_message(424242, "hello?")
    sb.user(1009)
    message = await bot.send_message(1009, "Same")
    with pytest.raises(BadRequest, match=r"[Mm]essage is not modified"):
        await bot.edit_message_text("Same", chat_id=1009, message_id=message.message_id)
    edited = await bot.edit_message_text("Changed", chat_id=1009, message_id=message.message_id)
    assert isinstance(edited, type(message)) and edited.edit_date is not None
    with pytest.raises(BadRequest, match=r"[Mm]essage to edit not found"):
        await bot.edit_message_text("x", chat_id=1009, message_id=999)
    assert await bot.delete_message(1009, message.message_id)
    with pytest.raises(BadRequest, match=r"[Mm]essage to delete not found"):
        await bot.delete_message(1009, message.message_id)
    assert sb.user(1009).messages == []


async def test_rate_limits(sb: Sandbox, bot: Bot) -> None:
    sb.user(1010)
    sb.user(1011)
    sb.faults.per_chat_rate = 1
    await bot.send_message(1010, "first")
    with pytest.raises(RetryAfter) as exc:
        await bot.send_message(1010, "second, too soon")
    assert retry_seconds(exc.value) >= 1
    await bot.send_message(1011, "another chat is fine")

    sb.faults.per_chat_rate = None
    sb.faults.max_rate = 3
    sb.faults.max_burst = 3
    for i in range(3):
        await bot.send_message(1011, f"burst {i}")
    with pytest.raises(RetryAfter):
        await bot.send_message(1010, "over the overall limit")
    counters = sb.counters()
    assert counters["rate_limited"] == 2 and counters["sent"] == 5


async def test_group_limit_and_migration(sb: Sandbox, bot: Bot) -> None:
    group = sb.group(-4001, "Rally team")
    user = sb.user(1012, "Ari")
    await group.send(user, "/help")
    assert sb.bot().updates[-1]["message"]["chat"] == {
        "id": -4001, "type": "group", "title": "Rally team"
    }
    sb.faults.per_group_per_minute = 2
    await bot.send_message(-4001, "one")
    await bot.send_message(-4001, "two")
    with pytest.raises(RetryAfter) as exc:
        await bot.send_message(-4001, "three")
    assert retry_seconds(exc.value) >= 20
    assert [m.text for m in group.messages] == ["one", "two"]

    supergroup = await group.migrate()
    with pytest.raises(ChatMigrated) as migrated:
        await bot.send_message(-4001, "after upgrade")
    assert migrated.value.new_chat_id == supergroup.chat_id
    assert supergroup.raw["type"] == "supergroup"
    await bot.send_message(supergroup.chat_id, "hello supergroup")
    assert [m.text for m in supergroup.messages] == ["hello supergroup"]


async def test_injected_server_errors_and_delays(sb: Sandbox, bot: Bot) -> None:
    user = sb.user(1013)
    sb.faults.fail_next = 2
    with pytest.raises(NetworkError, match=r"Internal Server Error"):
        await bot.send_message(1013, "a")
    sb.faults.fail_status = 502
    with pytest.raises(NetworkError, match=r"Bad Gateway"):
        await bot.send_message(1013, "b")
    await bot.send_message(1013, "c")
    assert [m.text for m in user.messages] == ["c"]
    assert sb.counters()["server_errors"] == 2

    sb.faults.update({"fail_probability": 0.5, "seed": 7, "fail_status": 500})
    outcomes = []
    for i in range(20):
        try:
            await bot.send_message(1013, f"p{i}")
            outcomes.append(True)
        except NetworkError:
            outcomes.append(False)
    assert 0 < outcomes.count(False) < 20
    sb.faults.reset()

    # A delayed answer times out in the client, but the message was delivered anyway.
    sb.faults.update({"delay_next": 1, "delay_seconds": 0.6})
    async with Bot(TOKEN, base_url=sb.base_url,
                   request=HTTPXRequest(read_timeout=0.2)) as impatient:
        with pytest.raises(TimedOut):
            await impatient.send_message(1013, "slow")
    await wait_until(lambda: user.messages[-1].text == "slow")
    assert sb.counters()["delayed"] == 1


async def test_random_flood_waits_catch_early_sends(sb: Sandbox, bot: Bot) -> None:
    """Chaos mode: random 429s, and the counters say whether the bot honoured retry_after."""
    sb.user(1014)
    sb.user(1015)
    sb.faults.update({"rate_limit_probability": 1.0, "rate_limit_retry_after": 2, "seed": 1})
    with pytest.raises(RetryAfter) as exc:
        await bot.send_message(1014, "first")
    assert retry_seconds(exc.value) == 2
    sb.faults.rate_limit_probability = 0.0
    await asyncio.sleep(Sandbox.RETRY_GRACE + 0.05)
    await bot.send_message(1014, "retried too early")
    await bot.send_message(1015, "another chat, still inside the bot's wait")
    counters = sb.counters()
    assert (counters["early_retries"], counters["early_sends"]) == (1, 2)
    assert counters["rate_limited"] == 1 and counters["sent"] == 2


async def test_auto_create_mode_counts_without_history(http: aiohttp.ClientSession) -> None:
    async with Sandbox.serve(auto_create_private_chats=True) as sandbox:
        url = f"{sandbox.base_url}{TOKEN}/sendMessage"
        for chat_id, text in [(5001, "hi"), (5002, "hi"), (5001, "hi"), (5001, "other")]:
            async with http.post(url, data={"chat_id": str(chat_id), "text": text}) as resp:
                body = await resp.json()
                assert body["ok"] is True
        assert body["result"]["message_id"] == 3
        assert body["result"]["chat"]["type"] == "private"
        async with http.post(url, data={"chat_id": "-5", "text": "x"}) as resp:
            assert resp.status == 400
        sandbox.faults.blocked.add(5003)
        async with http.post(url, data={"chat_id": "5003", "text": "x"}) as resp:
            assert resp.status == 403
        counters = sandbox.counters()
        assert counters["sent"] == 4 and counters["chats"] == 2
        assert counters["duplicates"] == 1 and counters["duplicate_chats"] == [5001]
        assert sandbox.bot().chats == {}  # nothing retained per message


async def test_multiple_bots_are_isolated(sb: Sandbox) -> None:
    other_token = "777:OTHER-TOKEN-xyz"
    async with Bot(TOKEN, base_url=sb.base_url) as first, \
            Bot(other_token, base_url=sb.base_url) as second:
        assert (await second.get_me()).id == 777
        alice = sb.user(2001, bot_token=other_token)
        await alice.send("hi second")
        assert await first.get_updates() == ()
        updates = await second.get_updates()
        assert updates[0].message is not None and updates[0].message.text == "hi second"
        with pytest.raises(BadRequest, match=r"[Cc]hat not found"):
            await first.send_message(2001, "not my chat")


async def test_commands_and_misc_methods(bot: Bot, sb: Sandbox) -> None:
    sb.user(1014)
    await bot.set_my_commands([("start", "Start"), ("sign", "Sign the petition")])
    assert [c.command for c in await bot.get_my_commands()] == ["start", "sign"]
    await bot.set_my_commands([("help", "Hilfe")], language_code="de")
    assert [c.command for c in await bot.get_my_commands(language_code="de")] == ["help"]
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    assert await bot.send_chat_action(1014, "typing")
    chat = await bot.get_chat(1014)
    assert chat.type == "private" and chat.first_name == "User1014"
    assert await bot.log_out() and await bot.close()


# --- the user side over HTTP and as a process ----------------------------------------------------


async def test_control_http_api(sb: Sandbox, bot: Bot, http: aiohttp.ClientSession) -> None:
    base = f"{sb.url}/sandbox"
    async with http.post(f"{base}/users", json={"user_id": 3001, "first_name": "Web"}) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert (await resp.json())["chat"]["id"] == 3001
    async with http.options(f"{base}/users", headers={"Origin": "http://localhost:8000"}) as resp:
        assert resp.status == 204 and "POST" in resp.headers["Access-Control-Allow-Methods"]
    async with http.post(f"{base}/users/3001/messages", json={"text": "/start"}) as resp:
        assert (await resp.json())["message"]["entities"][0]["type"] == "bot_command"
    assert (await bot.get_updates())[0].message.text == "/start"  # type: ignore[union-attr]

    async def reply_later() -> None:
        await asyncio.sleep(0.2)
        await bot.send_message(3001, "Pick one", reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton("A", callback_data="a")]]))

    task = asyncio.create_task(reply_later())
    async with http.get(f"{base}/chats/3001/messages", params={"after": "0", "wait": "5"}) as resp:
        listing = await resp.json()
    await task
    assert [e["message"]["text"] for e in listing["messages"]] == ["Pick one"]
    async with http.post(f"{base}/users/3001/press", json={"text": "A"}) as resp:
        query_id = (await resp.json())["callback_query_id"]
    updates = await bot.get_updates(offset=-1)
    assert updates[0].callback_query is not None and updates[0].callback_query.data == "a"
    await updates[0].callback_query.answer("ok")
    async with http.get(f"{base}/users/3001/callbacks/{query_id}") as resp:
        assert (await resp.json())["answer"]["text"] == "ok"
    async with http.get(f"{base}/chats/3001/messages",
                        params={"after": str(listing["cursor"]), "wait": "0"}) as resp:
        assert (await resp.json())["messages"] == []

    async with http.post(f"{base}/faults", json={"blocked": [3001]}) as resp:
        assert (await resp.json())["blocked"] == [3001]
    with pytest.raises(Forbidden):
        await bot.send_message(3001, "blocked by fault")
    async with http.post(f"{base}/faults", json={"reset": True, "nonsense": 1}) as resp:
        assert resp.status == 400
    async with http.get(f"{base}/counters", params={"chat_id": "3001"}) as resp:
        counters = await resp.json()
    assert counters["sent"] == 1 and counters["forbidden"] == 1
    assert counters["chat"]["delivered"] == 1
    async with http.post(f"{base}/users/9999/messages", json={"text": "x"}) as resp:
        assert resp.status == 404


async def test_standalone_process(http: aiohttp.ClientSession) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.sandbox", "--port", str(port), "--auto-create-chats",
        "--max-rate", "1000",
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                async with http.post(f"http://127.0.0.1:{port}/bot{TOKEN}/sendMessage",
                                     json={"chat_id": 42, "text": "hi"}) as resp:
                    assert (await resp.json())["result"]["chat"]["id"] == 42
                    break
            except aiohttp.ClientConnectionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        async with http.get(f"http://127.0.0.1:{port}/sandbox/faults") as resp:
            assert (await resp.json())["max_rate"] == 1000
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def test_reply_keyboard_and_group_text_handler(sb: Sandbox) -> None:
    texts: list[str] = []

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None and update.effective_message.text
        texts.append(update.effective_message.text)

    group = sb.group(-1001234567890, "Supporters")
    assert group.raw["type"] == "supergroup"
    user = sb.user(1015)
    async with running_app(sb, MessageHandler(filters.TEXT & ~filters.COMMAND, echo)):
        await group.send(user, "hello group")
        await user.send("hello private")
        await wait_until(lambda: len(texts) == 2)
    assert texts == ["hello group", "hello private"]


async def test_fast_path_pipelining_and_handoff_to_aiohttp(sb: Sandbox) -> None:
    """Pipelined requests on one connection; the last one switches it over to aiohttp."""
    reader, writer = await asyncio.open_connection(sb.host, sb.port)
    form = b"chat_id=1&text=x"
    writer.write(
        f"POST /bot{TOKEN}/getMe HTTP/1.1\r\nHost: sb\r\nContent-Length: 0\r\n\r\n".encode()
        + f"POST /bot{TOKEN}/sendMessage HTTP/1.1\r\nHost: sb\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(form)}\r\n\r\n".encode() + form
        + b"GET /sandbox/faults HTTP/1.1\r\nHost: sb\r\n\r\n"
    )

    async def read_response() -> tuple[int, bytes]:
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) != b"\r\n":
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await reader.readexactly(length)

    try:
        statuses = [await asyncio.wait_for(read_response(), 5) for _ in range(3)]
    finally:
        writer.close()
    assert [status for status, _ in statuses] == [200, 400, 200]
    assert b'"username":"sandbox123456_bot"' in statuses[0][1]
    assert b"chat not found" in statuses[1][1]
    assert b'"fail_status":500' in statuses[2][1]
