"""Petitions, signatures and their counters; polls, answers and secret ballots.

Counting: a signature row and a +1 row in `petition_count_delta` are written in the
same transaction; a flusher drains the deltas into `petition.signature_count` and
`petition_region_count` in one statement per batch. No signature ever locks the
petition row, and no delta can be lost between a signature and its count.

Secret ballots: `poll_voter` says *who* voted (it blocks a second vote), the ballot
tables say *what* was voted, with no supporter id, no timestamp and a random key.
Both SQLite ballot tables are WITHOUT ROWID, so not even the storage order follows
the order of voting; ballots are moved from `poll_ballot_pending` into `poll_ballot`
in shuffled batches (see campaigns/polls.py), which on PostgreSQL also breaks the
link between a ballot's inserting transaction and the voter's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, BigIntPK, UTCDateTime

# Counter rows for signatures with no region use this key (a primary key cannot be NULL).
NO_REGION = ""


class Petition(Base):
    """A petition: draft → open → closed, with a batched signature counter and milestones."""

    __tablename__ = "petition"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    # Lower-case letters, digits and hyphens: it travels in `sign:<slug>` callback data
    # and in `start=sign_<slug>` deep links (64 characters at most, no "__").
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    title_ko: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str | None] = mapped_column(String(200))
    body_ko: Mapped[str | None] = mapped_column(Text)
    body_en: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | open | closed
    opens_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    milestones: Mapped[list[int]] = mapped_column(JSON, default=list)
    # Valid signatures, kept by the flusher (count = count + delta), never per signature.
    signature_count: Mapped[int] = mapped_column(BigInteger, default=0)
    last_milestone: Mapped[int | None] = mapped_column(BigInteger)
    last_milestone_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Signature(Base):
    """One signature per (petition, supporter); unlinked (supporter_id NULL) after erasure."""

    __tablename__ = "signature"
    __table_args__ = (
        UniqueConstraint("petition_id", "supporter_id"),
        # The dashboard's list, newest first with the id as tie-break: with the id in the
        # index the page is read in order, not sorted (signatures arriving in one
        # batch share a timestamp, and every one of them was joined and sorted).
        Index("ix_signature_petition_created", "petition_id", "created_at", "id"),
        # "Signed N petitions" on the home card, and erasure, look signatures up by person.
        Index("ix_signature_supporter", "supporter_id"),
        # The few invalidated signatures, counted by the dashboard's signature list (the
        # valid ones it takes from the counters instead of counting a million rows).
        Index("ix_signature_invalid", "petition_id",
              postgresql_where=text("NOT valid"), sqlite_where=text("NOT valid")),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    petition_id: Mapped[int] = mapped_column(ForeignKey("petition.id"))
    supporter_id: Mapped[int | None] = mapped_column(
        ForeignKey("supporter.id", ondelete="SET NULL")
    )
    # Copied at signing time so counts by region and tier never change afterwards.
    region: Mapped[str | None] = mapped_column(String(16))
    tier: Mapped[str] = mapped_column(String(16), default="supporter")
    # The deep-link reference or chapter that brought the signature (trending alerts).
    source_ref: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    valid: Mapped[bool] = mapped_column(Boolean, default=True)
    invalidated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    invalidation_reason: Mapped[str | None] = mapped_column(String(200))


class PetitionCountDelta(Base):
    """A pending change to a petition's counters, written with the signature it counts."""

    __tablename__ = "petition_count_delta"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    petition_id: Mapped[int] = mapped_column(BigInteger)
    region: Mapped[str] = mapped_column(String(16), default=NO_REGION)
    delta: Mapped[int] = mapped_column(Integer)


