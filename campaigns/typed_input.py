"""Where a typed message goes: the sign-up dialog first, then a waiting survey question,
then an idea being written, else sign-up's help.

Each feature keeps its own stored state (sign-up in `supporter.pending_input`, surveys
in `survey_progress`, ideas in `idea_draft`), so a command in the middle of one dialog
never clobbers another; this module only decides who reads the text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import ideas, signup, surveys
from campaigns.clock import Clock
from campaigns.people import ONBOARDING_STEPS, Person
from campaigns.replies import Reply
from storage import supporters
from storage.models import Supporter

Taker = Callable[[AsyncSession, Supporter, str, Clock], Awaitable[list[Reply] | None]]

# The sign-up steps and /name: what signup.text_message reads itself.
SIGNUP_INPUTS = ONBOARDING_STEPS | {"rename"}


def takers() -> list[Taker]:
    """Features that may be waiting for typed text, asked in order. Add yours here."""
    return [surveys.typed, ideas.typed]


async def text_message(session: AsyncSession, person: Person, text: str,
                       clock: Clock) -> list[Reply]:
    """Free text in a private chat."""
    if signup.is_stop_word(text):
        return await signup.text_message(session, person, text, clock)
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    if known is not None and known.supporter.status == "active" and \
            known.supporter.pending_input not in SIGNUP_INPUTS:
        for take in takers():
            replies = await take(session, known.supporter, text, clock)
            if replies is not None:
                return replies
    return await signup.text_message(session, person, text, clock)
