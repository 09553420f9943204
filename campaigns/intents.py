"""What a person came for before signing up, resumed once they have.

A deep link such as ``t.me/<bot>?start=sign_<slug>`` or ``/sign <slug>`` from someone
who has not signed up yet is kept as ``pending_intent`` ("sign:<slug>") on the
supporter row created at consent, and resumed when sign-up finishes: the intent is
never lost. Features register a resumer for their intent kind in `resumers()`.

A payload holds up to three parts joined by ``__`` (Telegram allows 64 characters of
``[A-Za-z0-9_-]``): the intent (``sign_<slug>``, ``event_<slug>``, ...), a source
(``src_<code>``: the poster or page the person came from, `campaigns.sources`) and an
invite (``ref_<code>``: a supporter's personal link, `campaigns.invites`), in any order:
``sign_clean-air__src_rally1203``. A ``ref_`` that is nobody's invite code is taken as a
source, as such links always were.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.clock import Clock
from campaigns.replies import Reply
from storage.models import Supporter

Resumer = Callable[[AsyncSession, Supporter, str, Clock], Awaitable[list[Reply]]]

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# A source code: short, lower-case, no underscore (``__`` joins the parts of a payload).
SOURCE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
# The source of the deep link whose intent is being carried out (see `resume`), so that
# e.g. a signature made through a poster's link records that poster even for someone
# who signed up long ago through something else.
_LINK_SOURCE: ContextVar[str | None] = ContextVar("nalgae_link_source", default=None)


@dataclass(frozen=True)
class StartPayload:
    """A parsed deep-link payload: an intent, a source and an invite code, each optional."""

    source_ref: str | None = None
    intent: str | None = None
    invite: str | None = None


def parse_start_payload(payload: str | None) -> StartPayload:
    """Parse what follows /start; anything malformed is ignored rather than refused."""
    if not payload or not _TOKEN.match(payload):
        return StartPayload()
    source: str | None = None
    invite: str | None = None
    intent: str | None = None
    for part in payload.split("__"):
        kind, _, arg = part.partition("_")
        if not arg:
            continue
        if kind == "ref":
            invite = arg[:64]
        elif kind == "src":
            source = arg.lower() if SOURCE.match(arg.lower()) else None
        elif kind in resumers():
            intent = f"{kind}:{arg}"
    return StartPayload(source_ref=source, intent=intent, invite=invite)


def encode_payload(p: StartPayload) -> str:
    """Back to a deep-link payload, to carry it through the consent button."""
    parts = []
    if p.intent:
        kind, _, arg = p.intent.partition(":")
        parts.append(f"{kind}_{arg}")
    if p.source_ref:
        parts.append(f"src_{p.source_ref}")
    if p.invite:
        parts.append(f"ref_{p.invite}")
    return "__".join(parts)


def with_source(payload: str, source: str | None) -> str:
    """A deep-link payload with ``__src_<source>`` added when the source is valid and the
    whole still fits Telegram's 64 characters (else the payload as it was)."""
    source = (source or "").strip().lower()
    if not SOURCE.match(source):
        return payload
    combined = f"{payload}__src_{source}"
    return combined if len(combined) <= 64 else payload


def pending(intent: str | None, source: str | None) -> str | None:
    """What `pending_intent` keeps: the intent and the source of the link that carried it
    (``sign:clean-air__src_rally1203``), so that a person who opens a poster's link while
    still signing up is attributed to that poster when the intent is carried out, as a
    signed-up person would be. Both come from one payload of at most 64 characters, so
    this fits the column as the payload does."""
    if not intent:
        return None
    return f"{intent}__src_{source}" if source and SOURCE.match(source) else intent


def link_source() -> str | None:
    """The source of the deep link whose intent is being carried out now, if any."""
    return _LINK_SOURCE.get()


def resumers() -> dict[str, Resumer]:
    """Intent kind → the feature's function that carries it out. Add yours here."""
    # Imported here: petitions imports signup, which imports this module.
    from campaigns import events, ideas, petitions, surveys

    return {"sign": petitions.resume_sign, "survey": surveys.resume_survey,
            "idea": ideas.resume_idea, "event": events.resume_rsvp}


async def resume(session: AsyncSession, supporter: Supporter, clock: Clock, *,
                 source: str | None = None) -> list[Reply]:
    """Carry out and clear the supporter's pending intent, if any; `source` is that of the
    link that brought it (else the one kept with the intent, see `pending`; without
    either the supporter's first source counts)."""
    kept = supporter.pending_intent
    if not kept:
        return []
    supporter.pending_intent = None
    intent, _, kept_source = kept.partition("__src_")
    source = source or kept_source or None
    kind, _, arg = intent.partition(":")
    handler = resumers().get(kind)
    if handler is None:
        return []
    token = _LINK_SOURCE.set(source)
    try:
        return await handler(session, supporter, arg, clock)
    finally:
        _LINK_SOURCE.reset(token)
