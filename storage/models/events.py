"""Events: RSVPs with capacity and an ordered waitlist, check-in, per-person notices.

Integrity lives in three places. `event_rsvp` has one row per (event, supporter), so a
second RSVP is a change, never a second seat. Every RSVP change first bumps
`event.rsvp_seq` (an UPDATE, so it takes the event row's lock on PostgreSQL and the
write lock on SQLite): seats are counted and given under that lock, and the number
it returns is the arrival order the waitlist is sorted by. And every message an RSVP
causes (a promotion, a reminder, a change) is an `event_notice` row written in the
same transaction, unique per (event, supporter, key), so it exists exactly once and
is claimed before it is sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, BigIntPK, UTCDateTime

EVENT_STATUSES = ("draft", "open", "cancelled")
RSVP_STATUSES = ("going", "maybe", "not_going", "waitlisted")


class Event(Base):
    """A screening, rally or meeting: draft → open (→ cancelled); past once it ends."""

    __tablename__ = "event"
    __table_args__ = (Index("ix_event_status_starts", "status", "starts_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    # Travels in `ev:g:<slug>` callback data and `start=event_<slug>` deep links.
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    title_ko: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str | None] = mapped_column(String(200))
    body_ko: Mapped[str | None] = mapped_column(Text)
    body_en: Mapped[str | None] = mapped_column(Text)
    place: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rsvp_closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    capacity: Mapped[int | None] = mapped_column(Integer)  # None: no limit
    waitlist: Mapped[bool] = mapped_column(Boolean, default=True)
    region: Mapped[str | None] = mapped_column(String(16))  # None: nationwide
    members_only: Mapped[bool] = mapped_column(Boolean, default=False)
    # Minutes before the start, e.g. [1440, 120] (the day before, two hours before).
    reminders: Mapped[list[int]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    # Bumped by every organiser change people are told about, so that each change is
    # one notice per person (its key) and a moved event is reminded again.
    version: Mapped[int] = mapped_column(Integer, default=1)
    # The arrival counter: taken (under the row's lock) by every RSVP change.
    rsvp_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EventRsvp(Base):
    """One person's answer to one event; unlinked (supporter NULL) after erasure.

    `seq` is the arrival number of the latest change: the waitlist is ordered by it.
    The check-in code is kept only as a SHA-256 hash; asking for the pass again makes
    a new code and voids the old one.
    """

    __tablename__ = "event_rsvp"
    __table_args__ = (
        UniqueConstraint("event_id", "supporter_id"),
        Index("ix_event_rsvp_event_status_seq", "event_id", "status", "seq"),
        Index("ix_event_rsvp_supporter", "supporter_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"))
    supporter_id: Mapped[int | None] = mapped_column(
        ForeignKey("supporter.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(BigInteger)
    # Copied at RSVP time for counts by region that survive erasure.
    region: Mapped[str | None] = mapped_column(String(16))
    # Where the RSVP came from (the deep link's `src_`, else the person's first source), for
    # the per-source report (campaigns.sources); like `region`, it survives erasure.
    source_ref: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checked_in_by: Mapped[str | None] = mapped_column(String(64))


class EventNotice(Base):
    """A message to one person about one event (promotion, reminder, change, cancellation).

    Unique per (event, supporter, key): "promoted:<seq>", "reminder:<minutes>:<version>",
    "changed:<version>", "cancelled". Claimed with a lease before sending (FOR UPDATE
    SKIP LOCKED on PostgreSQL), so several senders never send one twice; a sender that
    dies mid-way lets its lease expire and the notice is sent by another.
    """

    __tablename__ = "event_notice"
    __table_args__ = (
        UniqueConstraint("supporter_id", "event_id", "dedup_key"),
        Index("ix_event_notice_pending", "sent_at", "claimed_until", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"))
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporter.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # promoted | reminder | changed | cancelled
    dedup_key: Mapped[str] = mapped_column(String(48))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # sent | unreachable | gone (the person stopped, or the event no longer applies) |
    # failed (the channel kept refusing it, or it timed out and may have gone out)
    outcome: Mapped[str | None] = mapped_column(String(16))
    # Why the last try failed (kept once the notice is given up).
    error: Mapped[str | None] = mapped_column(String(200))


class EventReminder(Base):
    """The ledger of reminders materialised: one row per (event, minutes, version).

    The tick that inserts the row (ON CONFLICT DO NOTHING) is the one that writes the
    reminder's notices, in the same transaction; any other scheduler inserts nothing.
    """

    __tablename__ = "event_reminder"

    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), primary_key=True)
    minutes: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    done_at: Mapped[datetime] = mapped_column(UTCDateTime())
    notices: Mapped[int] = mapped_column(Integer, default=0)
