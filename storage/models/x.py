"""The X channel's ledgers: the mention cursor, mentions handled, posts made, polls posted.

Tweet and user ids are 64-bit snowflakes stored as BIGINT, so "older than the
cursor" is a numeric comparison. What these tables hold about a person (the
author of a mention) is kept only while a reply is due and is unlinked on erasure.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
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

# reply_state of a mention: no reply due | due | being sent (claimed) | done | policy said no
# | gave up. "sending" is never retried: at most one reply per mention, even after a crash.
REPLY_STATES = ("none", "pending", "sending", "sent", "refused", "failed")


class XCursor(Base):
    """Per X bot: where mention reading stands, who is reading, and its read budget."""

    __tablename__ = "x_cursor"

    bot_id: Mapped[int] = mapped_column(ForeignKey("bot.id"), primary_key=True)
    # The newest mention fully processed: the next read asks only for newer ones.
    since_id: Mapped[int | None] = mapped_column(BigInteger)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A scheduler claims the cursor before reading, so two never read at once.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Mention reads in the current 15-minute window (X limits them per window).
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    window_reads: Mapped[int] = mapped_column(Integer, default=0)
    # A 429 on reading: no read before this time.
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class XMention(Base):
    """A mention of the account, handled once; the reply owed to it, at most one."""

    __tablename__ = "x_mention"
    __table_args__ = (
        UniqueConstraint("bot_id", "tweet_id"),
        Index("ix_x_mention_supporter", "supporter_id"),
        Index(
            "ix_x_mention_reply_due",
            "bot_id",
            "reply_not_before",
            postgresql_where=text("reply_state = 'pending'"),
            sqlite_where=text("reply_state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot.id"))
    tweet_id: Mapped[int] = mapped_column(BigInteger)
    # Kept only while a reply is owed (the policy checks who engaged), then cleared.
    author_id: Mapped[int | None] = mapped_column(BigInteger)
    supporter_id: Mapped[int | None] = mapped_column(
        ForeignKey("supporter.id", ondelete="SET NULL")
    )
    intent: Mapped[str | None] = mapped_column(String(16))  # sign | stop | None
    slug: Mapped[str | None] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reply_state: Mapped[str] = mapped_column(String(16), default="none")
    reply_text: Mapped[str | None] = mapped_column(Text)
    reply_not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reply_attempts: Mapped[int] = mapped_column(Integer, default=0)
    reply_tweet_id: Mapped[int | None] = mapped_column(BigInteger)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reply_error: Mapped[str | None] = mapped_column(String(200))


class XPost(Base):
    """A post the account made: one row per post of a thread, a poll, or a reply.

    ``key`` names what the post belongs to ("outbox:<id>", "reply:<mention id>"), so
    a thread interrupted by a rate limit resumes at the next part instead of starting
    over, and the rows in a window are the account's own count against X's limits.
    """

    __tablename__ = "x_post"
    __table_args__ = (
        UniqueConstraint("bot_id", "key", "part"),
        Index("ix_x_post_bot_posted", "bot_id", "posted_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot.id"))
    key: Mapped[str] = mapped_column(String(64))
    part: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16))  # post | thread | poll | reply
    tweet_id: Mapped[int] = mapped_column(BigInteger)
    in_reply_to: Mapped[int | None] = mapped_column(BigInteger)
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class XPoll(Base):
    """A native X poll posted for a campaign poll; its counts once X has closed it.

    X reports only totals per option, never who voted: an anonymous channel column.
    """

    __tablename__ = "x_poll"
    __table_args__ = (
        UniqueConstraint("bot_id", "tweet_id"),
        Index("ix_x_poll_poll", "poll_id"),
        Index(
            "ix_x_poll_due",
            "ends_at",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot.id"))
    poll_id: Mapped[int | None] = mapped_column(ForeignKey("poll.id", ondelete="SET NULL"))
    tweet_id: Mapped[int] = mapped_column(BigInteger)
    x_poll_id: Mapped[str | None] = mapped_column(String(32))
    options: Mapped[list[str]] = mapped_column(JSON)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
    # Votes per option, in option order, once X says voting_status is closed.
    counts: Mapped[list[int] | None] = mapped_column(JSON)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class XAccount(Base):
    """An X account's credentials, for the X bot row it belongs to (one row per account).

    The bot row (channel "x") carries what every bot has: name, chapter, enabled, the
    account's user id and @name. This row carries the keys, encrypted as the bot tokens are
    (storage.secrets via storage.x.seal_credentials), and, for OAuth 2.0, the access
    token's expiry and the refresh lock: an X refresh token is single-use, so exactly one
    process refreshes.
    """

    __tablename__ = "x_account"

    bot_id: Mapped[int] = mapped_column(ForeignKey("bot.id", ondelete="CASCADE"),
                                        primary_key=True)
    auth: Mapped[str] = mapped_column(String(16))  # oauth1 | oauth2 | oauth2-refresh
    credentials: Mapped[str] = mapped_column(Text)  # sealed: never in clear, never logged
    # The settings' account only: a digest of the NALGAE_X_REFRESH_TOKEN this row started
    # from; a new token in the settings replaces what the row holds.
    seed: Mapped[str | None] = mapped_column(String(64))
    # OAuth 2.0: when the access token expires (None: unknown, refresh before use).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refresh_claimed_by: Mapped[str | None] = mapped_column(String(64))
    refresh_claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Why the last refresh failed: X posting through this account stops until it is fixed.
    refresh_error: Mapped[str | None] = mapped_column(String(200))
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
