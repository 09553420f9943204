"""X's text rules: weighted length, threads, links (pure functions, no I/O).

X counts a post's length with weights (https://docs.x.com/fundamentals/counting-characters):
most Latin characters weigh 1, CJK (so every Hangul syllable) and most other
characters 2, an emoji sequence 2, and any URL 23 whatever its length; the limit
is 280. ``twitter-text-parser`` implements exactly that configuration (v3), so
the counting is delegated to it and only the splitting is ours.

A text longer than one post becomes a thread: cut at paragraph, line, sentence,
then word boundaries (a part is at least half full before a weaker boundary is
preferred), a word longer than a post is cut between characters (never inside a
URL or an emoji sequence), and each part is numbered " (1/3)".
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

LIMIT = 280
POLL_OPTION_MAX = 25
POLL_OPTIONS_MIN, POLL_OPTIONS_MAX = 2, 4
POLL_MINUTES_MIN, POLL_MINUTES_MAX = 5, 7 * 24 * 60

_SENTENCE_END = re.compile(r"[.!?。！？…]['\"”’)\]]*$")
_WORD = re.compile(r"(\S+)(\s*)")
_A_TAG = re.compile(r"<a\s[^>]*href=\"([^\"]*)\"[^>]*>(.*?)</a>", re.S | re.I)
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9-]*(?:\s[^<>]*)?>")
# An @handle in running text (not an e-mail address): X handles are 1-15 word chars.
HANDLE = re.compile(r"(?<![\w@.])@([A-Za-z0-9_]{1,15})(?![\w@])")


def weighted_length(text: str) -> int:
    """The length X counts for ``text`` (280 is the limit of one post)."""
    # Imported on first use: twitter-text loads its tables at import (measured: +80 MB
    # and ~0.7 s), and every process imports this module, most never counting a post.
    from twitter_text import parse_tweet

    return int(parse_tweet(text).weightedLength) if text else 0


@lru_cache(maxsize=4096)
def _weight(text: str) -> int:
    return weighted_length(text)


def fits(text: str, limit: int = LIMIT) -> bool:
    return 0 < weighted_length(text) <= limit


def html_to_plain(text: str) -> str:
    """Telegram HTML (what broadcasts store) as plain text: links spelled out, tags dropped."""

    def link(m: re.Match[str]) -> str:
        url, label = html.unescape(m.group(1)), _TAG.sub("", m.group(2))
        label = html.unescape(label).strip()
        return url if not label or label == url else f"{label} ({url})"

    return html.unescape(_TAG.sub("", _A_TAG.sub(link, text)))


def deep_link(bot_username: str, slug: str) -> str:
    """The Telegram deep link that opens the bot and signs petition ``slug``."""
    return f"https://t.me/{bot_username.lstrip('@')}?start=sign_{slug}"


def handles(text: str) -> list[str]:
    """The @handles a text mentions."""
    return HANDLE.findall(text)


# --- threads ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    weight: int
    brk: int  # strength of the boundary after it: 0 inside a word ... 4 paragraph
    sep: str  # the whitespace after it


def _units(word: str) -> list[str]:
    """A word as unbreakable units: URLs whole, a character with its combining marks."""
    from twitter_text import extract_urls_with_indices  # on first use, see weighted_length

    spans = [(u["indices"][0], u["indices"][1]) for u in extract_urls_with_indices(word)]
    units: list[str] = []
    i = 0
    for start, end in [*spans, (len(word), len(word))]:
        while i < start:
            ch = word[i]
            joins = units and (unicodedata.combining(ch) or ch in "\u200d\ufe0f\ufe0e"
                               or (units[-1].endswith("\u200d")))
            if joins:
                units[-1] += ch
            else:
                units.append(ch)
            i += 1
        if start < end:
            units.append(word[start:end])
        i = max(i, end)
    return units


def _chop(word: str, limit: int) -> list[str]:
    """Cut a word heavier than ``limit`` between units."""
    pieces: list[str] = []
    current, weight = "", 0
    for unit in _units(word):
        w = _weight(unit)
        if current and weight + w > limit:
            pieces.append(current)
            current, weight = "", 0
        current += unit
        weight += w
    if current:
        pieces.append(current)
    return pieces


def _tokens(text: str, limit: int) -> list[_Token]:
    out: list[_Token] = []
    for m in _WORD.finditer(text):
        word, sep = m.group(1), m.group(2)
        if "\n\n" in sep:
            brk = 4
        elif "\n" in sep:
            brk = 3
        elif _SENTENCE_END.search(word):
            brk = 2
        else:
            brk = 1
        weight = _weight(word)
        if weight <= limit:
            out.append(_Token(word, weight, brk, sep))
            continue
        pieces = _chop(word, limit)
        for piece in pieces[:-1]:
            out.append(_Token(piece, _weight(piece), 0, ""))
        out.append(_Token(pieces[-1], _weight(pieces[-1]), brk, sep))
    return out


def _sep_weight(sep: str) -> int:
    return sum(_weight(ch) for ch in sep)


def _join(tokens: Sequence[_Token]) -> str:
    return "".join(t.text + t.sep for t in tokens[:-1]) + tokens[-1].text


def _pack(tokens: list[_Token], budget: Callable[[int], int],
          check: Callable[[int, str], bool]) -> list[str]:
    """Greedy parts: as full as allowed, cut at the strongest boundary past half the budget."""
    parts: list[str] = []
    i = 0
    while i < len(tokens):
        limit = budget(len(parts))
        weight, j = 0, i
        cumulative: list[int] = []
        while j < len(tokens):
            add = tokens[j].weight + (_sep_weight(tokens[j - 1].sep) if j > i else 0)
            if j > i and weight + add > limit:
                break
            weight += add
            cumulative.append(weight)
            j += 1
        k = j
        if j < len(tokens):
            candidates = [(tokens[m - 1].brk, m) for m in range(i + 1, j + 1)
                          if cumulative[m - i - 1] * 2 >= limit or m == j]
            k = max(candidates)[1]
        # The token weights add up as X counts, but check the real text (a URL's
        # recognition can depend on its neighbours) and give back tokens if needed.
        while True:
            body = _join(tokens[i:k])
            if check(len(parts), body) or k == i + 1:
                break
            k -= 1
        parts.append(body)
        i = k
    return parts


def split_thread(text: str, *, first_suffix: str = "", limit: int = LIMIT) -> list[str]:
    """``text`` as one post, or as a numbered thread of posts of at most ``limit`` each.

    ``first_suffix`` (e.g. a link line) is kept whole at the end of the first post.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    whole = text + first_suffix
    suffix_weight = weighted_length(first_suffix) if first_suffix else 0
    # Counting a long text is slow (the URL and emoji scans run over all of it): add
    # up the words' weights first, and count exactly only when it may fit.
    estimate = sum(t.weight + _sep_weight(t.sep) for t in _tokens(text, limit)) + suffix_weight
    if estimate <= limit + 46 and weighted_length(whole) <= limit:
        return [whole]
    digits = len(str(max(1, -(-estimate // (limit - 10)))))
    while True:
        widest = f" ({'9' * digits}/{'9' * digits})"
        reserve = weighted_length(widest)
        tokens = _tokens(text, limit - reserve - suffix_weight)
        if not tokens:
            return [first_suffix.strip()]

        def budget(index: int, reserve: int = reserve) -> int:
            return limit - reserve - (suffix_weight if index == 0 else 0)

        def check(index: int, body: str, widest: str = widest) -> bool:
            tail = widest + (first_suffix if index == 0 else "")
            return weighted_length(body + tail) <= limit

        bodies = _pack(tokens, budget, check)
        if len(bodies) < 10 ** digits:
            n = len(bodies)
            return [f"{body} ({i}/{n})" + (first_suffix if i == 1 else "")
                    for i, body in enumerate(bodies, start=1)]
        digits += 1


# --- polls ------------------------------------------------------------------------------------

def poll_minutes(seconds_left: float | None, *, default: int = 24 * 60) -> int | None:
    """A native poll's duration from the campaign poll's time left (clamped to X's 7 days).

    None if it closes in less than X's minimum of 5 minutes: too late for an X poll.
    """
    if seconds_left is None:
        return default
    minutes = int(seconds_left // 60)
    if minutes < POLL_MINUTES_MIN:
        return None
    return min(minutes, POLL_MINUTES_MAX)


def poll_problem(question: str, options: Sequence[str]) -> str | None:
    """Why these cannot be a native X poll (English, for logs and errors), or None."""
    if not POLL_OPTIONS_MIN <= len(options) <= POLL_OPTIONS_MAX:
        return f"an X poll has {POLL_OPTIONS_MIN} to {POLL_OPTIONS_MAX} options"
    for option in options:
        if not option.strip() or len(option) > POLL_OPTION_MAX:
            return f"an X poll option has 1 to {POLL_OPTION_MAX} characters: {option!r}"
    if not fits(question):
        return "an X poll's question must fit in one post (280)"
    return None
