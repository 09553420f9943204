"""What a person came for before signing up, resumed once they have.

A deep link such as ``t.me/<bot>?start=sign_<slug>`` or ``/sign <slug>`` from someone
who has not signed up yet is kept as ``pending_intent`` ("sign:<slug>") on the
supporter row created at consent, and resumed when sign-up finishes: the intent is
never lost. Features register a resumer for their intent kind in `resumers()`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.clock import Clock
from campaigns.replies import Reply
from storage.models import Supporter

Resumer = Callable[[AsyncSession, Supporter, str, Clock], Awaitable[list[Reply]]]

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class StartPayload:
    """A parsed deep-link payload: ``ref_<code>``, ``sign_<slug>`` / ``event_<slug>``, or both
    joined by ``__``."""

    source_ref: str | None = None
    intent: str | None = None


def parse_start_payload(payload: str | None) -> StartPayload:
    """Parse what follows /start; anything malformed is ignored rather than refused."""
    if not payload or not _TOKEN.match(payload):
        return StartPayload()
    ref: str | None = None
    intent: str | None = None
    for part in payload.split("__"):
        kind, _, arg = part.partition("_")
        if not arg:
            continue
        if kind == "ref":
            ref = arg[:64]
        elif kind in resumers():
            intent = f"{kind}:{arg}"
    return StartPayload(source_ref=ref, intent=intent)


def encode_payload(p: StartPayload) -> str:
    """Back to a deep-link payload, to carry it through the consent button."""
    parts = []
    if p.intent:
        kind, _, arg = p.intent.partition(":")
        parts.append(f"{kind}_{arg}")
    if p.source_ref:
        parts.append(f"ref_{p.source_ref}")
    return "__".join(parts)


def resumers() -> dict[str, Resumer]:
    """Intent kind → the feature's function that carries it out. Add yours here."""
    # Imported here: petitions imports signup, which imports this module.
    from campaigns import events, ideas, petitions, surveys

    return {"sign": petitions.resume_sign, "survey": surveys.resume_survey,
            "idea": ideas.resume_idea, "event": events.resume_rsvp}


async def resume(session: AsyncSession, supporter: Supporter, clock: Clock) -> list[Reply]:
    """Carry out and clear the supporter's pending intent, if any."""
    intent = supporter.pending_intent
    if not intent:
        return []
    supporter.pending_intent = None
    kind, _, arg = intent.partition(":")
    handler = resumers().get(kind)
    if handler is None:
        return []
    return await handler(session, supporter, arg, clock)
