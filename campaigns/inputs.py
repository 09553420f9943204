"""One input gate for every door: dashboard forms, the CLI, the API, the bot and the CSV import
all hand organiser and supporter text to these checks (through the rules that store it), so a
limit holds whichever way the text arrives.

Refusals are RuleError (ko and en in errors.po). Titles lose bidi overrides and other
invisible characters (campaigns.text.strip_invisible, as names do); a NUL is refused
everywhere (PostgreSQL cannot store it); lengths are checked against the column and, for
what the bot sends, against Telegram's 4096-character budget when the thing is created,
not later when a supporter triggers the message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from campaigns.errors import RuleError
from campaigns.i18n import _
from campaigns.text import strip_invisible

TELEGRAM_TEXT = 4096  # characters in one Telegram message (after entities are parsed)
TITLE = 200
QUESTION = 300
OPTION = 100
BODY = 20_000  # stored; what is sent is checked against TELEGRAM_TEXT when created
SEARCH = 200
CSV_CELL = 10_000  # no column we import is longer; a 1 MB cell is an error, not a row
MAX_UPDATE_ID = 2**63 - 1  # update_id is a signed 64-bit column

_LINK = re.compile(r"^(https?|tg)://\S+$", re.I)
_HREF = re.compile(r"""<a\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*))""", re.I)


def no_nul(value: str, field: str) -> str:
    """PostgreSQL refuses NUL in text, and a lone surrogate cannot be encoded at all."""
    if "\x00" in value:
        raise RuleError(_("{field} may not contain a NUL character"), field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RuleError(_("{field} is not valid text"), field=field) from None
    return value


def limit(value: str, field: str, most: int) -> str:
    if len(value) > most:
        raise RuleError(_("{field} is {length} characters long; the limit is {limit}"),
                        field=field, length=len(value), limit=most)
    return value


def title(value: str | None, field: str = "title", most: int = TITLE) -> str:
    """A one-line title or question: no NUL, no bidi overrides or invisible characters,
    surrounding spaces trimmed, at most `most` characters ("" if nothing is left)."""
    if value is None:
        return ""
    cleaned = strip_invisible(no_nul(value, field)).replace("\n", " ").replace("\t", " ")
    return limit(cleaned.strip(), field, most)


def optional_title(value: str | None, field: str, most: int = TITLE) -> str | None:
    return title(value, field, most) or None


def body(value: str | None, field: str = "body", most: int = BODY) -> str | None:
    """Free text over several lines: no NUL, no bidi overrides, at most `most` characters."""
    if value is None:
        return None
    cleaned = strip_invisible(no_nul(value, field)).strip()
    return limit(cleaned, field, most) or None


def fits_telegram(text: str, what: str) -> None:
    """What the bot will send must fit in one message: checked at creation."""
    if len(text) > TELEGRAM_TEXT:
        raise RuleError(_("{what} would be {length} characters in Telegram; the limit is "
                          "{limit}: shorten it"), what=what, length=len(text),
                        limit=TELEGRAM_TEXT)


def link(url: str, refuse: type[RuleError] = RuleError) -> str:
    """Buttons and links in texts: http(s) or tg only (no javascript:, data:, file:...).
    `refuse` is the RuleError kind to raise (a broadcast's, say, for its API code)."""
    if not _LINK.match(url.strip()):
        raise refuse(_("“{url}” is not a valid link."), url=url[:200])
    return url


def links_in(html_text: str, refuse: type[RuleError] = RuleError) -> list[str]:
    """Every `<a href>` of an HTML text, checked like a button's link."""
    found = [next(g for g in m.groups() if g is not None) for m in _HREF.finditer(html_text)]
    return [link(u, refuse) for u in found]


def search(value: str | None) -> str | None:
    """A search box: not stored, so cleaned rather than refused (NUL and invisible
    characters dropped, cut to SEARCH characters)."""
    if value is None:
        return None
    cleaned = strip_invisible(value.replace("\x00", "")).strip()[:SEARCH]
    return cleaned or None


def csv_cells(cells: Iterable[str], line: int) -> None:
    """One row of an imported CSV: every cell short and free of NUL."""
    for cell in cells:
        if len(cell) > CSV_CELL:
            raise RuleError(_("line {line}: a cell is {length} characters long; the limit is "
                              "{limit}"), line=line, length=len(cell), limit=CSV_CELL)
        if "\x00" in cell:
            raise RuleError(_("line {line}: a cell contains a NUL character"), line=line)


def update_id(value: object) -> int | None:
    """A Telegram update_id as we can store it (signed 64 bits), or None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_UPDATE_ID else None
