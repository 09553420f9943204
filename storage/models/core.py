"""Foundation tables: bots, supporters, their channel identities, consent, audit."""

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


class Bot(Base):
    """One bot account on one channel; a deployment may serve several."""

    __tablename__ = "bot"
    __table_args__ = (UniqueConstraint("channel", "name"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))  # telegram | x
    name: Mapped[str] = mapped_column(String(64))
    username: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(64))
    # The token is a credential: never logged, never exported, stored encrypted
    # ("enc1:...", storage/secrets.py); token_hint is its masked form for listings.
    token: Mapped[str | None] = mapped_column(Text)
    token_hint: Mapped[str | None] = mapped_column(String(40))
    base_url: Mapped[str | None] = mapped_column(Text)
    max_rate: Mapped[float] = mapped_column(default=30.0)
    # A disabled bot is neither served nor used for delivery; its rows stay.
    # server_default too: bots are added by scripts and older deployments with plain SQL.
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # The regional chapter this bot speaks for (a name; chapters are free-form for now).
    chapter: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Supporter(Base):
    """A person who agreed to hear from the movement. Created only after consent."""

    __tablename__ = "supporter"
    __table_args__ = (
        # One index for three readers, because every index of this table is upkeep on
        # each signup and import (a million-row import spent 5.5 of its 15 s of server
        # time in the three this one replaced). The dashboard list filtered by region,
        # newest first, paged by id (keyset), reads it in order. The broadcast
        # composer's live count narrows a million supporters to a region by its range
        # and checks tier and status on the index entry (INCLUDE, PostgreSQL), so it
        # never visits a candidate's row (index-only). Counts per status of a bot read
        # it from the bot_id prefix. (A new name, not ix_supporter_bot_region_id with
        # columns added: a released database drops that one in 0002 and builds this one
        # concurrently at `nalgae db upgrade`.)
        Index("ix_supporter_area", "bot_id", "region", "id",
              postgresql_include=["tier", "status"]),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # The bot the person first signed up through (their other bots: channel_identity).
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot.id"))
    display_name: Mapped[str | None] = mapped_column(String(128))
    language: Mapped[str] = mapped_column(String(8), default="ko")
    region: Mapped[str | None] = mapped_column(String(16))
    # The second level (시/군/구) within `region`, where one is known (campaigns.regions).
    district: Mapped[str | None] = mapped_column(String(32))
    tier: Mapped[str] = mapped_column(String(16), default="supporter")  # supporter | member
    # active | stopped | erased
    status: Mapped[str] = mapped_column(String(16), default="active")
    source_ref: Mapped[str | None] = mapped_column(String(64))
    # The next free-text input we expect (e.g. "name"), so a dialog survives restarts
    # and works across processes without in-memory conversation state.
    pending_input: Mapped[str | None] = mapped_column(String(32))
    # What the person came for before signing up (e.g. "sign:<slug>"), resumed after.
    pending_intent: Mapped[str | None] = mapped_column(String(96))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consented_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SupporterTag(Base):
    __tablename__ = "supporter_tag"
    # "Everyone tagged volunteer" (audiences, the list's tag filter): the primary key
    # leads with the supporter, this one with the tag.
    __table_args__ = (Index("ix_supporter_tag_tag", "tag", "supporter_id"),)

    supporter_id: Mapped[int] = mapped_column(
        ForeignKey("supporter.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)


class ChannelIdentity(Base):
    """How to reach a supporter on one channel of one bot."""

    __tablename__ = "channel_identity"
    __table_args__ = (
        UniqueConstraint("bot_id", "channel", "external_user_id"),
        # By person (/forget, exports, the audience join). The audience count's other
        # columns ride along so that its 20,000-odd lookups at a million never visit
        # the table (an index-only scan).
        Index("ix_channel_identity_supporter", "supporter_id", "bot_id", "channel", "reachable",
              "chat_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporter.id", ondelete="CASCADE"))
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot.id"))
    channel: Mapped[str] = mapped_column(String(16))
    external_user_id: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    username: Mapped[str | None] = mapped_column(String(64))
    reachable: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the person last signed up or /started through this bot: a broadcast reaches
    # someone with several bots through the one they used last.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Consent(Base):
    """A recorded consent decision: purpose, notice version, choice, time, channel."""

    __tablename__ = "consent"
    # /forget and /export look consents up by person (a scan of every consent otherwise).
    __table_args__ = (Index("ix_consent_supporter", "supporter_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporter.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(64))
    notice_version: Mapped[str] = mapped_column(String(16))
    choice: Mapped[str] = mapped_column(String(16))  # granted | withdrawn
    channel: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MemberCode(Base):
    """A one-time code that raises a supporter to the member tier (stored hashed)."""

    __tablename__ = "member_code"
    __table_args__ = (Index("ix_member_code_redeemed_by", "redeemed_by"),)  # /forget

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    redeemed_by: Mapped[int | None] = mapped_column(
        ForeignKey("supporter.id", ondelete="SET NULL")
    )
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Organiser(Base):
    """A person allowed to run campaigns: admin, organiser or viewer."""

    __tablename__ = "organiser"
    __table_args__ = (UniqueConstraint("telegram_user_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    telegram_user_id: Mapped[str | None] = mapped_column(String(64))
    login: Mapped[str | None] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16), default="organiser")
    password_hash: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Carried in every dashboard session cookie; raising it (sign-out, new password, new
    # role) ends every session of this organiser at once, in every web process.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AuditLog(Base):
    """Who did what to what. Internal ids only: no names, no chat ids, no tokens."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))  # e.g. supporter:12, organiser:3, cli
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class InboxUpdate(Base):
    """Telegram updates stored before they are acknowledged; (bot, update_id) dedups.

    The payload is cleared once handled: it holds names and chat ids, and must not
    outlive processing (nothing personal before consent, nothing after erasure).
    """

    __tablename__ = "inbox_update"
    __table_args__ = (Index("ix_inbox_pending", "bot_id", "processed_at"),)

    bot_id: Mapped[int] = mapped_column(ForeignKey("bot.id"), primary_key=True)
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class Campaign(Base):
    """Groups petitions, polls, broadcasts and events under one cause."""

    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    bot_id: Mapped[int | None] = mapped_column(ForeignKey("bot.id"))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title_ko: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str | None] = mapped_column(String(200))
    description_ko: Mapped[str | None] = mapped_column(Text)
    description_en: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft|active|closed
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
