"""Broadcasts and their outbox: one row per (broadcast, supporter, channel).

The outbox is the hot path. Its indexes are chosen for the three queries that run
per batch: the claim (pending rows of one bot that are due), the lease reclaim
(in-flight rows whose lease ran out) and progress counts per broadcast. The first
two are partial indexes, so rows that are done cost nothing there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, BigIntPK, UTCDateTime

BROADCAST_STATUSES = ("draft", "scheduled", "sending", "paused", "done", "cancelled")
OUTBOX_STATUSES = ("pending", "inflight", "sent", "blocked", "failed", "skipped")


class Broadcast(Base):
    """One message to an audience, at a time or spread over a window."""

    __tablename__ = "broadcast"
    __table_args__ = (Index("ix_broadcast_due", "status", "send_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot.id"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaign.id", ondelete="SET NULL"))
    # {"ko": "...", "en": "..."}: templates with {name} / {region}, HTML parse mode.
    texts: Mapped[dict[str, str]] = mapped_column(JSON)
    # [[{"text": {"ko": .., "en": ..}, "url": ..} | {"text": .., "data": ..}]]
    buttons: Mapped[list[Any] | None] = mapped_column(JSON)
    # {"question": {"ko", "en"}, "options": [{"ko", "en"}, ...]}: sent as a native poll.
    poll: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The parsed audience filter (see campaigns.audience), plus the text it came from.
    audience: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When set, messages are spread evenly from send_at to window_end.
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    audience_size: Mapped[int | None] = mapped_column(Integer)
    # The bots its outbox rows go out through (each person through one bot), set when it
    # is materialised; None before, or for a broadcast sent through `bot_id` alone.
    via_bot_ids: Mapped[list[int] | None] = mapped_column(JSON)
    # A scheduler claims a due broadcast before materialising it; the claim expires
    # so that a scheduler that dies mid-way is replaced by another.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64))  # "cli", "organiser:3"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OutboxMessage(Base):
    """One message to one supporter on one channel; its status is the delivery's truth."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        # Supporter first: it doubles as the index erasure and export look rows up by.
        UniqueConstraint("supporter_id", "broadcast_id", "channel"),
        # The claim: pending rows of a bot in due order.
        Index(
            "ix_outbox_due",
            "bot_id",
            "not_before",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # The reclaim: in-flight rows whose lease has run out.
        Index(
            "ix_outbox_lease",
            "lease_until",
            postgresql_where=text("status = 'inflight'"),
            sqlite_where=text("status = 'inflight'"),
        ),
        # Progress counts per broadcast (index-only on PostgreSQL).
        Index("ix_outbox_progress", "broadcast_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # No foreign keys here, on purpose: materialising a million rows would run four
    # million foreign-key checks (two thirds of the time on PostgreSQL). The rows come
    # from a join that guarantees the references; broadcasts and supporters are never
    # deleted (erasure anonymises, see storage.outbox.erase_supporter), and a claim
    # skips a row whose supporter or identity is gone.
    broadcast_id: Mapped[int] = mapped_column(BigInteger)
    bot_id: Mapped[int] = mapped_column(BigInteger)
    supporter_id: Mapped[int] = mapped_column(BigInteger)
    identity_id: Mapped[int | None] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the first try that did not settle the row was made (a 5xx, a timeout): the
    # worker retries transient errors until its retry window has passed since then.
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(200))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
