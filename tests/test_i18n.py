"""Every user-facing text has a Korean and an English version, with the same placeholders."""

from __future__ import annotations

import re
import string
from pathlib import Path

from babel.messages.extract import extract_from_dir

from campaigns.i18n import catalog

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "t": (2,), "t_plain": (2,)}
# Symbolic msgids (snake_case keys of long texts) have no English source text;
# their English lives in en's catalog.
SYMBOLIC = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")


def used_msgids() -> dict[str, str]:
    found: dict[str, str] = {}
    for folder in ("campaigns", "bots", "web"):
        for filename, lineno, message, _comments, _context in extract_from_dir(
            ROOT / folder, method_map=[("**.py", "python")], keywords=KEYWORDS,
        ):
            if isinstance(message, str) and message:
                found.setdefault(message, f"{folder}/{filename}:{lineno}")
    return found


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_used_text_is_translated_into_korean() -> None:
    ko = catalog("ko")
    missing = {m: where for m, where in used_msgids().items() if m not in ko}
    assert missing == {}


def test_symbolic_texts_have_english() -> None:
    en = catalog("en")
    missing = [m for m in used_msgids() if SYMBOLIC.match(m) and m not in en]
    assert missing == []


def test_placeholders_agree_between_languages() -> None:
    ko, en = catalog("ko"), catalog("en")
    wrong = []
    for msgid, korean in ko.items():
        english = en.get(msgid, msgid)
        expected = fields(msgid) if not SYMBOLIC.match(msgid) else fields(english)
        if fields(korean) != expected or fields(english) != expected:
            wrong.append(msgid)
    assert wrong == []
