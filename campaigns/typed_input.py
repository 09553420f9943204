"""Where a typed message goes: the sign-up dialog first, then the dialog that asked for
text last (a survey question, an idea's title or text), else sign-up's help.

Each feature keeps its own stored state (sign-up in `supporter.pending_input`, surveys
in `survey_progress`, ideas in `idea_draft`), so a command in the middle of one dialog
never clobbers another; this module only decides who reads the text. An idle survey
left half-done must not swallow the title of an idea started since: the most recently
touched dialog reads first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import ideas, signup, surveys
from campaigns.clock import Clock
from campaigns.people import ONBOARDING_STEPS, REDISTRICT, Person
from campaigns.replies import Reply
from storage import ideas as idea_store
from storage import supporters
from storage import surveys as survey_store
from storage.models import Supporter

Taker = Callable[[AsyncSession, Supporter, str, Clock], Awaitable[list[Reply] | None]]
# When a feature last asked this person for text; None when it is not waiting.
Since = Callable[[AsyncSession, Supporter], Awaitable[datetime | None]]

# The sign-up steps and /name: what signup.text_message reads itself.
SIGNUP_INPUTS = ONBOARDING_STEPS | {"rename", REDISTRICT}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def _survey_since(session: AsyncSession, supporter: Supporter) -> datetime | None:
    progress = await survey_store.active_progress(session, supporter.id)
    return progress.updated_at if progress is not None and progress.state == "answering" \
        else None


async def _idea_since(session: AsyncSession, supporter: Supporter) -> datetime | None:
    draft = await idea_store.draft_of(session, supporter.id)
    return draft.updated_at if draft is not None and draft.step in ("title", "body") \
        else None


def takers() -> list[tuple[Taker, Since]]:
    """Features that may be waiting for typed text, with when each last asked; the most
    recent is asked first (ties: in this order). Add yours here."""
    return [(surveys.typed, _survey_since), (ideas.typed, _idea_since)]


async def text_message(session: AsyncSession, person: Person, text: str,
                       clock: Clock) -> list[Reply]:
    """Free text in a private chat."""
    if signup.is_stop_word(text):
        return await signup.text_message(session, person, text, clock)
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    if known is not None and known.supporter.status == "active" and \
            known.supporter.pending_input not in SIGNUP_INPUTS:
        waiting = [(await since(session, known.supporter), i, take)
                   for i, (take, since) in enumerate(takers())]
        waiting.sort(key=lambda w: (w[0] is not None, w[0] or _EPOCH, -w[1]), reverse=True)
        for _since, _i, take in waiting:
            replies = await take(session, known.supporter, text, clock)
            if replies is not None:
                return replies
    return await signup.text_message(session, person, text, clock)
