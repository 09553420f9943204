"""Cleaning what people type before it is stored or shown."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME = 64
_SPACES = re.compile(r"\s+")


def strip_invisible(value: str) -> str:
    """Drop control and format characters (zero-width, bidi overrides), keep emoji and text.

    Zero-width joiners inside emoji sequences are kept: removing them would split a
    family emoji into its members.
    """
    out = []
    for i, ch in enumerate(value):
        category = unicodedata.category(ch)
        if ch == "\u200d" and 0 < i < len(value) - 1:
            out.append(ch)
        elif category in ("Cc", "Cf", "Co", "Cs") and ch not in "\n\t":
            continue
        else:
            out.append(ch)
    return "".join(out)


def clean_name(value: str | None) -> str | None:
    """A display name: visible characters, single spaces, at most 64 characters; None if empty."""
    if value is None:
        return None
    cleaned = _SPACES.sub(" ", strip_invisible(value)).strip()
    if not cleaned:
        return None
    return cleaned[:MAX_NAME].strip()


def normalise_keyword(value: str) -> str:
    """Lower-case, NFC, invisible characters removed: for matching words like 'stop' / '중지'."""
    return unicodedata.normalize("NFC", strip_invisible(value)).strip().lower()


# Spreadsheets run a cell starting with one of these as a formula (CSV injection; the
# OWASP set). Every CSV we write quotes such cells with a leading apostrophe, and the
# supporter import removes it again, so an export imports back unchanged.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def quote_formula(value: str) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + value if value.startswith(FORMULA_START) else value


def unquote_formula(value: str) -> str:
    """Undo `quote_formula` on a cell read back from one of our exports."""
    if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_START:
        return value[1:]
    return value
