"""The sandbox chat page (/sandbox): talk to the bot as a simulated supporter.

It exists only when the sandbox Bot API runs (no real token is configured)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from campaigns.i18n import _, t_plain
from web.pages import language, render

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


@router.get("/sandbox", response_class=HTMLResponse, include_in_schema=False)
async def sandbox_page(request: Request) -> Response:
    lang = language(request)
    url = request.app.state.sandbox_url
    if not url:
        return render(request, lang, "no_sandbox.html", {}, status_code=404)
    return render(request, lang, "sandbox.html", {
        "config": {
            "sandboxUrl": url,
            "token": request.app.state.sandbox_token,
            "lang": lang,
            "texts": {key: t_plain(lang, msgid) for key, msgid in SANDBOX_TEXTS.items()},
        },
    })
