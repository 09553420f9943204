"""Text formatting as the Bot API server does it: parse_mode parsing and automatic entities.

Telegram measures entity offsets and lengths in UTF-16 code units, and reports parse errors
with UTF-8 *byte* offsets into the original markup. Both conventions are reproduced here so
that a bot which gets entities right against the sandbox also gets them right against the
real server (and a bot that sends broken markup sees the same "can't parse entities" error).

The HTML rules follow TDLib's ``parse_html`` (nested tags, ``</>`` closes the innermost tag,
only ``&lt; &gt; &amp; &quot;`` and numeric character references are decoded, everything else
is kept literally). MarkdownV2 and legacy Markdown are implemented more loosely, but the
frequent mistakes (an unescaped reserved character, an unclosed entity) are reported with the
real wording.
"""

from __future__ import annotations

import re
from typing import Any

Entity = dict[str, Any]

__all__ = [
    "EntityParseError",
    "auto_entities",
    "parse_text",
    "trim_text",
    "utf16_len",
]


class EntityParseError(ValueError):
    """Raised with the description that follows "Bad Request: can't parse entities: "."""


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (what Telegram offsets count)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(markup: str, index: int) -> int:
    return len(markup[:index].encode("utf-8"))


# TDLib sorts entities by offset, then longer first, then by a fixed type priority; the Bot
# API returns them in that order, so bots comparing entity lists see the same sequence.
_PRIORITY: dict[str, int] = {
    "blockquote": 0,
    "expandable_blockquote": 0,
    "pre": 11,
    "code": 20,
    "text_link": 49,
    "text_mention": 49,
    "mention": 50,
    "hashtag": 50,
    "cashtag": 50,
    "bot_command": 50,
    "url": 50,
    "email": 50,
    "phone_number": 50,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "custom_emoji": 99,
}


def _sort_entities(entities: list[Entity]) -> list[Entity]:
    entities.sort(key=lambda e: (e["offset"], -e["length"], _PRIORITY.get(e["type"], 50)))
    return entities


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_HTML_TAGS: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}

_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _decode_html_entity(s: str, pos: int) -> tuple[str, int] | None:
    """Decode the character reference at ``s[pos] == '&'``; None keeps the '&' literally."""
    n = len(s)
    end = pos + 1
    if end < n and s[end] == "#":
        end += 1
        code = 0
        if end < n and s[end] == "x":
            end += 1
            start = end
            while end < n and s[end] in "0123456789abcdefABCDEF":
                end += 1
            digits = s[start:end]
            code = int(digits, 16) if digits else 0
        else:
            start = end
            while end < n and s[end].isdigit() and s[end].isascii():
                end += 1
            digits = s[start:end]
            code = int(digits) if digits else 0
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return None
        if 0xD800 <= code <= 0xDFFF:
            raise EntityParseError(
                "Text contains invalid Unicode characters after decoding HTML entities, "
                "check for unmatched surrogate code units"
            )
        char = chr(code)
    else:
        start = end
        while end < n and s[end].isascii() and s[end].isalpha():
            end += 1
        char_or_none = _NAMED_ENTITIES.get(s[start:end])
        if char_or_none is None:
            return None
        char = char_or_none
    if end < n and s[end] == ";":
        end += 1
    return char, end


def _normalize_url(url: str) -> str | None:
    """Roughly TDLib's check_url: add a scheme and a root path to bare hosts."""
    url = url.strip()
    if not url or any(c.isspace() for c in url):
        return None
    lowered = url.lower()
    if lowered.startswith(("tg:", "ton:", "mailto:")):
        return url
    if "://" not in url:
        url = "http://" + url
    scheme, _, rest = url.partition("://")
    if not rest or rest.startswith("/"):
        return None
    host_end = len(rest)
    for sep in "/?#":
        idx = rest.find(sep)
        if idx != -1:
            host_end = min(host_end, idx)
    host = rest[:host_end]
    if not host:
        return None
    tail = rest[host_end:]
    if not tail.startswith("/"):
        tail = "/" + tail
    return f"{scheme.lower()}://{host}{tail}"


