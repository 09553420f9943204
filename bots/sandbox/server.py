"""The Bot API side of the sandbox: ``POST|GET /bot<token>/<method>`` like api.telegram.org."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import mimetypes
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import orjson
from aiohttp import web

from .faults import NEW_MESSAGE_METHODS, Faults
from .markup import EntityParseError, parse_text
from .state import (
    JSON,
    BotState,
    CallbackRecord,
    ChatState,
    Counters,
    PollRecord,
    SandboxMessage,
    StoredFile,
    UserProfile,
    WebhookConfig,
)

if TYPE_CHECKING:
    from .users import SimGroup, SimUser

__all__ = ["DEFAULT_TOKEN", "ApiError", "Sandbox"]

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "123456:SANDBOX-TOKEN-abcdefghij"
TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]{10,}$")

MAX_TEXT = 4096
MAX_CAPTION = 1024
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "callback_game",
    "pay",
    "web_app",
    "copy_text",
)
COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")

_JSON_HEADERS = {"Content-Type": "application/json"}
_UNAUTHORIZED = b'{"ok":false,"error_code":401,"description":"Unauthorized"}'
_NOT_FOUND = b'{"ok":false,"error_code":404,"description":"Not Found"}'


class ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code": code, "description": ...}``."""

    def __init__(self, code: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> bytes:
        payload: JSON = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            payload["parameters"] = self.parameters
        return orjson.dumps(payload)


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


# --- parameter decoding -----------------------------------------------------------------------
# Form and multipart bodies carry every value as a string, JSON bodies carry typed values; the
# helpers accept both, as the real server does.


def _int(params: JSON, name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, int):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise _bad(f"invalid {name} specified") from None


def _float(params: JSON, name: str, default: float) -> float:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _bad(f"invalid {name} specified") from None


def _bool(params: JSON, name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def _str(params: JSON, name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, web.FileField):
        return None
    return str(value)


def _json(params: JSON, name: str, what: str | None = None) -> Any:
    value = params.get(name)
    if isinstance(value, (str, bytes)):
        if value in ("", b""):
            return None
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            raise _bad(f"can't parse {what or name} JSON object") from None
    return value


def _snapshot(raw: JSON) -> JSON:
    """Copy of a message as it is now (updates must not change when the message is edited)."""
    copy = dict(raw)
    poll = copy.get("poll")
    if poll is not None:
        copy["poll"] = _poll_snapshot(poll)
    return copy


def _poll_snapshot(poll: JSON) -> JSON:
    copy = dict(poll)
    copy["options"] = [dict(o) for o in poll["options"]]
    return copy


Handler = Callable[[BotState, JSON], Any]
AsyncHandler = Callable[[BotState, JSON], Awaitable[Any]]
ApiAnswer = tuple[int, bytes]  # HTTP status and JSON body of a Bot API answer


class Sandbox:
    """A local Telegram Bot API server with simulated users (see the package docstring).

    Use ``async with Sandbox.serve() as sb`` in tests, or ``await sb.start()`` /
    ``await sb.stop()`` when embedding it; ``sb.app`` is the aiohttp application.
    """

    def __init__(
        self,
        *,
        default_token: str = DEFAULT_TOKEN,
        auto_create_private_chats: bool = False,
        track_duplicates: bool = True,
        faults: Faults | None = None,
        webhook_retry_delay: float = 0.05,
        webhook_max_retry_delay: float = 2.0,
        cors_origins: Sequence[str] = ("*",),
    ) -> None:
        if not TOKEN_RE.match(default_token):
            raise ValueError(f"invalid default token {default_token!r}")
        self.default_token = default_token
        self.auto_create_private_chats = auto_create_private_chats
        self.track_duplicates = track_duplicates
        self.faults = faults or Faults()
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_max_retry_delay = webhook_max_retry_delay
        self.cors_origins = tuple(cors_origins)
        self.bots: dict[str, BotState] = {}
        self.profiles: dict[int, UserProfile] = {}
        self._ids = itertools.count(1)
        self._closing = False
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._fast_close: Callable[[], Awaitable[None]] | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self._sim_users: dict[tuple[str, int], SimUser] = {}
        self._sim_groups: dict[tuple[str, int], SimGroup] = {}
        self._methods: dict[str, Handler] = {
            "getme": self.m_get_me,
            "logout": self.m_true,
            "close": self.m_true,
            "getwebhookinfo": self.m_get_webhook_info,
            "sendmessage": self.m_send_message,
            "editmessagetext": self.m_edit_message_text,
            "editmessagereplymarkup": self.m_edit_message_reply_markup,
            "editmessagecaption": self.m_edit_message_caption,
            "deletemessage": self.m_delete_message,
            "deletemessages": self.m_delete_messages,
            "answercallbackquery": self.m_answer_callback_query,
            "senddocument": self.m_send_document,
            "sendphoto": self.m_send_photo,
            "sendvenue": self.m_send_venue,
            "getfile": self.m_get_file,
            "sendpoll": self.m_send_poll,
            "stoppoll": self.m_stop_poll,
            "setmycommands": self.m_set_my_commands,
            "getmycommands": self.m_get_my_commands,
            "deletemycommands": self.m_delete_my_commands,
            "sendchataction": self.m_send_chat_action,
            "getchat": self.m_get_chat,
            "getchatmember": self.m_get_chat_member,
            "getchatmembercount": self.m_get_chat_member_count,
            "leavechat": self.m_leave_chat,
            "setmyname": self._setting("name"),
            "getmyname": self._getting("name"),
            "setmydescription": self._setting("description"),
            "getmydescription": self._getting("description"),
            "setmyshortdescription": self._setting("short_description"),
            "getmyshortdescription": self._getting("short_description"),
            "setchatmenubutton": self.m_set_chat_menu_button,
            "getchatmenubutton": self.m_get_chat_menu_button,
        }
        # Methods that may wait (long polling, stopping the webhook task) run as coroutines;
        # all others are plain functions so the hot path needs no task per request.
        self._async_methods: dict[str, AsyncHandler] = {
            "getupdates": self.m_get_updates,
            "setwebhook": self.m_set_webhook,
            "deletewebhook": self.m_delete_webhook,
        }
        self.app = self._build_app()

    # --- lifecycle ----------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        # Telegram accepts uploads up to 50 MB from bots; aiohttp's default cap is 1 MiB.
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_bot_request)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file_download)
        from .control import add_control_routes

        add_control_routes(self, app)
        app.on_shutdown.append(self._on_shutdown)
        return app

    @property
    def url(self) -> str:
        """Root URL of the running server, e.g. ``http://127.0.0.1:8081``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Pass as python-telegram-bot's ``base_url`` (it appends ``<token>/<method>``)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """Pass as python-telegram-bot's ``base_file_url``."""
        return f"{self.url}/file/bot"

    async def start(self, host: str = "127.0.0.1", port: int = 0, *,
                    fast_path: bool = True) -> None:
        """Serve on ``host:port`` (port 0 picks a free one; read it back from ``self.port``).

        ``fast_path`` puts the lean HTTP front of ``fastpath.py`` before the aiohttp app for
        ``/bot...`` requests; with False, aiohttp serves everything.
        """
        if self._runner is not None:
            raise RuntimeError("sandbox already started")
        self._closing = False
        # No access log: at benchmark rates logging every request would dominate the cost.
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        sockets: Sequence[Any]
        if fast_path and runner.server is not None:
            from .fastpath import start_fast_server

            server, self._fast_close = await start_fast_server(self, runner.server, host, port)
            sockets = getattr(server, "sockets", None) or []
        else:
            site = web.TCPSite(runner, host, port, backlog=1024)
            await site.start()
            sockets = getattr(site._server, "sockets", None) or []
        self.host = host
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        # Wake long polls first so that no request keeps the shutdown waiting.
        self._closing = True
        for bot in self.bots.values():
            bot.update_notifier.notify()
        fast_close, self._fast_close = self._fast_close, None
        if fast_close is not None:
            await fast_close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        else:
            await self._on_shutdown(self.app)

    async def _on_shutdown(self, _app: web.Application) -> None:
        # Release long polls and stop webhook deliveries so shutdown does not wait for them.
        self._closing = True
        for bot in self.bots.values():
            bot.update_notifier.notify()
            task, bot.webhook_task = bot.webhook_task, None
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for chat in bot.chats.values():
                chat.notifier.notify()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @classmethod
    @contextlib.asynccontextmanager
    async def serve(
        cls, host: str = "127.0.0.1", port: int = 0, *, fast_path: bool = True, **options: Any
    ) -> AsyncIterator[Sandbox]:
        """``async with Sandbox.serve() as sb:`` runs a sandbox on a free port.

        ``options`` go to the constructor (e.g. ``auto_create_private_chats=True``).
        """
        sandbox = cls(**options)
        await sandbox.start(host, port, fast_path=fast_path)
        try:
            yield sandbox
        finally:
            await sandbox.stop()

    # --- bots, users, groups ----------------------------------------------------------------

    def bot(self, token: str | None = None) -> BotState:
        """State of the bot with ``token`` (default: ``default_token``), created on first use."""
        token = token or self.default_token
        bot = self.bots.get(token)
        if bot is None:
            bot = self.register_bot(token)
        return bot

    def register_bot(
        self, token: str, *, first_name: str | None = None, username: str | None = None
    ) -> BotState:
        if not TOKEN_RE.match(token):
            raise ValueError(f"not a bot token: {token!r}")
        bot = self.bots.get(token)
        if bot is None:
            bot = BotState(
                token,
                first_name=first_name,
                username=username,
                track_duplicates=self.track_duplicates,
            )
            self.bots[token] = bot
        return bot

    def user(
        self,
        user_id: int,
        first_name: str | None = None,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        bot_token: str | None = None,
    ) -> SimUser:
        """A simulated user in a private chat with a bot (the same object on repeated calls)."""
        from .users import SimUser

        bot = self.bot(bot_token)
        key = (bot.token, user_id)
        existing = self._sim_users.get(key)
        if existing is not None:
            return existing
        profile = self.profiles.get(user_id)
        if profile is None:
            if user_id <= 0:
                raise ValueError("user ids are positive")
            profile = UserProfile(
                id=user_id,
                first_name=first_name or f"User{user_id}",
                last_name=last_name,
                username=username,
                language_code=language_code,
            )
            self.profiles[user_id] = profile
        chat = bot.chats.get(user_id)
        if chat is None:
            chat = ChatState(user_id, "private", user=profile)
            bot.chats[user_id] = chat
        sim = SimUser(self, bot, chat, profile)
        self._sim_users[key] = sim
        return sim

    def group(
        self,
        chat_id: int,
        title: str | None = None,
        *,
        type: str | None = None,
        username: str | None = None,
        bot_token: str | None = None,
    ) -> SimGroup:
        """A simulated group (ids <= -10**12 are supergroups unless ``type`` says otherwise)."""
        from .users import SimGroup

        bot = self.bot(bot_token)
        key = (bot.token, chat_id)
        existing = self._sim_groups.get(key)
        if existing is not None:
            return existing
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        chat = bot.chats.get(chat_id)
        if chat is None:
            chat_type = type or ("supergroup" if chat_id <= -(10**12) else "group")
            if chat_type not in ("group", "supergroup"):
                raise ValueError(f"unsupported group type {chat_type!r}")
            chat = ChatState(
                chat_id, chat_type, title=title or f"Group {-chat_id}", username=username
            )
            bot.chats[chat_id] = chat
        sim = SimGroup(self, bot, chat)
        self._sim_groups[key] = sim
        return sim

    def chat_messages(self, chat_id: int, bot_token: str | None = None) -> list[SandboxMessage]:
        """Everything the bot sent to ``chat_id`` (not deleted), in order."""
        chat = self.bot(bot_token).chats.get(chat_id)
        return chat.bot_messages if chat is not None else []

    def counters(self, bot_token: str | None = None) -> JSON:
        return self.bot(bot_token).counters.to_dict()

    def next_id(self) -> int:
        return next(self._ids)

    # --- HTTP entry points --------------------------------------------------------------------

    def dispatch(
        self,
        token: str,
        name: str,
        params: JSON,
        is_gone: Callable[[], bool] | None = None,
    ) -> ApiAnswer | Awaitable[ApiAnswer]:
        """Run Bot API method ``name`` for ``token``; the HTTP layers share this.

        Returns the answer directly when it can be computed without waiting (the common
        case), or an awaitable for long polls and injected delays. ``is_gone`` tells whether
        the client disconnected (used by delays that drop the call).
        """
        bot = self.bots.get(token)
        if bot is None:
            if not TOKEN_RE.match(token):
                return 401, _UNAUTHORIZED
            bot = self.register_bot(token)
        method = name.lower()
        counters = bot.counters
        counters.requests += 1
        methods = counters.methods
        methods[method] = methods.get(method, 0) + 1
        faults = self.faults
        # A random 429 answered earlier is checked even after the faults are switched off.
        if (faults.active or counters.retry_until) and faults.applies_to(method):
            failure = faults.take_failure()
            if failure is not None:
                counters.server_errors += 1
                text = "Bad Gateway" if failure == 502 else "Internal Server Error"
                return failure, ApiError(failure, text).body()
            if method in NEW_MESSAGE_METHODS:
                retry_after = self._random_flood_wait(counters, params)
                if retry_after:
                    counters.rate_limited += 1
                    error = ApiError(429, f"Too Many Requests: retry after {retry_after}",
                                     {"retry_after": retry_after})
                    return 429, error.body()
            delay = faults.take_delay()
            if delay:
                return self._delayed(bot, method, params, delay, is_gone)
        handler = self._methods.get(method)
        if handler is not None:
            return self._run(bot, handler, params)
        async_handler = self._async_methods.get(method)
        if async_handler is not None:
            return self._run_async(bot, async_handler, params)
        return 404, _NOT_FOUND

    # Requests already on the wire when a 429 is answered cannot have honoured it.
    RETRY_GRACE = 0.25

    def _random_flood_wait(self, counters: Counters, params: JSON) -> int:
        """Check a send against earlier random 429s; maybe answer this one with a new one."""
        now = time.monotonic()
        try:
            chat_id = int(params.get("chat_id") or 0)
        except (TypeError, ValueError):
            chat_id = 0
        until = counters.chat_retry_until.pop(chat_id, 0.0)
        if now < until:
            counters.early_retries += 1
        if counters.retry_issued + self.RETRY_GRACE < now < counters.retry_until:
            counters.early_sends += 1
            counters.early_send_latest_s = max(counters.early_send_latest_s,
                                               now - counters.retry_issued)
        retry_after = self.faults.take_rate_limit()
        if retry_after:
            counters.retry_issued = now
            counters.retry_until = max(counters.retry_until, now + retry_after)
            counters.chat_retry_until[chat_id] = now + retry_after
        return retry_after

    def _run(self, bot: BotState, handler: Handler, params: JSON) -> ApiAnswer:
        try:
            return 200, orjson.dumps({"ok": True, "result": handler(bot, params)})
        except ApiError as exc:
            return self._failed(bot, exc)

    async def _run_async(self, bot: BotState, handler: AsyncHandler, params: JSON) -> ApiAnswer:
        try:
            return 200, orjson.dumps({"ok": True, "result": await handler(bot, params)})
        except ApiError as exc:
            return self._failed(bot, exc)

    @staticmethod
    def _failed(bot: BotState, exc: ApiError) -> ApiAnswer:
        counters = bot.counters
        if exc.code == 429:
            counters.rate_limited += 1
        elif exc.code == 403:
            counters.forbidden += 1
        elif exc.code < 500:
            counters.bad_requests += 1
        return exc.code, exc.body()

    async def _delayed(
        self,
        bot: BotState,
        method: str,
        params: JSON,
        delay: float,
        is_gone: Callable[[], bool] | None,
    ) -> ApiAnswer:
        bot.counters.delayed += 1
        handler = self._methods.get(method)
        async_handler = self._async_methods.get(method)
        if not self.faults.delay_delivers:
            await asyncio.sleep(delay)
            if is_gone is not None and is_gone():
                # The client gave up: like a request lost in transit, nothing happens.
                return 504, b""
            delay = 0.0
        if handler is not None:
            outcome = self._run(bot, handler, params)
        elif async_handler is not None:
            outcome = await self._run_async(bot, async_handler, params)
        else:
            outcome = 404, _NOT_FOUND
        # Delivered first, answered late: the client may time out on a sent message.
        await asyncio.sleep(delay)
        return outcome

    async def _handle_bot_request(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        try:
            params = await self._read_params(request)
        except ApiError as exc:
            return web.Response(status=exc.code, body=exc.body(), headers=_JSON_HEADERS)

        def is_gone() -> bool:
            transport = request.transport
            return transport is None or transport.is_closing()

        outcome = self.dispatch(info["token"], info["method"], params, is_gone)
        if not isinstance(outcome, tuple):
            outcome = await outcome
        status, body = outcome
        return web.Response(status=status, body=body, headers=_JSON_HEADERS)

    async def _read_params(self, request: web.Request) -> JSON:
        params: JSON = {}
        if request.query_string:
            params.update(request.query)
        if not request.body_exists:
            return params
        ctype = request.content_type
        if ctype == "application/x-www-form-urlencoded":
            body = await request.read()
            if body:
                params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        elif ctype == "application/json":
            body = await request.read()
            if body:
                try:
                    data = orjson.loads(body)
                except orjson.JSONDecodeError:
                    raise _bad("can't parse JSON object") from None
                if not isinstance(data, dict):
                    raise _bad("parameters must be a JSON object")
                params.update(data)
        elif ctype.startswith("multipart/"):
            form = await request.post()
            for key, value in form.items():
                params[key] = value
        else:
            await request.read()
        return params

    async def _handle_file_download(self, request: web.Request) -> web.StreamResponse:
        bot = self.bots.get(request.match_info["token"])
        path = request.match_info["path"]
        if bot is not None:
            for stored in bot.files.values():
                if stored.file_path == path:
                    return web.Response(
                        body=stored.data,
                        content_type=stored.mime_type or "application/octet-stream",
                    )
        return web.Response(status=404, body=_NOT_FOUND, headers=_JSON_HEADERS)

    async def call(self, method: str, params: JSON | None = None,
                   bot_token: str | None = None) -> Any:
        """Invoke a Bot API method in-process (no HTTP); raises ApiError like the server answers."""
        bot = self.bot(bot_token)
        handler = self._methods.get(method.lower())
        if handler is not None:
            return handler(bot, dict(params or {}))
        async_handler = self._async_methods.get(method.lower())
        if async_handler is not None:
            return await async_handler(bot, dict(params or {}))
        raise ApiError(404, "Not Found")

    # --- shared helpers -----------------------------------------------------------------------

    def _chat_id(self, bot: BotState, params: JSON, name: str = "chat_id") -> int:
        value = params.get(name)
        if value is None or value == "":
            raise _bad(f"{name} is empty")
        if isinstance(value, int):
            return int(value)
        text = str(value).strip()
        if text.startswith("@"):
            for chat in bot.chats.values():
                if chat.username and chat.username.lower() == text[1:].lower():
                    return chat.id
            raise _bad("chat not found")
        try:
            return int(text)
        except ValueError:
            raise _bad("chat not found") from None

    def _target(
        self, bot: BotState, params: JSON, *, sending: bool = True
    ) -> tuple[ChatState | None, int]:
        """Resolve chat_id; (None, id) is an auto-created private chat without history."""
        chat_id = self._chat_id(bot, params)
        faults = self.faults
        active = faults.active
        if active:
            if chat_id in faults.missing:
                raise _bad("chat not found")
            migrated = faults.migrated.get(chat_id)
            if migrated is not None:
                raise ApiError(
                    400,
                    "Bad Request: group chat was upgraded to a supergroup chat",
                    {"migrate_to_chat_id": migrated},
                )
        chat = bot.chats.get(chat_id)
        if chat is None:
            if not (self.auto_create_private_chats and chat_id > 0):
                raise _bad("chat not found")
        elif chat.migrated_to is not None:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
            )
        if sending:
            if (chat is not None and chat.blocked) or (active and chat_id in faults.blocked):
                if chat is not None and chat.is_group:
                    raise ApiError(403, f"Forbidden: bot was kicked from the {chat.type} chat")
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if (chat is not None and chat.deactivated) or (
                active and chat_id in faults.deactivated
            ):
                raise ApiError(403, "Forbidden: user is deactivated")
        return chat, chat_id

    def _admit(self, bot: BotState, method: str, chat_id: int, chat: ChatState | None) -> None:
        """Flood control for a new message; raises 429 with retry_after."""
        faults = self.faults
        if not faults.active or method not in NEW_MESSAGE_METHODS:
            return
        is_group = chat.is_group if chat is not None else chat_id < 0
        retry_after = bot.limiter.check(faults, chat_id, is_group)
        if retry_after:
            raise ApiError(
                429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
            )

    @staticmethod
    def _format(
        text: str, params: JSON, mode_key: str = "parse_mode", entities_key: str = "entities"
    ) -> tuple[str, list[JSON]]:
        parse_mode = _str(params, mode_key) or None
        explicit = None
        if parse_mode is None and entities_key in params:
            explicit = _json(params, entities_key)
            if explicit is not None and not isinstance(explicit, list):
                raise _bad(f"can't parse {entities_key} JSON object")
        try:
            return parse_text(text, parse_mode, explicit)
        except EntityParseError as exc:
            raise _bad(f"can't parse entities: {exc}") from None
        except ValueError:
            raise _bad(f"unsupported parse_mode {parse_mode}") from None

    @staticmethod
    def _reply_markup(params: JSON) -> tuple[JSON | None, JSON | None]:
        """(inline keyboard for the Message, other keyboard kept for the user side)."""
        if "reply_markup" not in params:
            return None, None
        markup = _json(params, "reply_markup", "reply keyboard markup")
        if markup is None:
            return None, None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list):
                raise _bad("can't parse inline keyboard button: field \"inline_keyboard\" "
                           "must be an Array")
            clean_rows: list[list[JSON]] = []
            for row in rows:
                if not isinstance(row, list):
                    raise _bad("can't parse inline keyboard button: InlineKeyboardButton "
                               "must be an Object")
                clean_row: list[JSON] = []
                for button in row:
                    clean_row.append(Sandbox._check_button(button))
                if clean_row:
                    clean_rows.append(clean_row)
            if not clean_rows:
                return None, None
            return {"inline_keyboard": clean_rows}, None
        if any(k in markup for k in ("keyboard", "remove_keyboard", "force_reply")):
            return None, markup
        raise _bad("can't parse reply keyboard markup JSON object")

    @staticmethod
    def _check_button(button: Any) -> JSON:
        if not isinstance(button, dict):
            raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an "
                       "Object")
        text = button.get("text")
        if not isinstance(text, str):
            raise _bad('can\'t parse inline keyboard button: Field "text" must be of type String')
        actions = [k for k in BUTTON_ACTIONS if k in button]
        if not actions:
            raise _bad("can't parse inline keyboard button: Text buttons are unallowed in the "
                       "inline keyboard")
        if "callback_data" in button:
            data = button["callback_data"]
            if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
                raise _bad("BUTTON_DATA_INVALID")
        if "url" in button:
            url = button["url"]
            if not isinstance(url, str) or not re.match(r"^(https?|tg)://\S+$", url, re.I):
                raise _bad("BUTTON_URL_INVALID")
        return dict(button)

    def _reply_to(self, chat: ChatState | None, params: JSON) -> JSON | None:
        """Resolve reply_parameters / reply_to_message_id into a reply_to_message snapshot."""
        message_id: int | None = None
        allow_missing = _bool(params, "allow_sending_without_reply")
        reply = _json(params, "reply_parameters") if "reply_parameters" in params else None
        if isinstance(reply, dict):
            message_id = _int(reply, "message_id")
            allow_missing = _bool(reply, "allow_sending_without_reply", allow_missing)
        elif "reply_to_message_id" in params:
            message_id = _int(params, "reply_to_message_id")
        if message_id is None or chat is None:
            return None
        target = chat.messages.get(message_id)
        if target is None or target.deleted:
            if allow_missing:
                return None
            raise _bad("message to be replied not found")
        snapshot = _snapshot(target.raw)
        snapshot.pop("reply_to_message", None)
        return snapshot

    def _deliver(
        self,
        bot: BotState,
        chat: ChatState | None,
        chat_id: int,
        fields: JSON,
        *,
        parse_mode: str | None = None,
        document: StoredFile | None = None,
        keyboard: JSON | None = None,
    ) -> tuple[JSON, SandboxMessage | None]:
        """Create a bot message in the chat (or only count it for a history-less chat)."""
        now = int(time.time())
        counted_text = fields.get("text", fields.get("caption"))
        if chat is None:
            message_id = bot.counters.record_delivery(chat_id, counted_text)
            raw = {
                "message_id": message_id,
                "from": bot.user_raw,
                "chat": {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"},
                "date": now,
                **fields,
            }
            return raw, None
        bot.counters.record_delivery(chat_id, counted_text)
        raw = {
            "message_id": chat.take_message_id(),
            "from": bot.user_raw,
            "chat": chat.raw,
            "date": now,
            **fields,
        }
        message = SandboxMessage(raw, from_bot=True, parse_mode=parse_mode, document=document)
        if keyboard is not None:
            chat.reply_keyboard = None if "keyboard" not in keyboard else keyboard
        chat.add(message)
        return raw, message

    def _editable(self, bot: BotState, params: JSON) -> tuple[ChatState, SandboxMessage]:
        if params.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")
        chat, _ = self._target(bot, params)
        message_id = _int(params, "message_id")
        if message_id is None:
            raise _bad("message identifier is not specified")
        message = chat.messages.get(message_id) if chat is not None else None
        if chat is None or message is None or message.deleted:
            raise _bad("message to edit not found")
        if not message.from_bot:
            raise _bad("message can't be edited")
        return chat, message

    # --- Bot API methods ------------------------------------------------------------------------

    def m_true(self, bot: BotState, params: JSON) -> bool:
        return True

    def m_get_me(self, bot: BotState, params: JSON) -> JSON:
        return bot.get_me()

    async def m_get_updates(self, bot: BotState, params: JSON) -> list[JSON]:
        if bot.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = _int(params, "offset", 0) or 0
        limit = _int(params, "limit", 100) or 100
        limit = min(max(limit, 1), 100)
        timeout = max(_float(params, "timeout", 0.0), 0.0)
        if "allowed_updates" in params:
            allowed = _json(params, "allowed_updates")
            if allowed is not None:
                if not isinstance(allowed, list):
                    raise _bad("can't parse allowed_updates JSON object")
                # Remembered for later calls and the webhook, as Telegram does.
                bot.allowed_updates = [str(a) for a in allowed]
        queue = bot.updates
        if offset > 0:
            while queue and queue[0]["update_id"] < offset:
                queue.popleft()
        elif offset < 0:
            while len(queue) > -offset:
                queue.popleft()
        bot.poll_generation += 1
        generation = bot.poll_generation
        # A newer getUpdates call wakes this one, which then answers 409 like Telegram.
        bot.update_notifier.notify()
        deadline = time.monotonic() + timeout
        while True:
            if bot.poll_generation != generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only "
                    "one bot instance is running",
                )
            if queue or self._closing:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await bot.update_notifier.wait(remaining)
        return list(itertools.islice(queue, limit))

    async def m_set_webhook(self, bot: BotState, params: JSON) -> bool:
        url = _str(params, "url") or ""
        if _bool(params, "drop_pending_updates"):
            bot.updates.clear()
        if "allowed_updates" in params:
            allowed = _json(params, "allowed_updates")
            if isinstance(allowed, list):
                bot.allowed_updates = [str(a) for a in allowed]
        if not url:
            await self._remove_webhook(bot)
            return True
        parts = urlsplit(url)
        # Telegram demands HTTPS on ports 443/80/88/8443; a local sandbox cannot offer TLS to
        # the bot's own test server, so plain http on any port is accepted here.
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = _str(params, "secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise _bad("bad webhook: secret token contains unallowed characters")
        max_connections = _int(params, "max_connections", 40) or 40
        old = bot.webhook
        config = WebhookConfig(url, secret, max_connections)
        config.allowed_updates = bot.allowed_updates
        bot.webhook = config
        if old is not None:
            config.last_error_date = old.last_error_date
            config.last_error_message = old.last_error_message
        # A pending getUpdates must end now (it will answer 409 on its next check).
        bot.poll_generation += 1
        bot.update_notifier.notify()
        if bot.webhook_task is None or bot.webhook_task.done():
            bot.webhook_task = asyncio.get_running_loop().create_task(self._webhook_loop(bot))
        return True

    async def _remove_webhook(self, bot: BotState) -> None:
        bot.webhook = None
        task, bot.webhook_task = bot.webhook_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def m_delete_webhook(self, bot: BotState, params: JSON) -> bool:
        if _bool(params, "drop_pending_updates"):
            bot.updates.clear()
        await self._remove_webhook(bot)
        return True

    def m_get_webhook_info(self, bot: BotState, params: JSON) -> JSON:
        info: JSON = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(bot.updates),
        }
        config = bot.webhook
        if config is not None:
            info["url"] = config.url
            info["max_connections"] = config.max_connections
            info["ip_address"] = "127.0.0.1"
            if config.last_error_date is not None:
                info["last_error_date"] = config.last_error_date
                info["last_error_message"] = config.last_error_message
            if bot.allowed_updates:
                info["allowed_updates"] = list(bot.allowed_updates)
        return info

    async def _webhook_loop(self, bot: BotState) -> None:
        """Deliver queued updates one by one, in order, retrying each until a 2xx answer."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        session = self._session
        backoff = self.webhook_retry_delay
        while not self._closing:
            config = bot.webhook
            if config is None:
                return
            if not bot.updates:
                await bot.update_notifier.wait(1.0)
                continue
            update = bot.updates[0]
            headers = {"Content-Type": "application/json"}
            if config.secret_token:
                headers["X-Telegram-Bot-Api-Secret-Token"] = config.secret_token
            error: str | None = None
            reply: bytes = b""
            try:
                async with session.post(
                    config.url, data=orjson.dumps(update), headers=headers
                ) as response:
                    reply = await response.read()
                    if not 200 <= response.status < 300:
                        error = (
                            "Wrong response from the webhook: "
                            f"{response.status} {response.reason}"
                        )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any transport failure counts as a failed delivery
                error = f"Connection failed: {exc.__class__.__name__}"
            if error is None:
                if bot.updates and bot.updates[0] is update:
                    bot.updates.popleft()
                backoff = self.webhook_retry_delay
                await self._webhook_reply(bot, reply)
                continue
            config.last_error_date = int(time.time())
            config.last_error_message = error
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.webhook_max_retry_delay)

    async def _webhook_reply(self, bot: BotState, reply: bytes) -> None:
        """Telegram runs a method call returned in the webhook answer body; so do we."""
        if not reply or not reply.lstrip().startswith(b"{"):
            return
        try:
            data = orjson.loads(reply)
        except orjson.JSONDecodeError:
            return
        if not isinstance(data, dict) or not isinstance(data.get("method"), str):
            return
        params = {k: v for k, v in data.items() if k != "method"}
        with contextlib.suppress(ApiError):
            await self.call(data["method"], params, bot.token)

    def m_send_message(self, bot: BotState, params: JSON) -> JSON:
        chat, chat_id = self._target(bot, params)
        raw_text = params.get("text")
        if raw_text is None or raw_text == "":
            raise _bad("message text is empty")
        text, entities = self._format(str(raw_text), params)
        if not text:
            raise _bad("message text is empty")
        if len(text) > MAX_TEXT:
            raise _bad("message is too long")
        inline, keyboard = self._reply_markup(params) if "reply_markup" in params else (None, None)
        reply_to = self._reply_to(chat, params) if chat is not None else None
        self._admit(bot, "sendmessage", chat_id, chat)
        fields: JSON = {"text": text}
        if entities:
            fields["entities"] = entities
        if reply_to is not None:
            fields["reply_to_message"] = reply_to
        if inline is not None:
            fields["reply_markup"] = inline
        if _bool(params, "protect_content"):
            fields["has_protected_content"] = True
        raw, _ = self._deliver(
            bot, chat, chat_id, fields, parse_mode=_str(params, "parse_mode"), keyboard=keyboard
        )
        return raw

    def m_edit_message_text(self, bot: BotState, params: JSON) -> JSON:
        chat, message = self._editable(bot, params)
        raw = message.raw
        if "text" not in raw:
            raise _bad("there is no text in the message to edit")
        raw_text = params.get("text")
        if raw_text is None or raw_text == "":
            raise _bad("message text is empty")
        text, entities = self._format(str(raw_text), params)
        if not text:
            raise _bad("message text is empty")
        if len(text) > MAX_TEXT:
            raise _bad("message is too long")
        inline, _ = self._reply_markup(params)
        if (
            text == raw["text"]
            and entities == raw.get("entities", [])
            and inline == raw.get("reply_markup")
        ):
            raise _bad(NOT_MODIFIED)
        raw["text"] = text
        self._set_optional(raw, "entities", entities or None)
        # Omitting reply_markup in an edit removes the inline keyboard, as in Telegram.
        self._set_optional(raw, "reply_markup", inline)
        return self._edited(bot, chat, message, _str(params, "parse_mode"))

    def m_edit_message_caption(self, bot: BotState, params: JSON) -> JSON:
        chat, message = self._editable(bot, params)
        raw = message.raw
        if "document" not in raw and "photo" not in raw:
            raise _bad("there is no caption in the message to edit")
        caption, entities = self._format(
            _str(params, "caption") or "", params, entities_key="caption_entities"
        )
        if len(caption) > MAX_CAPTION:
            raise _bad("message caption is too long")
        inline, _ = self._reply_markup(params)
        if (
            caption == raw.get("caption", "")
            and entities == raw.get("caption_entities", [])
            and inline == raw.get("reply_markup")
        ):
            raise _bad(NOT_MODIFIED)
        self._set_optional(raw, "caption", caption or None)
        self._set_optional(raw, "caption_entities", entities or None)
        self._set_optional(raw, "reply_markup", inline)
        return self._edited(bot, chat, message, _str(params, "parse_mode"))

    def m_edit_message_reply_markup(self, bot: BotState, params: JSON) -> JSON:
        chat, message = self._editable(bot, params)
        inline, _ = self._reply_markup(params)
        if inline == message.raw.get("reply_markup"):
            raise _bad(NOT_MODIFIED)
        self._set_optional(message.raw, "reply_markup", inline)
        return self._edited(bot, chat, message, message.parse_mode)

    @staticmethod
    def _set_optional(raw: JSON, key: str, value: Any) -> None:
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value

    @staticmethod
    def _edited(
        bot: BotState, chat: ChatState, message: SandboxMessage, parse_mode: str | None
    ) -> JSON:
        message.raw["edit_date"] = int(time.time())
        message.parse_mode = parse_mode
        bot.counters.edits += 1
        chat.touch(message)
        return message.raw

    def m_delete_message(self, bot: BotState, params: JSON) -> bool:
        chat, _ = self._target(bot, params, sending=False)
        message_id = _int(params, "message_id")
        if message_id is None:
            raise _bad("message identifier is not specified")
        if not self._delete(chat, message_id):
            raise _bad("message to delete not found")
        return True

    def m_delete_messages(self, bot: BotState, params: JSON) -> bool:
        chat, _ = self._target(bot, params, sending=False)
        ids = _json(params, "message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise _bad("message_ids must be an array of 1-100 message identifiers")
        deleted = [self._delete(chat, int(mid)) for mid in ids]
        if not any(deleted):
            raise _bad("message to delete not found")
        return True

    @staticmethod
    def _delete(chat: ChatState | None, message_id: int) -> bool:
        if chat is None:
            return False
        message = chat.messages.pop(message_id, None)
        if message is None or message.deleted:
            return False
        message.deleted = True
        chat.touch(message)
        return True

    def m_answer_callback_query(self, bot: BotState, params: JSON) -> bool:
        query_id = _str(params, "callback_query_id")
        record = bot.callbacks.get(query_id or "")
        if record is None or record.answered:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        text = _str(params, "text")
        if text is not None and len(text) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        answer: JSON = {"show_alert": _bool(params, "show_alert")}
        if text:
            answer["text"] = text
        url = _str(params, "url")
        if url:
            answer["url"] = url
        cache_time = _int(params, "cache_time")
        if cache_time is not None:
            answer["cache_time"] = cache_time
        record.answered = True
        record.answer = answer
        chat = bot.chats.get(record.chat_id)
        if chat is not None:
            chat.notifier.notify()
        return True

    def _input_file(
        self, bot: BotState, params: JSON, field: str, kind: str
    ) -> StoredFile:
        value = params.get(field)
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value[len("attach://") :])
        if isinstance(value, web.FileField):
            data = value.file.read()
            name = value.filename
            mime = value.content_type
            if not mime or mime == "application/octet-stream":
                mime = mimetypes.guess_type(name or "")[0] or mime
            return self._store_file(bot, data, name, mime, kind)
        if isinstance(value, str) and value:
            stored = bot.files.get(value)
            if stored is not None:
                return stored
            if re.match(r"^https?://", value, re.I):
                # The real server downloads the URL; the sandbox has no network, so it keeps
                # an empty file with the URL's name.
                name = urlsplit(value).path.rsplit("/", 1)[-1] or "file"
                mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
                return self._store_file(bot, b"", name, mime, kind)
            raise _bad("wrong file identifier/HTTP URL specified")
        raise _bad(f"there is no {field} in the request")

    def _store_file(
        self, bot: BotState, data: bytes, name: str | None, mime: str | None, kind: str
    ) -> StoredFile:
        n = self.next_id()
        prefix = {"document": "BQACAgIAAxkBAAI", "photo": "AgACAgIAAxkBAAI"}.get(
            kind, "BAACAgIAAxkBAAI"
        )
        file_id = f"{prefix}{n:08d}{bot.id:x}"
        ext = ""
        if name and "." in name:
            ext = "." + name.rsplit(".", 1)[1]
        folder = "photos" if kind == "photo" else "documents"
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=f"AgAD{n:08d}",
            data=data,
            file_name=name,
            mime_type=mime,
            kind=kind,
            file_path=f"{folder}/file_{n}{ext}",
        )
        bot.files[file_id] = stored
        return stored

    def _media_fields(self, params: JSON) -> JSON:
        fields: JSON = {}
        if "caption" in params:
            caption, entities = self._format(
                _str(params, "caption") or "", params, entities_key="caption_entities"
            )
            if len(caption) > MAX_CAPTION:
                raise _bad("message caption is too long")
            if caption:
                fields["caption"] = caption
            if entities:
                fields["caption_entities"] = entities
        return fields

    def m_send_document(self, bot: BotState, params: JSON) -> JSON:
        chat, chat_id = self._target(bot, params)
        stored = self._input_file(bot, params, "document", "document")
        fields = self._media_fields(params)
        inline, keyboard = self._reply_markup(params)
        reply_to = self._reply_to(chat, params)
        self._admit(bot, "senddocument", chat_id, chat)
        document: JSON = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
        }
        if stored.file_name:
            document["file_name"] = stored.file_name
        if stored.mime_type:
            document["mime_type"] = stored.mime_type
        body: JSON = {"document": document, **fields}
        if reply_to is not None:
            body["reply_to_message"] = reply_to
        if inline is not None:
            body["reply_markup"] = inline
        raw, _ = self._deliver(
            bot, chat, chat_id, body, parse_mode=_str(params, "parse_mode"),
            document=stored, keyboard=keyboard,
        )
        return raw

    def m_send_photo(self, bot: BotState, params: JSON) -> JSON:
        chat, chat_id = self._target(bot, params)
        stored = self._input_file(bot, params, "photo", "photo")
        fields = self._media_fields(params)
        inline, keyboard = self._reply_markup(params)
        reply_to = self._reply_to(chat, params)
        self._admit(bot, "sendphoto", chat_id, chat)
        width, height = _image_size(stored.data)
        photo = [
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_size": stored.file_size,
                "width": width,
                "height": height,
            }
        ]
        body: JSON = {"photo": photo, **fields}
        if reply_to is not None:
            body["reply_to_message"] = reply_to
        if inline is not None:
            body["reply_markup"] = inline
        raw, _ = self._deliver(
            bot, chat, chat_id, body, parse_mode=_str(params, "parse_mode"),
            document=stored, keyboard=keyboard,
        )
        return raw

    def m_send_venue(self, bot: BotState, params: JSON) -> JSON:
        chat, chat_id = self._target(bot, params)
        try:
            latitude, longitude = float(params["latitude"]), float(params["longitude"])
        except (KeyError, TypeError, ValueError):
            raise _bad("latitude and longitude are required") from None
        title, address = _str(params, "title"), _str(params, "address")
        if not title or address is None:
            raise _bad("venue title and address are required")
        self._admit(bot, "sendvenue", chat_id, chat)
        location: JSON = {"latitude": latitude, "longitude": longitude}
        fields: JSON = {"venue": {"location": location, "title": title, "address": address},
                        "location": location}
        raw, _ = self._deliver(bot, chat, chat_id, fields)
        return raw

    def m_get_file(self, bot: BotState, params: JSON) -> JSON:
        file_id = _str(params, "file_id") or ""
        stored = bot.files.get(file_id)
        if stored is None:
            raise _bad("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
            "file_path": stored.file_path,
        }

    def m_send_poll(self, bot: BotState, params: JSON) -> JSON:
        chat, chat_id = self._target(bot, params)
        question = _str(params, "question") or ""
        if not question.strip():
            raise _bad("poll question must be non-empty")
        if len(question) > 300:
            raise _bad("poll question length must not exceed 300")
        options_in = _json(params, "options")
        if not isinstance(options_in, list):
            raise _bad("can't parse options JSON object")
        options: list[JSON] = []
        for index, option in enumerate(options_in):
            text = option.get("text") if isinstance(option, dict) else option
            if not isinstance(text, str) or not text.strip():
                raise _bad("poll options must be non-empty")
            if len(text) > 100:
                raise _bad("poll options length must not exceed 100")
            options.append({"text": text, "voter_count": 0, "persistent_id": str(index)})
        if len(options) < 2:
            raise _bad("poll must have at least 2 option")
        if len(options) > 12:
            raise _bad("poll can't have more than 12 options")
        poll_type = _str(params, "type") or "regular"
        if poll_type not in ("regular", "quiz"):
            raise _bad("poll type is invalid")
        is_quiz = poll_type == "quiz"
        poll_id = str(5_000_000_000_000_000_000 + self.next_id())
        poll: JSON = {
            "id": poll_id,
            "question": question,
            "options": options,
            "total_voter_count": 0,
            "is_closed": _bool(params, "is_closed"),
            "is_anonymous": _bool(params, "is_anonymous", True),
            "type": poll_type,
            "allows_multiple_answers": _bool(params, "allows_multiple_answers") and not is_quiz,
            "allows_revoting": _bool(params, "allows_revoting", not is_quiz),
            "members_only": _bool(params, "members_only"),
        }
        if is_quiz:
            correct = _json(params, "correct_option_ids")
            if correct is None and params.get("correct_option_id") not in (None, ""):
                correct = [_int(params, "correct_option_id")]
            if not isinstance(correct, list) or not correct or not all(
                isinstance(c, int) and 0 <= c < len(options) for c in correct
            ):
                raise _bad("wrong correct option id specified")
            poll["correct_option_ids"] = correct
            explanation = _str(params, "explanation")
            if explanation:
                poll["explanation"] = explanation
        open_period = _int(params, "open_period")
        if open_period:
            poll["open_period"] = open_period
            poll["close_date"] = int(time.time()) + open_period
        close_date = _int(params, "close_date")
        if close_date and not open_period:
            poll["close_date"] = close_date
        inline, keyboard = self._reply_markup(params)
        reply_to = self._reply_to(chat, params)
        self._admit(bot, "sendpoll", chat_id, chat)
        body: JSON = {"poll": poll}
        if reply_to is not None:
            body["reply_to_message"] = reply_to
        if inline is not None:
            body["reply_markup"] = inline
        raw, _ = self._deliver(bot, chat, chat_id, body, keyboard=keyboard)
        bot.polls[poll_id] = PollRecord(
            id=poll_id, raw=poll, chat_id=chat_id, message_id=raw["message_id"]
        )
        return raw

    def m_stop_poll(self, bot: BotState, params: JSON) -> JSON:
        chat, message = self._editable(bot, params)
        poll = message.raw.get("poll")
        if poll is None:
            raise _bad("message with poll to stop not found")
        if poll["is_closed"]:
            raise _bad("poll has already been closed")
        poll["is_closed"] = True
        inline, _ = self._reply_markup(params)
        self._set_optional(message.raw, "reply_markup", inline)
        chat.touch(message)
        bot.enqueue("poll", _poll_snapshot(poll))
        return poll

    @staticmethod
    def _commands_key(params: JSON) -> tuple[str, str]:
        scope = _json(params, "scope")
        scope_key = orjson.dumps(scope, option=orjson.OPT_SORT_KEYS).decode() if scope else ""
        if scope_key == '{"type":"default"}':
            scope_key = ""
        return scope_key, _str(params, "language_code") or ""

    def m_set_my_commands(self, bot: BotState, params: JSON) -> bool:
        commands = _json(params, "commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad("too many commands specified")
        clean: list[JSON] = []
        for command in commands:
            if not isinstance(command, dict):
                raise _bad("can't parse BotCommand")
            name = str(command.get("command", "")).lstrip("/")
            description = str(command.get("description", ""))
            if not COMMAND_RE.match(name):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
            clean.append({"command": name, "description": description})
        key = self._commands_key(params)
        if clean:
            bot.commands[key] = clean
        else:
            bot.commands.pop(key, None)
        return True

    def m_get_my_commands(self, bot: BotState, params: JSON) -> list[JSON]:
        return list(bot.commands.get(self._commands_key(params), []))

    def m_delete_my_commands(self, bot: BotState, params: JSON) -> bool:
        bot.commands.pop(self._commands_key(params), None)
        return True

    def _setting(self, name: str) -> Handler:
        def setter(bot: BotState, params: JSON) -> bool:
            key = (name, _str(params, "language_code") or "")
            value = _str(params, name) or ""
            if value:
                bot.settings[repr(key)] = value
            else:
                bot.settings.pop(repr(key), None)
            return True

        return setter

    def _getting(self, name: str) -> Handler:
        def getter(bot: BotState, params: JSON) -> JSON:
            key = (name, _str(params, "language_code") or "")
            default = bot.first_name if name == "name" else ""
            return {name: bot.settings.get(repr(key), default)}

        return getter

    def m_set_chat_menu_button(self, bot: BotState, params: JSON) -> bool:
        button = _json(params, "menu_button") or {"type": "default"}
        bot.settings[f"menu:{params.get('chat_id', '')}"] = button
        return True

    def m_get_chat_menu_button(self, bot: BotState, params: JSON) -> JSON:
        button = bot.settings.get(f"menu:{params.get('chat_id', '')}")
        if not button or button.get("type") == "default":
            return {"type": "commands"}
        return dict(button)

    def m_send_chat_action(self, bot: BotState, params: JSON) -> bool:
        self._target(bot, params)
        action = _str(params, "action")
        if action not in CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    def m_get_chat(self, bot: BotState, params: JSON) -> JSON:
        chat, chat_id = self._target(bot, params, sending=False)
        raw = dict(chat.raw) if chat is not None else {
            "id": chat_id, "type": "private", "first_name": f"User{chat_id}"
        }
        raw.update(
            {
                "accent_color_id": 0,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": False,
                    "limited_gifts": False,
                    "unique_gifts": False,
                    "premium_subscription": False,
                    "gifts_from_channels": False,
                },
            }
        )
        return raw

    def m_get_chat_member(self, bot: BotState, params: JSON) -> JSON:
        chat, chat_id = self._target(bot, params, sending=False)
        user_id = _int(params, "user_id")
        if user_id is None:
            raise _bad("user_id is empty")
        if user_id == bot.id:
            status = "kicked" if chat is not None and chat.blocked else "member"
            member: JSON = {"status": status, "user": bot.user_raw}
            if status == "kicked":
                member["until_date"] = 0
            return member
        profile: UserProfile | None = None
        if chat is None:
            if user_id == chat_id:
                return {"status": "member", "user": {"id": user_id, "is_bot": False,
                                                     "first_name": f"User{user_id}"}}
        elif chat.type == "private":
            profile = chat.user if user_id == chat_id else None
        else:
            profile = chat.members.get(user_id)
        if profile is None:
            known = self.profiles.get(user_id)
            if known is None:
                raise _bad("user not found")
            return {"status": "left", "user": known.to_dict()}
        return {"status": "member", "user": profile.to_dict()}

    def m_get_chat_member_count(self, bot: BotState, params: JSON) -> int:
        chat, _ = self._target(bot, params, sending=False)
        if chat is None or chat.type == "private":
            return 2
        return len(chat.members) + 1

    def m_leave_chat(self, bot: BotState, params: JSON) -> bool:
        chat, _ = self._target(bot, params, sending=False)
        if chat is None or chat.type == "private":
            raise _bad("chat member status can't be changed in private chats")
        chat.blocked = True
        return True

    # --- used by the simulated users ------------------------------------------------------------

    def new_callback(self, bot: BotState, chat: ChatState, message: SandboxMessage,
                     data: str) -> CallbackRecord:
        query_id = str(4_000_000_000_000_000_000 + self.next_id())
        record = CallbackRecord(id=query_id, chat_id=chat.id, message_id=message.message_id,
                                data=data)
        bot.callbacks[query_id] = record
        return record


def _image_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG, GIF or JPEG header (PhotoSize needs them)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            length = int.from_bytes(data[i + 2 : i + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2):
                return (int.from_bytes(data[i + 7 : i + 9], "big"),
                        int.from_bytes(data[i + 5 : i + 7], "big"))
            i += 2 + length
    return 1, 1
