"""Who writes to a bot, and where they are in sign-up: shared by every feature that answers people.

Kept apart from campaigns/signup.py so petitions, polls and the channel adapters need not
import the sign-up rules just to name a person.
"""

from __future__ import annotations

from dataclasses import dataclass

from campaigns.text import clean_name

# `Supporter.pending_input` holds the onboarding step: "region" → "district" (where the
# province has 시/군/구) → "name_confirm" (keep the channel's name?) or "name" (type one) →
# None (done). "rename" is /name after sign-up and REDISTRICT the district after /region;
# neither is onboarding.
ONBOARDING_STEPS = frozenset({"region", "district", "name_confirm", "name"})
# /region after sign-up asks the district of the new province again: typed text is sign-up's.
REDISTRICT = "redistrict"


@dataclass(frozen=True)
class Person:
    """Who wrote to the bot, as the channel describes them. Not stored before consent."""

    bot_id: int
    channel: str
    user_id: str
    chat_id: int | None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None

    @property
    def full_name(self) -> str | None:
        return clean_name(" ".join(p for p in (self.first_name, self.last_name) if p))
