"""The sandbox chat pages: talk to a bot as a simulated supporter.

They exist only when the sandbox Bot API runs (no real token is configured): /sandbox for
the first bot, /sandbox/NAME for each other bot the sandbox serves (one added with
`nalgae bot add` and no base URL of its own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from campaigns import bots as bot_rules
from campaigns.i18n import _, t_plain
from storage.bots import DEFAULT_BOT_NAME
from web.pages import database, language, render

router = APIRouter(include_in_schema=False)

# Texts the sandbox page's script shows (keys used in web/static/sandbox.js).
SANDBOX_TEXTS: dict[str, str] = {
    "start": _("Start chatting"),
    "name": _("Your name"),
    "userId": _("Telegram user id"),
    "language": _("Telegram language"),
    "send": _("Send"),
    "placeholder": _("Write a message…"),
    "block": _("Block the bot"),
    "unblock": _("Unblock the bot"),
    "blocked": _("You blocked the bot: it cannot write to you."),
    "newUser": _("New person"),
    "unreachable": _("The sandbox does not answer. Is `nalgae run` still running?"),
    "document": _("Document"),
    "poll": _("Poll"),
}


@dataclass(frozen=True)
class SandboxBot:
    """A bot the sandbox serves, as its page names it (never its token)."""

    name: str
    telegram_id: str  # the numeric part of its token, which the sandbox selects it by
    username: str | None

    @property
    def path(self) -> str:
        return "/sandbox" if self.name == DEFAULT_BOT_NAME else f"/sandbox/{self.name}"


async def sandbox_bots(request: Request) -> list[SandboxBot]:
    """The enabled Telegram bots served through the sandbox: those with no base URL of
    their own (the fleet points them at the sandbox) or the sandbox's own."""
    sandbox_base = f"{request.app.state.sandbox_url}/bot"
    async with database(request).session() as s:
        views = await bot_rules.listing(s)
    return [
        SandboxBot(v.name, v.token.split(":", 1)[0], v.username)
        for v in views
        if v.channel == "telegram" and v.enabled and ":" in v.token
        and (not v.base_url or v.base_url.rstrip("/") == sandbox_base)
    ]


def _page(request: Request, lang: str, config: dict[str, Any], current: str,
          bots: list[SandboxBot]) -> Response:
    return render(request, lang, "sandbox.html", {
        "config": {
            "sandboxUrl": request.app.state.sandbox_url,
            "lang": lang,
            "texts": {key: t_plain(lang, msgid) for key, msgid in SANDBOX_TEXTS.items()},
            **config,
        },
        "bots": bots if len(bots) > 1 else [],
        "current": current,
    })


@router.get("/sandbox", response_class=HTMLResponse, include_in_schema=False)
async def sandbox_page(request: Request) -> Response:
    """The first bot's chat (the sandbox's default token)."""
    lang = language(request)
    if not request.app.state.sandbox_url:
        return render(request, lang, "no_sandbox.html", {}, status_code=404)
    return _page(request, lang, {"token": request.app.state.sandbox_token}, DEFAULT_BOT_NAME,
                 await sandbox_bots(request))


@router.get("/sandbox/{name}", response_class=HTMLResponse, include_in_schema=False)
async def sandbox_bot_page(request: Request, name: str) -> Response:
    """One more bot's chat: `nalgae bot add --name NAME --token 123:ABC...` in the sandbox."""
    lang = language(request)
    if not request.app.state.sandbox_url:
        return render(request, lang, "no_sandbox.html", {}, status_code=404)
    bots = await sandbox_bots(request)
    found = next((b for b in bots if b.name == name), None)
    if found is None:
        return render(request, lang, "no_sandbox.html", {"unknown_bot": name},
                      status_code=404)
    return _page(request, lang, {"bot": found.telegram_id, "botName": found.name}, name, bots)
