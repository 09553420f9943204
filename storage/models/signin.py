"""Organiser sign-in: one-time login links (the link itself is signed, not stored)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UTCDateTime


class LoginLink(Base):
    """A login link that was issued; `used_at` makes it single-use across every web process."""

    __tablename__ = "login_link"

    # A random nonce carried inside the signed link; the row is how its use is recorded.
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    organiser_id: Mapped[int] = mapped_column(ForeignKey("organiser.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