class PetitionRegionCount(Base):
    """Valid signatures per region, kept by the same flusher as the petition total."""

    __tablename__ = "petition_region_count"

    petition_id: Mapped[int] = mapped_column(ForeignKey("petition.id"), primary_key=True)
    region: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class PetitionCard(Base):
    """A posted petition card whose count is edited live (at most every few seconds)."""

    __tablename__ = "petition_card"
    __table_args__ = (
        UniqueConstraint("bot_id", "chat_id", "message_id"),
        Index("ix_petition_card_petition", "petition_id"),
        Index("ix_petition_card_supporter", "supporter_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    petition_id: Mapped[int] = mapped_column(ForeignKey("petition.id"))
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot.id"))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    language: Mapped[str] = mapped_column(String(8), default="ko")
    # Set for a card in a supporter's private chat (erased with them); NULL for a
    # group or channel post.
    supporter_id: Mapped[int | None] = mapped_column(
        ForeignKey("supporter.id", ondelete="CASCADE")
    )
    shown_count: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    edited_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PetitionSourceAlert(Base):
    """When organisers were last told that one source brought an unusual burst."""

    __tablename__ = "petition_source_alert"

    petition_id: Mapped[int] = mapped_column(ForeignKey("petition.id"), primary_key=True)
    source_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    alerted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recent_count: Mapped[int] = mapped_column(Integer)


class OrganiserNotice(Base):
    """Something to tell organisers (a milestone, a trending source, a closing).

    Written in the transaction that noticed it, so it is created exactly once; a bot
    process claims it (`claimed_at`) before sending, so it is sent at most once.
    """

    __tablename__ = "organiser_notice"
    __table_args__ = (Index("ix_organiser_notice_claimed", "claimed_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # milestone | trending | closed
    petition_id: Mapped[int | None] = mapped_column(ForeignKey("petition.id"))
    # An English msgid of the petitions catalog and its parameters: rendered per language.
    msgid: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Poll(Base):
    """A quick poll or a member-wide ballot, with exact per-tier weights."""

    __tablename__ = "poll"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    question_ko: Mapped[str] = mapped_column(Text)
    question_en: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(24))  # yes_no_abstain | single | multiple | scale
    # [{"ko": "...", "en": "..."}, ...]; an option's index is its identity.
    options: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    # {"member": "1", "supporter": "1/2"}: exact decimal or fraction strings, never floats.
    weights: Mapped[dict[str, str]] = mapped_column(JSON)
    eligible_tier: Mapped[str | None] = mapped_column(String(16))  # None = everyone
    eligible_region: Mapped[str | None] = mapped_column(String(16))  # None = every region
    secret: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_change: Mapped[bool] = mapped_column(Boolean, default=True)
    native: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="open")  # draft | open | closed
    closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PollVoter(Base):
    """Who has voted, for every poll (also what "answered / not answered" audiences use)."""

    __tablename__ = "poll_voter"
    # The unique key leads with the poll; /forget looks voters up by person.
    __table_args__ = (UniqueConstraint("poll_id", "supporter_id"),
                      Index("ix_poll_voter_supporter", "supporter_id"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("poll.id"))
    supporter_id: Mapped[int | None] = mapped_column(
        ForeignKey("supporter.id", ondelete="SET NULL")
    )


class PollAnswer(Base):
    """An open (non-secret) answer: changeable until close unless the poll forbids it."""

    __tablename__ = "poll_answer"
    __table_args__ = (UniqueConstraint("poll_id", "supporter_id"),
                      Index("ix_poll_answer_supporter", "supporter_id"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("poll.id"))
    supporter_id: Mapped[int | None] = mapped_column(
        ForeignKey("supporter.id", ondelete="SET NULL")
    )
    # Option indexes, sorted and comma-separated ("0,2"): groups cheaply in SQL.
    choices: Mapped[str] = mapped_column(String(64))
    tier: Mapped[str] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(16))
    weight: Mapped[str] = mapped_column(String(32))  # exact, copied from the poll at voting
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PollBallot(Base):
    """A mixed secret ballot: random key, no supporter, no time, nothing that orders it."""

    __tablename__ = "poll_ballot"
    __table_args__ = ({"sqlite_with_rowid": False},)

    poll_id: Mapped[int] = mapped_column(ForeignKey("poll.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # secrets.token_hex(16)
    choices: Mapped[str] = mapped_column(String(64))
    tier: Mapped[str] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(16))
    weight: Mapped[str] = mapped_column(String(32))


class PollBallotPending(Base):
    """A secret ballot not yet mixed into `poll_ballot`; counted in tallies all the same."""

    __tablename__ = "poll_ballot_pending"
    __table_args__ = ({"sqlite_with_rowid": False},)

    poll_id: Mapped[int] = mapped_column(ForeignKey("poll.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    choices: Mapped[str] = mapped_column(String(64))
    tier: Mapped[str] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(16))
    weight: Mapped[str] = mapped_column(String(32))


class NativePollMap(Base):
    """A native Telegram poll sent to one supporter: maps `poll_answer` back to them."""

    __tablename__ = "native_poll_map"
    __table_args__ = (Index("ix_native_poll_map_poll", "poll_id"),
                      Index("ix_native_poll_map_supporter", "supporter_id"))

    bot_id: Mapped[int] = mapped_column(ForeignKey("bot.id"), primary_key=True)
    telegram_poll_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("poll.id"))
    supporter_id: Mapped[int | None] = mapped_column(
        ForeignKey("supporter.id", ondelete="CASCADE")
    )
    # Where the poll message is, to stop it when the poll closes.
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
