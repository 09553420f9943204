"""Surveys: definitions, resumable progress, named responses and anonymous answers.

Progress (`survey_progress`) is one row per (survey, supporter) holding the answers
given so far and where the person is; it is what makes a half-finished survey
resumable across restarts and processes, and it never shares a field with the
sign-up dialog (`supporter.pending_input`), so /sign in the middle breaks nothing.

Anonymous surveys, like secret ballots: `survey_respondent` says *who* answered (it
blocks a second submission and feeds "done / not done" audiences), the answer rows
say *what*, under a random response key, with no supporter id and no time, in a
WITHOUT ROWID table so not even the storage order follows the order of answering.
The progress row of an anonymous survey is deleted when it is submitted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, BigIntPK, UTCDateTime


class Survey(Base):
    """A questionnaire: draft → open → closed; its questions live in `definition`."""

    __tablename__ = "survey"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    # Travels in `start=survey_<slug>` deep links and `sv:` callback data.
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    title_ko: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    # The validated definition: intro, thanks and the ordered questions (see
    # campaigns/surveys.py); stored whole so a survey is read in one row.
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    # Locked: a submitted response cannot be edited (anonymous ones never can).
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    # {"member": "1", "supporter": "1/2"}: the poll weights, exact strings.
    weights: Mapped[dict[str, str]] = mapped_column(JSON)
    audience_tier: Mapped[str | None] = mapped_column(String(16))
    audience_region: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | open | closed
    closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SurveyProgress(Base):
    """Where one supporter is in one survey (answering, confirming, or submitted)."""

    __tablename__ = "survey_progress"
    __table_args__ = (
        UniqueConstraint("survey_id", "supporter_id"),
        Index("ix_survey_progress_remind", "state", "reminded_at", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id"))
    supporter_id: Mapped[int] = mapped_column(ForeignKey("supporter.id", ondelete="CASCADE"))
    # {question key: answer}; a skipped question is absent.
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Keys of the questions shown, in order: Back pops this stack.
    path: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The question key being asked, or "" when the summary is shown.
    current: Mapped[str] = mapped_column(String(40), default="")
    # answering | confirm | submitted
    state: Mapped[str] = mapped_column(String(16), default="answering")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SurveyRespondent(Base):
    """Who has submitted, for every survey (audiences `survey_done=`, one submission)."""

    __tablename__ = "survey_respondent"
    __table_args__ = (UniqueConstraint("survey_id", "supporter_id"),
                      Index("ix_survey_respondent_supporter", "supporter_id"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id"))
    supporter_id: Mapped[int | None] = mapped_column(
        ForeignKey("supporter.id", ondelete="SET NULL")
    )


class SurveyAnswer(Base):
    """One answer to one question. `supporter_id` is NULL for anonymous surveys (always)
    and after erasure; tier, region and weight are copied at submission."""

    __tablename__ = "survey_answer"
    __table_args__ = (
        Index("ix_survey_answer_question", "survey_id", "question"),
        Index("ix_survey_answer_supporter", "supporter_id"),
        {"sqlite_with_rowid": False},
    )

    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id"), primary_key=True)
    # secrets.token_hex(16): one key per submitted response, random so it orders nothing.
    response_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    question: Mapped[str] = mapped_column(String(40), primary_key=True)
    supporter_id: Mapped[int | None] = mapped_column(
        ForeignKey("supporter.id", ondelete="SET NULL")
    )
    # Choices as sorted comma-separated indexes ("0,2"), a number or a scale value as
    # text, or the free text itself.
    value: Mapped[str] = mapped_column(Text)
    tier: Mapped[str] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(16))
    weight: Mapped[str] = mapped_column(String(32))


class SurveyAnswerPending(Base):
    """An anonymous response's answers not yet mixed into `survey_answer` (as secret poll
    ballots wait in `poll_ballot_pending`): moved there in shuffled batches under fresh
    keys, so neither insert order nor a transaction id ties a response to its submitter.
    Counted in results all the same."""

    __tablename__ = "survey_answer_pending"
    __table_args__ = ({"sqlite_with_rowid": False},)

    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id"), primary_key=True)
    response_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    question: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    tier: Mapped[str] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(16))
    weight: Mapped[str] = mapped_column(String(32))
