"""The Telegram webhook route, mounted on the web app: check the secret, store, acknowledge."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import APIRouter, Request, Response

from bots.telegram.runtime import TelegramRuntime

MAX_UPDATE_BYTES = 1_000_000


def webhook_router(
    runtimes: Callable[[], Sequence[TelegramRuntime]], path: str = "/telegram/webhook"
) -> APIRouter:
    """One path serves every bot: the secret header tells which bot an update is for."""
    router = APIRouter()

    @router.post(path, include_in_schema=False)
    async def telegram_webhook(request: Request) -> Response:
        header = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        runtime = next((r for r in runtimes() if r.webhook_mode and r.secret_ok(header)), None)
        if runtime is None:
            # Nothing is read or written for a request without the right secret.
            return Response(status_code=403)
        body = await request.body()
        if len(body) > MAX_UPDATE_BYTES:
            return Response(status_code=413)
        if not await runtime.accept(body):
            return Response(status_code=400)
        return Response(status_code=200)

    return router
