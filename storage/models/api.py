"""HTTP API tokens, outbound webhook subscriptions and their deliveries.

A token is stored as its SHA-256 only: whoever reads the database cannot use it.
A webhook secret, on the other hand, must be kept as given, since every delivery
is signed with it (HMAC needs the key itself).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, BigIntPK, UTCDateTime

# "identities" reads what "read" reads, plus who gave each poll answer (audited); neither
# "read" nor "write" ever links an answer to a person.
API_SCOPES = ("read", "write", "identities")
WEBHOOK_EVENTS = ("signature.created", "poll.answered", "supporter.stopped", "event.rsvp",
                  "event.checkin", "survey.completed", "idea.submitted", "idea.threshold")
DELIVERY_STATUSES = ("pending", "delivering", "delivered", "failed")


class ApiToken(Base):
    """A bearer token for scripts: read, or read and write; revocable."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex
    scope: Mapped[str] = mapped_column(String(16))  # read | write | identities
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # None: until revoked
    # Updated at most once a minute, so a busy script does not write on every request.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookSubscription(Base):
    """Where to POST events; ``events`` is ",a,b," so one LIKE finds the subscribers."""

    __tablename__ = "webhook_subscription"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))
    events: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    """One event for one subscriber: pending → delivering (leased) → delivered | failed."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        Index(
            "ix_webhook_delivery_due", "next_attempt_at", "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_webhook_delivery_lease", "lease_until",
            postgresql_where=text("status = 'delivering'"),
            sqlite_where=text("status = 'delivering'"),
        ),
        Index("ix_webhook_delivery_supporter", "supporter_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_subscription.id", ondelete="CASCADE")
    )
    event: Mapped[str] = mapped_column(String(32))
    # The exact JSON body sent (and signed); internal ids only, never names.
    payload: Mapped[str] = mapped_column(Text)
    # Whom the event is about, so erasure can drop it (no foreign key: a hot-path insert).
    supporter_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
