"""Translations from gettext catalogs (Korean and English).

Source strings (msgids) are English. Each feature keeps its own catalog file
(``campaigns/locale/<lang>/LC_MESSAGES/<feature>.po``) so features can grow
independently; all files of a language are merged at load time. Catalogs are
read with Babel straight from the ``.po`` files, so there is no compile step.

Messages are rendered for Telegram's HTML parse mode: ``t()`` escapes every
parameter, so a supporter's name such as ``<b>&`` is shown as typed.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

LANGUAGES: tuple[str, ...] = ("ko", "en")
DEFAULT_LANGUAGE = "ko"
LOCALE_DIR = Path(__file__).parent / "locale"


def _(msgid: str) -> str:
    """Mark a string for extraction; it is translated later with ``t``."""
    return msgid


@cache
def catalog(lang: str) -> dict[str, str]:
    """All translations of one language, merged from its catalog files."""
    out: dict[str, str] = {}
    for po in sorted((LOCALE_DIR / lang / "LC_MESSAGES").glob("*.po")):
        with po.open("rb") as fh:
            for message in read_po(fh, locale=lang):
                if message.id and isinstance(message.id, str) and message.string:
                    out[message.id] = str(message.string)
    return out


def normalise_language(code: str | None) -> str:
    """Telegram's language_code to one of ours: English if the user's is English."""
    if code and code.lower().startswith("en"):
        return "en"
    return DEFAULT_LANGUAGE


def gettext(lang: str, msgid: str) -> str:
    if lang not in LANGUAGES:
        lang = DEFAULT_LANGUAGE
    return catalog(lang).get(msgid, msgid)


def t(lang: str, msgid: str, /, **params: Any) -> str:
    """Translate ``msgid`` and fill ``{name}`` placeholders with HTML-escaped values."""
    text = gettext(lang, msgid)
    if not params:
        return text
    return text.format(**{k: html.escape(str(v), quote=False) for k, v in params.items()})


def t_plain(lang: str, msgid: str, /, **params: Any) -> str:
    """Translate for plain-text channels (X, CSV, CLI): parameters are not escaped."""
    text = gettext(lang, msgid)
    return text.format(**params) if params else text
