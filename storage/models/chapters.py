"""Regional chapters and the organisers scoped to them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, BigIntPK, UTCDateTime


class Chapter(Base):
    """A local group: the regions it covers (region codes) and, optionally, its own bot."""

    __tablename__ = "chapter"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str | None] = mapped_column(String(128))
    regions: Mapped[list[str]] = mapped_column(JSON)
    bot_id: Mapped[int | None] = mapped_column(ForeignKey("bot.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChapterOrganiser(Base):
    """An organiser scoped to a chapter; an organiser with no such row is national."""

    __tablename__ = "chapter_organiser"

    chapter_id: Mapped[int] = mapped_column(
        ForeignKey("chapter.id", ondelete="CASCADE"), primary_key=True)
    organiser_id: Mapped[int] = mapped_column(
        ForeignKey("organiser.id", ondelete="CASCADE"), primary_key=True)
