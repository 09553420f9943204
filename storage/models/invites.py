"""Invite links, who came through whose link, and the interests organisers offer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, BigIntPK, UTCDateTime


class Invite(Base):
    """A supporter's personal invite code (`start=ref_<code>`), made at their first /invite.

    `joined` counts the people who signed up through it. It is a counter, not a count of
    `referral` rows, so that it stays when one of those people is erased (their link to
    this row goes, the number does not)."""

    __tablename__ = "invite"

    supporter_id: Mapped[int] = mapped_column(
        ForeignKey("supporter.id", ondelete="CASCADE"), primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    joined: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Opt-in: shown by name on the chapter's leaderboard only when the supporter says so.
    show_name: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Referral(Base):
    """Who invited whom: at most one row per invited supporter, written at their consent."""

    __tablename__ = "referral"
    __table_args__ = (Index("ix_referral_referrer", "referrer_id"),)

    supporter_id: Mapped[int] = mapped_column(
        ForeignKey("supporter.id", ondelete="CASCADE"), primary_key=True)
    # NULL once the inviter is erased: the invited person still came through an invite.
    referrer_id: Mapped[int | None] = mapped_column(
        ForeignKey("supporter.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Interest(Base):
    """One interest a supporter may choose with /interests; choosing it sets the tag `name`.

    Per chapter (`chapter_id`), or for everyone (`chapter_id` NULL)."""

    __tablename__ = "interest"
    __table_args__ = (UniqueConstraint("chapter_id", "name"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    chapter_id: Mapped[int | None] = mapped_column(
        ForeignKey("chapter.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer, default=0)
    # Taken off the list by the organiser: no longer offered, but kept so that people who
    # chose it see it in /interests and can drop it (their tag is never removed for them:
    # an import may have set the same tag).
    retired: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
