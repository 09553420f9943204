"""What the rules answer, independent of any channel's client library."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Button:
    """An inline button: ``data`` comes back as a callback, ``url`` opens a link."""

    text: str
    data: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Document:
    filename: str
    content: bytes
    caption: str | None = None


@dataclass(frozen=True)
class Venue:
    """A place pin (Telegram's sendVenue)."""

    latitude: float
    longitude: float
    title: str
    address: str


@dataclass
class Reply:
    """One message to send (HTML text), or an edit of the message whose button was pressed."""

    text: str
    buttons: list[list[Button]] = field(default_factory=list)
    document: Document | None = None
    # An image sent with `text` as its caption (e.g. a check-in pass's QR code).
    photo: Document | None = None
    # A pin sent after the text.
    venue: Venue | None = None
    edit: bool = False
    # A short notice shown for the pressed button (Telegram's answerCallbackQuery).
    toast: str | None = None


@dataclass(frozen=True)
class Outgoing:
    """A message the rules want sent to one supporter's chat outside a reply (a reminder,
    an answer to an idea they back), delivered by the channel adapter."""

    bot_id: int
    chat_id: int
    supporter_id: int
    reply: Reply