class _OpenTag:
    __slots__ = ("attrs", "py_start", "start", "tag")

    def __init__(self, tag: str, start: int, py_start: int, attrs: dict[str, str]) -> None:
        self.tag = tag
        self.start = start  # UTF-16 offset in the output
        self.py_start = py_start  # index in the output string, to read an <a>'s own text
        self.attrs = attrs


def _parse_attributes(s: str, i: int, tag: str, begin: int) -> tuple[dict[str, str], int]:
    """Parse attributes after the tag name; return them and the index of the closing '>'."""
    n = len(s)
    attrs: dict[str, str] = {}
    while True:
        while i < n and s[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(s, begin)}")
        if s[i] == ">":
            return attrs, i
        name_start = i
        while i < n and not s[i].isspace() and s[i] not in "=>":
            i += 1
        name = s[name_start:i].lower()
        if not name:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset {_byte_offset(s, begin)}'
            )
        while i < n and s[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(
                f'Unclosed start tag "{tag}" at byte offset {_byte_offset(s, begin)}'
            )
        if s[i] != "=":
            attrs[name] = ""
            continue
        i += 1
        while i < n and s[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(
                f'Unclosed start tag "{tag}" at byte offset {_byte_offset(s, begin)}'
            )
        if s[i] in "'\"":
            quote = s[i]
            i += 1
            value: list[str] = []
            while i < n and s[i] != quote:
                if s[i] == "&":
                    decoded = _decode_html_entity(s, i)
                    if decoded is not None:
                        value.append(decoded[0])
                        i = decoded[1]
                        continue
                value.append(s[i])
                i += 1
            if i >= n:
                raise EntityParseError(
                    f"Unclosed start tag at byte offset {_byte_offset(s, begin)}"
                )
            i += 1
            attrs[name] = "".join(value)
        else:
            token_start = i
            while i < n and (s[i].isalnum() or s[i] in ".-"):
                i += 1
            if i < n and not s[i].isspace() and s[i] != ">":
                raise EntityParseError(
                    f"Unexpected end of name token at byte offset {_byte_offset(s, token_start)}"
                )
            attrs[name] = s[token_start:i].lower()


def _html_entity(tag: _OpenTag, text: str, offset: int, length: int) -> Entity | None:
    kind = _HTML_TAGS[tag.tag]
    entity: Entity = {"type": kind, "offset": offset, "length": length}
    if kind == "text_link":
        href = tag.attrs.get("href")
        url = _normalize_url(href if href is not None else text)
        if url is None:
            return None
        entity["url"] = url
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = tag.attrs.get("emoji-id", "")
    elif kind == "blockquote" and "expandable" in tag.attrs:
        entity["type"] = "expandable_blockquote"
    return entity


def parse_html(markup: str) -> tuple[str, list[Entity]]:
    out: list[str] = []
    offset = 0  # UTF-16 offset of the end of ``out``
    stack: list[_OpenTag] = []
    # (entity, code language) collected; language is kept aside until <pre> decides on it.
    entities: list[Entity] = []
    languages: dict[int, str] = {}  # id(entity) -> language of a <code class="language-x">
    i = 0
    n = len(markup)
    while i < n:
        j = i
        while j < n and markup[j] != "<" and markup[j] != "&":
            j += 1
        if j > i:
            chunk = markup[i:j]
            out.append(chunk)
            offset += utf16_len(chunk)
        if j >= n:
            break
        if markup[j] == "&":
            decoded = _decode_html_entity(markup, j)
            if decoded is None:
                out.append("&")
                offset += 1
                i = j + 1
            else:
                out.append(decoded[0])
                offset += utf16_len(decoded[0])
                i = decoded[1]
            continue
        begin = j
        k = j + 1
        if k < n and markup[k] == "/":
            if not stack:
                raise EntityParseError(
                    f"Unexpected end tag at byte offset {_byte_offset(markup, begin)}"
                )
            k += 1
            name_start = k
            while k < n and not markup[k].isspace() and markup[k] != ">":
                k += 1
            end_name = markup[name_start:k].lower()
            while k < n and markup[k].isspace():
                k += 1
            if k >= n or markup[k] != ">":
                raise EntityParseError(
                    f"Unclosed end tag at byte offset {_byte_offset(markup, begin)}"
                )
            top = stack.pop()
            if end_name and end_name != top.tag:
                raise EntityParseError(
                    f"Unmatched end tag at byte offset {_byte_offset(markup, begin)}, "
                    f'expected "</{top.tag}>", found "</{end_name}>"'
                )
            length = offset - top.start
            if length > 0:
                # The text itself is only needed as the URL of an <a> without href.
                inner = "".join(out)[top.py_start :] if top.tag == "a" else ""
                entity = _html_entity(top, inner, top.start, length)
                if entity is not None:
                    _close_pre_code(entity, top, entities, languages)
            i = k + 1
            continue
        while k < n and not markup[k].isspace() and markup[k] != ">":
            k += 1
        if k >= n:
            raise EntityParseError(
                f"Unclosed start tag at byte offset {_byte_offset(markup, begin)}"
            )
        tag = markup[j + 1 : k].lower()
        if tag not in _HTML_TAGS:
            raise EntityParseError(
                f'Unsupported start tag "{tag}" at byte offset {_byte_offset(markup, begin)}'
            )
        attrs, k = _parse_attributes(markup, k, tag, begin)
        if tag == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset '
                f"{_byte_offset(markup, begin)}"
            )
        if tag == "tg-emoji" and not attrs.get("emoji-id"):
            raise EntityParseError(
                f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset '
                f"{_byte_offset(markup, begin)}"
            )
        stack.append(_OpenTag(tag, offset, sum(map(len, out)), attrs))
        i = k + 1
    if stack:
        raise EntityParseError(
            f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"'
        )
    return "".join(out), _sort_entities(entities)


def _close_pre_code(
    entity: Entity, tag: _OpenTag, entities: list[Entity], languages: dict[int, str]
) -> None:
    """Merge <pre><code class="language-x"> into one pre entity with a language, like TDLib."""
    if entity["type"] == "code":
        cls = tag.attrs.get("class", "")
        if cls.startswith("language-") and len(cls) > len("language-"):
            languages[id(entity)] = cls[len("language-") :]
            # <code class="language-x"><pre>...</pre></code>: the pre inside takes the language.
            for other in entities:
                if (
                    other["type"] == "pre"
                    and other["offset"] == entity["offset"]
                    and other["length"] == entity["length"]
                ):
                    other["language"] = languages.pop(id(entity))
                    return
    elif entity["type"] == "pre":
        for idx, other in enumerate(entities):
            if (
                other["type"] == "code"
                and other["offset"] == entity["offset"]
                and other["length"] == entity["length"]
                and id(other) in languages
            ):
                entity["language"] = languages.pop(id(other))
                del entities[idx]
                break
    entities.append(entity)


# --------------------------------------------------------------------------------------------
# MarkdownV2
# --------------------------------------------------------------------------------------------

_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def parse_markdown_v2(markup: str) -> tuple[str, list[Entity]]:
    out: list[str] = []
    offset = 0
    entities: list[Entity] = []
    # Each open entity: [type, utf16 start, char index of the markup, extra]
    stack: list[list[Any]] = []
    quote_start: int | None = None  # utf16 offset where the current ">" blockquote began
    i = 0
    n = len(markup)

    def emit(chunk: str) -> None:
        nonlocal offset
        out.append(chunk)
        offset += utf16_len(chunk)

    while i < n:
        c = markup[i]
        in_code = bool(stack) and stack[-1][0] in ("code", "pre")
        if c == "\\" and i + 1 < n and 0 < ord(markup[i + 1]) < 127:
            emit(markup[i + 1])
            i += 2
            continue
        if in_code:
            top = stack[-1]
            if c == "`":
                if top[0] == "pre":
                    if markup.startswith("```", i):
                        _close_md(top, offset, entities)
                        stack.pop()
                        i += 3
                        continue
                elif top[0] == "code":
                    _close_md(top, offset, entities)
                    stack.pop()
                    i += 1
                    continue
            emit(c)
            i += 1
            continue
        at_line_start = i == 0 or markup[i - 1] == "\n"
        if c == "\n" and quote_start is not None and not markup.startswith(">", i + 1):
            if offset > quote_start:
                entities.append(
                    {"type": "blockquote", "offset": quote_start, "length": offset - quote_start}
                )
            quote_start = None
        if c not in _MDV2_RESERVED:
            emit(c)
            i += 1
            continue
        if c == ">" and at_line_start:
            if quote_start is None:
                quote_start = offset
            i += 1
            continue
        # Closing the innermost entity?
        if stack:
            top = stack[-1]
            kind = top[0]
            if kind == "bold" and c == "*":
                _close_md(top, offset, entities)
                stack.pop()
                i += 1
                continue
            if kind == "underline" and markup.startswith("__", i):
                _close_md(top, offset, entities)
                stack.pop()
                i += 2
                continue
            if kind == "italic" and c == "_":
                _close_md(top, offset, entities)
                stack.pop()
                i += 1
                continue
            if kind == "strikethrough" and c == "~":
                _close_md(top, offset, entities)
                stack.pop()
                i += 1
                continue
            if kind == "spoiler" and markup.startswith("||", i):
                _close_md(top, offset, entities)
                stack.pop()
                i += 2
                continue
            if kind in ("text_link", "custom_emoji") and c == "]":
                i += 1
                url = ""
                if i < n and markup[i] == "(":
                    url_start = i
                    i += 1
                    chars: list[str] = []
                    while i < n and markup[i] != ")":
                        if markup[i] == "\\" and i + 1 < n:
                            chars.append(markup[i + 1])
                            i += 2
                            continue
                        chars.append(markup[i])
                        i += 1
                    if i >= n:
                        raise EntityParseError(
                            "Can't find end of a URL at byte offset "
                            f"{_byte_offset(markup, url_start)}"
                        )
                    i += 1
                    url = "".join(chars)
                stack.pop()
                length = offset - top[1]
                if kind == "custom_emoji":
                    if not url.startswith("tg://emoji?id="):
                        raise EntityParseError(
                            "The entity must contain a tg://emoji or tg://time URL"
                            if not url
                            else "Invalid tg://emoji or tg://time URL specified"
                        )
                    if length > 0:
                        entities.append(
                            {
                                "type": "custom_emoji",
                                "offset": top[1],
                                "length": length,
                                "custom_emoji_id": url[len("tg://emoji?id=") :],
                            }
                        )
                    continue
                text = "".join(out)[top[3] :]
                normalized = _normalize_url(url or text)
                if length > 0 and normalized is not None:
                    entities.append(
                        {"type": "text_link", "offset": top[1], "length": length, "url": normalized}
                    )
                continue
        # Opening a new entity.
        start_pos = i
        if c == "*":
            stack.append(["bold", offset, start_pos, None])
            i += 1
        elif c == "_":
            if markup.startswith("__", i):
                stack.append(["underline", offset, start_pos, None])
                i += 2
            else:
                stack.append(["italic", offset, start_pos, None])
                i += 1
        elif c == "~":
            stack.append(["strikethrough", offset, start_pos, None])
            i += 1
        elif c == "|" and markup.startswith("||", i):
            stack.append(["spoiler", offset, start_pos, None])
            i += 2
        elif c == "[":
            # extra = index in the output, to use the link's own text when no URL follows
            stack.append(["text_link", offset, start_pos, sum(map(len, out))])
            i += 1
        elif c == "!" and markup.startswith("![", i):
            stack.append(["custom_emoji", offset, start_pos, None])
            i += 2
        elif c == "`":
            if markup.startswith("```", i):
                i += 3
                lang_end = i
                while lang_end < n and markup[lang_end] not in "\n`" and not markup[
                    lang_end
                ].isspace():
                    lang_end += 1
                language = ""
                if lang_end < n and markup[lang_end] == "\n":
                    language = markup[i:lang_end]
                    i = lang_end + 1
                stack.append(["pre", offset, start_pos, language])
            else:
                stack.append(["code", offset, start_pos, None])
                i += 1
        else:
            raise EntityParseError(
                f"Character '{c}' is reserved and must be escaped with the preceding '\\'"
            )
    if stack:
        top = stack[-1]
        name = _MDV2_NAMES[top[0]]
        if top[0] == "pre" and top[3]:
            name = "PreCode"
        raise EntityParseError(
            f"Can't find end of {name} entity at byte offset {_byte_offset(markup, top[2])}"
        )
    if quote_start is not None and offset > quote_start:
        entities.append(
            {"type": "blockquote", "offset": quote_start, "length": offset - quote_start}
        )
    return "".join(out), _sort_entities(entities)


def _close_md(top: list[Any], offset: int, entities: list[Entity]) -> None:
    length = offset - top[1]
    if length <= 0:
        return
    entity: Entity = {"type": top[0], "offset": top[1], "length": length}
    if top[0] == "pre" and top[3]:
        entity["language"] = top[3]
    entities.append(entity)


# --------------------------------------------------------------------------------------------
# Legacy Markdown
# --------------------------------------------------------------------------------------------


def parse_markdown(markup: str) -> tuple[str, list[Entity]]:
    """Legacy "Markdown": *bold*, _italic_, `code`, ```pre```, [text](url); no nesting."""
    out: list[str] = []
    offset = 0
    entities: list[Entity] = []
    i = 0
    n = len(markup)
    while i < n:
        c = markup[i]
        if c == "\\" and i + 1 < n and markup[i + 1] in "_*`[":
            out.append(markup[i + 1])
            offset += 1
            i += 2
            continue
        if c not in "_*`[":
            out.append(c)
            offset += utf16_len(c)
            i += 1
            continue
        begin = i
        if c == "[":
            close = markup.find("]", i + 1)
            if close == -1:
                raise EntityParseError(
                    "Can't find end of the entity starting at byte offset "
                    f"{_byte_offset(markup, begin)}"
                )
            label = markup[i + 1 : close]
            url = ""
            i = close + 1
            if i < n and markup[i] == "(":
                end = markup.find(")", i + 1)
                if end == -1:
                    raise EntityParseError(
                        "Can't find end of the entity starting at byte offset "
                        f"{_byte_offset(markup, begin)}"
                    )
                url = markup[i + 1 : end]
                i = end + 1
            length = utf16_len(label)
            normalized = _normalize_url(url or label)
            if length and normalized is not None:
                entities.append(
                    {"type": "text_link", "offset": offset, "length": length, "url": normalized}
                )
            out.append(label)
            offset += length
            continue
        if c == "`" and markup.startswith("```", i):
            end = markup.find("```", i + 3)
            if end == -1:
                raise EntityParseError(
                    "Can't find end of the entity starting at byte offset "
                    f"{_byte_offset(markup, begin)}"
                )
            body = markup[i + 3 : end]
            language = ""
            first_newline = body.find("\n")
            if first_newline > 0 and " " not in body[:first_newline]:
                language = body[:first_newline]
                body = body[first_newline + 1 :]
            length = utf16_len(body)
            if length:
                entity: Entity = {"type": "pre", "offset": offset, "length": length}
                if language:
                    entity["language"] = language
                entities.append(entity)
            out.append(body)
            offset += length
            i = end + 3
            continue
        end = markup.find(c, i + 1)
        if end == -1:
            raise EntityParseError(
                "Can't find end of the entity starting at byte offset "
                f"{_byte_offset(markup, begin)}"
            )
        body = markup[i + 1 : end]
        length = utf16_len(body)
        if length:
            kind = {"*": "bold", "_": "italic", "`": "code"}[c]
            entities.append({"type": kind, "offset": offset, "length": length})
        out.append(body)
        offset += length
        i = end + 1
    return "".join(out), _sort_entities(entities)


# --------------------------------------------------------------------------------------------
# Automatic entities and common entry points
# --------------------------------------------------------------------------------------------

_TLDS = (
    "com|org|net|io|me|kr|dev|app|info|co|ru|de|uk|jp|gov|edu|ly|gg|xyz|site|online|tech|"
    "ai|fr|it|es|nl|eu|us|ca|au|in|br|cn|tw|hk|ch|se|no|fi|pl|ua|by|kz|tv|cc|to|be|at|ink"
)
_AUTO_RE = re.compile(
    r"(?P<email>(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w@]))"
    r"|(?P<url>(?:(?:https?|ftp|tg|tonsite)://|\bwww\.)[^\s<>\"]+"
    rf"|(?<![\w@/.-])(?:[A-Za-z0-9-]+\.)+(?:{_TLDS})\b(?:/[^\s<>\"]*)?)"
    r"|(?P<bot_command>(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>@]))"
    r"|(?P<mention>(?<![\w@])@[A-Za-z0-9_]{4,32}(?![\w@]))"
    r"|(?P<hashtag>(?<![\w#])#\w*[^\W\d_]\w*)"
    r"|(?P<cashtag>(?<![\w$])\$[A-Z]{3,8}(?![\w$]))"
)
_TRAILING_URL_PUNCT = ".,:;!?)]}'\""
_AUTO_TRIGGERS = frozenset("/@#.:$")
# Entities that hide automatic ones: Telegram does not detect links inside code or a link.
_OPAQUE = frozenset({"code", "pre", "text_link", "text_mention", "custom_emoji"})


def auto_entities(text: str, explicit: list[Entity] | None = None) -> list[Entity]:
    """Entities Telegram detects by itself (commands, mentions, hashtags, URLs, e-mails)."""
    if not _AUTO_TRIGGERS.intersection(text):
        return []
    found: list[Entity] = []
    ascii_only = text.isascii()
    for match in _AUTO_RE.finditer(text):
        kind = match.lastgroup
        assert kind is not None
        start, end = match.span()
        if kind == "url":
            while end > start and text[end - 1] in _TRAILING_URL_PUNCT:
                if text[end - 1] == ")" and text.count("(", start, end) >= text.count(
                    ")", start, end
                ):
                    break
                end -= 1
            if end <= start:
                continue
        if ascii_only:
            offset, length = start, end - start
        else:
            offset, length = utf16_len(text[:start]), utf16_len(text[start:end])
        found.append({"type": kind, "offset": offset, "length": length})
    if explicit and found:
        opaque = [
            (e["offset"], e["offset"] + e["length"]) for e in explicit if e["type"] in _OPAQUE
        ]
        if opaque:
            found = [
                e
                for e in found
                if all(e["offset"] + e["length"] <= a or e["offset"] >= b for a, b in opaque)
            ]
    return found


_TRIM = " \t\n\r\u00a0\u2028\u2029\u200b"


def trim_text(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """Strip surrounding whitespace as the server does and shift entities accordingly."""
    stripped = text.strip(_TRIM)
    if len(stripped) == len(text):
        return text, entities
    if not stripped:
        return "", []
    lead = utf16_len(text[: len(text) - len(text.lstrip(_TRIM))])
    total = utf16_len(stripped)
    fixed: list[Entity] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            fixed.append({**entity, "offset": start, "length": end - start})
    return stripped, fixed


def parse_text(
    text: str, parse_mode: str | None, entities: list[Entity] | None = None
) -> tuple[str, list[Entity]]:
    """Apply ``parse_mode`` (or explicit ``entities``), trim, and add automatic entities.

    Raises EntityParseError for malformed markup and ValueError("unsupported parse_mode").
    """
    mode = (parse_mode or "").lower()
    if mode == "html":
        plain, parsed = parse_html(text)
    elif mode == "markdownv2":
        plain, parsed = parse_markdown_v2(text)
    elif mode == "markdown":
        plain, parsed = parse_markdown(text)
    elif mode == "":
        plain, parsed = text, [dict(e) for e in entities] if entities else []
    else:
        raise ValueError(f"unsupported parse_mode {parse_mode!r}")
    plain, parsed = trim_text(plain, parsed)
    detected = auto_entities(plain, parsed)
    if detected:
        parsed = _sort_entities(parsed + detected)
    return plain, parsed
