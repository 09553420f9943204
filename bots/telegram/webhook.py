"""The Telegram webhook: check the secret, store, acknowledge.

`webhook_asgi` serves it in front of the web app's middleware stack (sessions,
metrics, security headers), which is written for people and browsers and would
cost a webhook request more than storing the update does. `webhook_router`
serves the same handler as a FastAPI route, for apps that want it there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from fastapi import APIRouter, Request, Response

from bots.telegram.runtime import TelegramRuntime

MAX_UPDATE_BYTES = 1_000_000
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

Runtimes = Callable[[], Sequence[TelegramRuntime]]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def handle_update(runtimes: Runtimes, secret: str | None, body: bytes | None,
                        path: str | None = None) -> int:
    """The HTTP status for one webhook call.

    Each bot has its own path (a runtime without a `route` answers on any) and its own
    secret; the secret alone would do, but a configured NALGAE_TELEGRAM_WEBHOOK_SECRET is
    shared by every bot, so the path says which bot and the secret proves it is Telegram.
    """
    runtime = next((r for r in runtimes()
                    if r.webhook_mode and (path is None or not r.route or r.route == path)
                    and r.secret_ok(secret)), None)
    if runtime is None:
        # Nothing is read or written for a request without the right secret.
        return 403
    if body is None:
        return 413
    return 200 if await runtime.accept(body) else 400


def webhook_router(runtimes: Runtimes, path: str = "/telegram/webhook") -> APIRouter:
    router = APIRouter()

    @router.post(path, include_in_schema=False)
    @router.post(path.rstrip("/") + "/{bot_name}", include_in_schema=False)
    async def telegram_webhook(request: Request) -> Response:
        body = await request.body()
        status = await handle_update(runtimes, request.headers.get(SECRET_HEADER),
                                     body if len(body) <= MAX_UPDATE_BYTES else None,
                                     request.url.path)
        return Response(status_code=status)

    return router


def webhook_asgi(app: ASGIApp, runtimes: Runtimes, path: str = "/telegram/webhook") -> ASGIApp:
    """`app`, with POST `path` (and `path/<bot name>`) answered directly by the webhook."""
    header = SECRET_HEADER.lower().encode()
    prefix = path.rstrip("/") + "/"

    def ours(p: str) -> bool:
        return p == path or (p.startswith(prefix) and "/" not in p[len(prefix):])

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not ours(scope["path"]):
            await app(scope, receive, send)
            return
        secret = next((v.decode("latin-1") for k, v in scope["headers"] if k == header), None)
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= MAX_UPDATE_BYTES:
                chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks) if size <= MAX_UPDATE_BYTES else None
        status = await handle_update(runtimes, secret, body, scope["path"])
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    return asgi
