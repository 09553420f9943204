"""Request bodies and the text type every string input goes through."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# Ids are BIGINT in PostgreSQL; anything larger cannot name a row.
MAX_ID = 2**62


def _clean(value: str) -> str:
    # PostgreSQL refuses NUL in text, and a lone surrogate cannot be encoded at all:
    # refused here as a 422 instead of failing in the driver.
    if "\x00" in value:
        raise ValueError("text may not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode") from None
    return value


Text = Annotated[str, AfterValidator(_clean)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CampaignIn(Body):
    slug: Annotated[Text, Field(max_length=64, examples=["clean-air"])]
    title_ko: Annotated[Text, Field(max_length=200)]
    title_en: Annotated[Text | None, Field(max_length=200)] = None
    description_ko: Annotated[Text | None, Field(max_length=10_000)] = None
    description_en: Annotated[Text | None, Field(max_length=10_000)] = None
    status: Literal["draft", "active", "closed"] = "active"
    starts_at: datetime | None = None
    ends_at: datetime | None = None


class PetitionIn(Body):
    campaign: Annotated[Text, Field(max_length=64, description="The campaign's slug.")]
    slug: Annotated[Text, Field(max_length=40)]
    title_ko: Annotated[Text, Field(max_length=200)]
    title_en: Annotated[Text | None, Field(max_length=200)] = None
    body_ko: Annotated[Text | None, Field(max_length=20_000)] = None
    body_en: Annotated[Text | None, Field(max_length=20_000)] = None
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    milestones: Annotated[list[Annotated[int, Field(ge=1, le=10**12)]],
                          Field(max_length=50)] = []
    open: bool = Field(False, description="Open it for signatures at once.")


class SignatureIn(Body):
    person_id: Id
    source_ref: Annotated[Text | None, Field(max_length=64)] = None


class OptionIn(Body):
    ko: Annotated[Text, Field(max_length=100)]
    en: Annotated[Text | None, Field(max_length=100)] = None


class PollIn(Body):
    campaign: Annotated[Text, Field(max_length=64, description="The campaign's slug.")]
    slug: Annotated[Text, Field(max_length=40)]
    question_ko: Annotated[Text, Field(max_length=300)]
    question_en: Annotated[Text | None, Field(max_length=300)] = None
    kind: Literal["yes_no_abstain", "single", "multiple", "scale"]
    options: Annotated[list[OptionIn], Field(max_length=10)] = []
    weights: dict[Literal["member", "supporter"],
                  Annotated[Text, Field(max_length=30)]] | None = None
    eligible_tier: Literal["member", "supporter"] | None = None
    eligible_region: Annotated[Text | None, Field(max_length=16)] = None
    secret: bool = False
    allow_change: bool = True
    native: bool = False
    closes_at: datetime | None = None
    status: Literal["draft", "open"] = "open"


class ButtonIn(Body):
    text: Text | dict[Literal["ko", "en"], Annotated[Text, Field(max_length=64)]]
    url: Annotated[Text | None, Field(max_length=2000)] = None
    data: Annotated[Text | None, Field(max_length=64)] = None


Minutes = Annotated[float, Field(gt=0, le=60 * 24 * 30, allow_inf_nan=False)]


class BroadcastIn(Body):
    texts: dict[Literal["ko", "en"], Annotated[Text, Field(max_length=4096)]]
    audience: Annotated[Text, Field(max_length=2000, description=(
        "Filters, e.g. `region=서울|부산,tier=member,tags=volunteer` or "
        "`district=seoul:mapo`; empty = everyone."))] = ""
    buttons: Annotated[list[Annotated[list[ButtonIn], Field(max_length=8)]],
                       Field(max_length=10)] = []
    poll: Annotated[Text | None,
                    Field(max_length=40, description="Send this poll natively.")] = None
    campaign: Annotated[Text | None, Field(max_length=64)] = None
    send_at: datetime | None = Field(None, description="When to send; now if absent.")
    window_minutes: Minutes | None = None
    draft: bool = Field(False, description="Store it without scheduling it.")


class ScheduleIn(Body):
    send_at: datetime | None = None
    window_minutes: Minutes | None = None


class EventIn(Body):
    campaign: Annotated[Text, Field(max_length=64, description="The campaign's slug.")]
    slug: Annotated[Text, Field(max_length=40)]
    title_ko: Annotated[Text, Field(max_length=200)]
    title_en: Annotated[Text | None, Field(max_length=200)] = None
    body_ko: Annotated[Text | None, Field(max_length=20_000)] = None
    body_en: Annotated[Text | None, Field(max_length=20_000)] = None
    starts_at: datetime = Field(description="Without a zone: Korean time.")
    ends_at: datetime
    place: Annotated[Text, Field(max_length=200)]
    address: Annotated[Text | None, Field(max_length=300)] = None
    lat: Annotated[float | None, Field(ge=-90, le=90, allow_inf_nan=False)] = None
    lon: Annotated[float | None, Field(ge=-180, le=180, allow_inf_nan=False)] = None
    capacity: Annotated[int | None, Field(ge=1, le=10**7)] = None
    waitlist: bool = True
    rsvp_closes_at: datetime | None = None
    region: Annotated[Text | None, Field(max_length=16)] = None
    members_only: bool = False
    reminders: Annotated[list[Annotated[int, Field(ge=1, le=7 * 24 * 60)]],
                         Field(max_length=10,
                               description="Minutes before the start.")] = [1440, 120]
    open: bool = Field(False, description="Open it for RSVPs at once.")


class AttendanceIn(Body):
    person_id: Id
    status: Literal["going", "maybe", "not_going"] = "going"
