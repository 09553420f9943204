"""HTTP API of the user side (``/sandbox/...``): simulated users, faults, counters.

Used by the demo's web chat page (hence CORS) and by out-of-process benchmarks. All bodies
and answers are JSON; errors answer ``{"error": "..."}`` with status 400 or 404. Every
endpoint takes an optional ``token`` (query string or body) naming the bot, or ``bot``, the
bot's numeric id (a page showing one bot's chat need not hold its token); the sandbox's
default token is used otherwise. The endpoint list is in the package docstring.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from .state import JSON, ChatState, SandboxMessage

if TYPE_CHECKING:
    from .server import Sandbox
    from .users import SimGroup, SimUser

__all__ = ["add_control_routes"]

ControlHandler = Callable[[web.Request], Awaitable[Any]]
MAX_WAIT = 60.0


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def add_control_routes(sandbox: Sandbox, app: web.Application) -> None:
    api = _ControlApi(sandbox)
    routes: list[tuple[str, str, ControlHandler]] = [
        ("GET", "/sandbox", api.info),
        ("GET", "/sandbox/", api.info),
        ("POST", "/sandbox/users", api.create_user),
        ("GET", "/sandbox/users/{user_id}", api.get_user),
        ("POST", "/sandbox/users/{user_id}/messages", api.user_send),
        ("POST", "/sandbox/users/{user_id}/documents", api.user_send_document),
        ("POST", "/sandbox/users/{user_id}/press", api.user_press),
        ("GET", "/sandbox/users/{user_id}/callbacks/{query_id}", api.callback_answer),
        ("POST", "/sandbox/users/{user_id}/poll_answers", api.user_poll_answer),
        ("POST", "/sandbox/users/{user_id}/block", api.user_block),
        ("POST", "/sandbox/users/{user_id}/unblock", api.user_unblock),
        ("GET", "/sandbox/chats/{chat_id}/messages", api.chat_messages),
        ("POST", "/sandbox/groups", api.create_group),
        ("POST", "/sandbox/groups/{chat_id}/messages", api.group_send),
        ("POST", "/sandbox/groups/{chat_id}/migrate", api.group_migrate),
        ("GET", "/sandbox/faults", api.get_faults),
        ("POST", "/sandbox/faults", api.set_faults),
        ("GET", "/sandbox/counters", api.get_counters),
        ("POST", "/sandbox/counters/reset", api.reset_counters),
        ("GET", "/sandbox/files/{file_id}", api.get_file),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, api.wrap(handler))
    app.router.add_route("OPTIONS", "/sandbox{tail:.*}", api.preflight)


class _ControlApi:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox

    # --- plumbing ---------------------------------------------------------------------------

    def _cors(self, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        origins = self.sb.cors_origins
        origin = request.headers.get("Origin")
        if "*" in origins:
            response.headers["Access-Control-Allow-Origin"] = "*"
        elif origin and origin in origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        return response

    async def preflight(self, request: web.Request) -> web.StreamResponse:
        return self._cors(request, web.Response(status=204))

    def wrap(
        self, handler: ControlHandler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            status = 200
            try:
                result = await handler(request)
                if isinstance(result, web.StreamResponse):
                    return self._cors(request, result)
            except _HttpError as exc:
                status, result = exc.status, {"error": str(exc)}
            except LookupError as exc:
                status, result = 404, {"error": str(exc).strip("'\"")}
            except (ValueError, TypeError, RuntimeError) as exc:
                status, result = 400, {"error": str(exc)}
            response = web.Response(
                status=status, body=orjson.dumps(result), content_type="application/json"
            )
            return self._cors(request, response)

        return wrapped

    @staticmethod
    async def _body(request: web.Request) -> JSON:
        if not request.body_exists:
            return {}
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _HttpError(400, "body must be JSON") from None
        if not isinstance(data, dict):
            raise _HttpError(400, "body must be a JSON object")
        return data

    def _token(self, request: web.Request, body: JSON | None = None) -> str | None:
        """The bot named by ``token``, or by ``bot`` (its numeric id, as in getMe), so that
        a page can pick a bot the sandbox hosts without being handed its token."""
        token = (body or {}).get("token") or request.query.get("token")
        if token:
            return str(token)
        bot_id = (body or {}).get("bot") or request.query.get("bot")
        if not bot_id:
            return None
        wanted = self._int_arg(bot_id, "bot")
        for bot in self.sb.bots.values():
            if bot.id == wanted:
                return bot.token
        raise _HttpError(404, f"no bot {wanted} here yet (it appears once it calls the API)")

    @staticmethod
    def _int_arg(value: Any, name: str) -> int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise _HttpError(400, f"{name} must be an integer") from None

    def _user(self, request: web.Request, body: JSON | None = None) -> SimUser:
        user_id = self._int_arg(request.match_info["user_id"], "user_id")
        token = self._token(request, body)
        bot = self.sb.bot(token)
        user: SimUser | None = self.sb._sim_users.get((bot.token, user_id))
        if user is None:
            raise _HttpError(404, f"user {user_id} not found; POST /sandbox/users first")
        return user

    def _group(self, request: web.Request, body: JSON | None = None) -> SimGroup:
        chat_id = self._int_arg(request.match_info["chat_id"], "chat_id")
        bot = self.sb.bot(self._token(request, body))
        group: SimGroup | None = self.sb._sim_groups.get((bot.token, chat_id))
        if group is None:
            raise _HttpError(404, f"group {chat_id} not found; POST /sandbox/groups first")
        return group

    def _user_json(self, user: SimUser) -> JSON:
        return {
            "user": user.raw,
            "chat": user.chat.raw,
            "blocked": user.chat.blocked,
            "bot": user.bot.get_me(),
            "token": user.bot.token,
        }

    def _entry(self, message: SandboxMessage, token: str) -> JSON:
        entry: JSON = {
            "message": message.raw,
            "from_bot": message.from_bot,
            "deleted": message.deleted,
            "version": message.version,
        }
        if message.parse_mode:
            entry["parse_mode"] = message.parse_mode
        if message.document is not None:
            bot_id = token.split(":", 1)[0]
            entry["file_url"] = f"/sandbox/files/{message.document.file_id}?bot={bot_id}"
        return entry

    # --- endpoints ----------------------------------------------------------------------------

    async def info(self, request: web.Request) -> JSON:
        sb = self.sb
        return {
            "default_token": sb.default_token,
            "base_url": sb.base_url,
            "auto_create_private_chats": sb.auto_create_private_chats,
            "bots": [
                {"token": bot.token, "id": bot.id, "username": bot.username,
                 "webhook": bot.webhook.url if bot.webhook else None,
                 "pending_updates": len(bot.updates), "chats": len(bot.chats)}
                for bot in sb.bots.values()
            ],
        }

    async def create_user(self, request: web.Request) -> JSON:
        body = await self._body(request)
        if "user_id" not in body:
            raise _HttpError(400, "user_id is required")
        user: SimUser = self.sb.user(
            self._int_arg(body["user_id"], "user_id"),
            body.get("first_name"),
            last_name=body.get("last_name"),
            username=body.get("username"),
            language_code=body.get("language_code"),
            bot_token=self._token(request, body),
        )
        return self._user_json(user)

    async def get_user(self, request: web.Request) -> JSON:
        return self._user_json(self._user(request))

    async def user_send(self, request: web.Request) -> JSON:
        body = await self._body(request)
        user = self._user(request, body)
        text = body.get("text")
        if not isinstance(text, str) or not text:
            raise _HttpError(400, "text is required")
        reply_to = body.get("reply_to_message_id")
        message = await user.send(text, reply_to=int(reply_to) if reply_to else None)
        return {"message": message.raw}

    async def user_send_document(self, request: web.Request) -> JSON:
        body = await self._body(request)
        user = self._user(request, body)
        try:
            data = base64.b64decode(body.get("data_base64", ""), validate=True)
        except ValueError:
            raise _HttpError(400, "data_base64 is not valid base64") from None
        message = await user.send_document(
            str(body.get("file_name") or "file"),
            data,
            str(body.get("mime_type") or "application/octet-stream"),
            body.get("caption"),
        )
        return {"message": message.raw}

    async def user_press(self, request: web.Request) -> JSON:
        body = await self._body(request)
        user = self._user(request, body)
        message_id = body.get("message_id")
        if body.get("data") is not None:
            if message_id is None:
                raise _HttpError(400, "message_id is required with data")
            query_id = await user.press(int(message_id), str(body["data"]))
        elif body.get("text") is not None:
            query_id = await user.press_button(
                str(body["text"]), int(message_id) if message_id is not None else None
            )
        else:
            raise _HttpError(400, "give data (with message_id) or the button text")
        return {"callback_query_id": query_id}

    async def callback_answer(self, request: web.Request) -> JSON:
        user = self._user(request)
        query_id = request.match_info["query_id"]
        wait = min(float(request.query.get("wait", 0) or 0), MAX_WAIT)
        answer = user.callback_answer(query_id)
        if answer is None and wait > 0:
            try:
                answer = await user.wait_callback_answer(query_id, wait)
            except TimeoutError:
                answer = None
        return {"answered": answer is not None, "answer": answer}

    async def user_poll_answer(self, request: web.Request) -> JSON:
        body = await self._body(request)
        user = self._user(request, body)
        option_ids = body.get("option_ids")
        if not isinstance(option_ids, list):
            raise _HttpError(400, "option_ids must be a list")
        await user.answer_poll(str(body.get("poll_id")), [int(i) for i in option_ids])
        return {"ok": True}

    async def user_block(self, request: web.Request) -> JSON:
        user = self._user(request, await self._body(request))
        await user.block()
        return self._user_json(user)

    async def user_unblock(self, request: web.Request) -> JSON:
        user = self._user(request, await self._body(request))
        await user.unblock()
        return self._user_json(user)

    async def chat_messages(self, request: web.Request) -> JSON:
        """Messages changed after version ``after`` (new, edited or deleted), long-polled.

        Pass the returned ``cursor`` as the next ``after``. ``wait`` (seconds) holds the
        request until something changes. ``all=1`` includes the user's own messages.
        """
        chat_id = self._int_arg(request.match_info["chat_id"], "chat_id")
        token = self._token(request)
        bot = self.sb.bot(token)
        chat: ChatState | None = bot.chats.get(chat_id)
        if chat is None:
            raise _HttpError(404, f"chat {chat_id} not found")
        after = self._int_arg(request.query.get("after", 0) or 0, "after")
        wait = min(float(request.query.get("wait", 0) or 0), MAX_WAIT)
        include_user = request.query.get("all", "") in ("1", "true", "yes")
        deadline = time.monotonic() + wait
        while True:
            changed = [
                m for m in chat.log if m.version > after and (include_user or m.from_bot)
            ]
            remaining = deadline - time.monotonic()
            if changed or remaining <= 0 or self.sb._closing:
                break
            await chat.notifier.wait(remaining)
        return {
            "messages": [self._entry(m, bot.token) for m in changed],
            "cursor": chat.version,
            "blocked": chat.blocked,
            "reply_keyboard": chat.reply_keyboard,
        }

    async def create_group(self, request: web.Request) -> JSON:
        body = await self._body(request)
        if "chat_id" not in body:
            raise _HttpError(400, "chat_id is required")
        group: SimGroup = self.sb.group(
            self._int_arg(body["chat_id"], "chat_id"),
            body.get("title"),
            type=body.get("type"),
            username=body.get("username"),
            bot_token=self._token(request, body),
        )
        return {"chat": group.raw}

    async def group_send(self, request: web.Request) -> JSON:
        body = await self._body(request)
        group = self._group(request, body)
        if "user_id" not in body:
            raise _HttpError(400, "user_id is required")
        user: SimUser = self.sb.user(
            self._int_arg(body["user_id"], "user_id"),
            body.get("first_name"),
            bot_token=self._token(request, body),
        )
        text = body.get("text")
        if not isinstance(text, str) or not text:
            raise _HttpError(400, "text is required")
        message = await group.send(user, text)
        return {"message": message.raw}

    async def group_migrate(self, request: web.Request) -> JSON:
        body = await self._body(request)
        group = self._group(request, body)
        to_chat_id = body.get("to_chat_id")
        new_group = await group.migrate(int(to_chat_id) if to_chat_id is not None else None)
        return {"chat": new_group.raw}

    async def get_faults(self, request: web.Request) -> JSON:
        return self.sb.faults.to_dict()

    async def set_faults(self, request: web.Request) -> JSON:
        """Merge the posted options into the faults; ``{"reset": true}`` clears first."""
        body = await self._body(request)
        faults = self.sb.faults
        if body.pop("reset", False):
            faults.reset()
            for bot in self.sb.bots.values():
                bot.limiter.reset()
        faults.update(body)
        return faults.to_dict()

    async def get_counters(self, request: web.Request) -> JSON:
        bot = self.sb.bot(self._token(request))
        include_chats = request.query.get("chats", "") in ("1", "true", "yes")
        out = bot.counters.to_dict(include_chats=include_chats)
        chat_id = request.query.get("chat_id")
        if chat_id:
            out["chat"] = {
                "chat_id": int(chat_id),
                "delivered": bot.counters.delivered.get(int(chat_id), 0),
                "duplicates": bot.counters.duplicate_chats.get(int(chat_id), 0),
            }
        out["pending_updates"] = len(bot.updates)
        return out

    async def reset_counters(self, request: web.Request) -> JSON:
        bot = self.sb.bot(self._token(request, await self._body(request)))
        bot.counters.reset()
        return bot.counters.to_dict()

    async def get_file(self, request: web.Request) -> web.StreamResponse:
        bot = self.sb.bot(self._token(request))
        stored = bot.files.get(request.match_info["file_id"])
        if stored is None:
            raise _HttpError(404, "file not found")
        headers = {}
        if stored.file_name:
            headers["Content-Disposition"] = f'inline; filename="{stored.file_name}"'
        return web.Response(
            body=stored.data,
            content_type=stored.mime_type or "application/octet-stream",
            headers=headers,
        )
