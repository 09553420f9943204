"""Ideas that supporters propose and back, moderated, answered at a threshold.

An idea keeps its text after the proposer is erased (`proposer_id` NULL): the
movement's platform should not lose a proposal because its author left. Backs are
one row per (idea, supporter), unlinked on erasure so counts survive.
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
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, BigIntPK, UTCDateTime


class IdeaSettings(Base):
    """Per campaign: the backs at which organisers owe an answer, and a per-person limit."""

    __tablename__ = "idea_settings"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"), primary_key=True)
    threshold: Mapped[int | None] = mapped_column(Integer)
    backs_per_supporter: Mapped[int | None] = mapped_column(Integer)


class Idea(Base):
    """pending → approved | rejected; approved → answered (accepted | studying | declined)."""

    __tablename__ = "idea"
    __table_args__ = (Index("ix_idea_campaign_status", "campaign_id", "status"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    proposer_id: Mapped[int | None] = mapped_column(
        ForeignKey("supporter.id", ondelete="SET NULL")
    )
    title: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8), default="ko")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    moderation_reason: Mapped[str | None] = mapped_column(Text)
    moderated_by: Mapped[str | None] = mapped_column(String(128))
    moderated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    back_count: Mapped[int] = mapped_column(BigInteger, default=0)
    # Set once, by the back that reached the threshold (the alert is sent once).
    threshold_reached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answer: Mapped[str | None] = mapped_column(String(16))  # accepted | studying | declined
    answer_text: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdeaBacking(Base):
    """One back per (idea, supporter); tier and region copied for counts."""

    __tablename__ = "idea_backing"
    __table_args__ = (
        UniqueConstraint("idea_id", "supporter_id"),
        Index("ix_idea_backing_supporter", "supporter_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("idea.id"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    supporter_id: Mapped[int | None] = mapped_column(
        ForeignKey("supporter.id", ondelete="SET NULL")
    )
    tier: Mapped[str] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set when the organisers' answer was delivered to this backer (sent once).
    answer_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IdeaDraft(Base):
    """An idea being written in chat (title, then text), per supporter and campaign."""

    __tablename__ = "idea_draft"

    supporter_id: Mapped[int] = mapped_column(
        ForeignKey("supporter.id", ondelete="CASCADE"), primary_key=True
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    step: Mapped[str] = mapped_column(String(16), default="title")  # title | body | similar
    title: Mapped[str | None] = mapped_column(String(120))
    body: Mapped[str | None] = mapped_column(Text)
    # Ids of the similar ideas shown before filing.
    similar: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
