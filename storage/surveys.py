"""Surveys, progress, respondents and answers (SQL only, no rules)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Select,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.chapters import in_areas, keep_to
from storage.db import upsert_insert
from storage.models import (
    ChannelIdentity,
    Supporter,
    Survey,
    SurveyAnswer,
    SurveyAnswerPending,
    SurveyProgress,
    SurveyRespondent,
)
from storage.supporters import Brief

ACTIVE_STATES = ("answering", "confirm")


def new_response_key() -> str:
    """128 random bits: a response key that orders and reveals nothing."""
    return secrets.token_hex(16)


# --- surveys ----------------------------------------------------------------------------------

async def insert_survey(session: AsyncSession, **values: Any) -> Survey:
    survey = Survey(**values)
    session.add(survey)
    await session.flush()
    return survey


async def survey_by_slug(session: AsyncSession, slug: str) -> Survey | None:
    return (await session.execute(select(Survey).where(Survey.slug == slug))).scalar_one_or_none()


async def survey_by_id(session: AsyncSession, survey_id: int) -> Survey | None:
    return await session.get(Survey, survey_id)


async def surveys(session: AsyncSession, status: str | None = None) -> list[Survey]:
    query = select(Survey).order_by(Survey.id)
    if status:
        query = query.where(Survey.status == status)
    return list((await session.execute(query)).scalars())


async def change_status(
    session: AsyncSession, survey_id: int, *, from_statuses: Sequence[str], to: str,
    now: datetime,
) -> bool:
    values: dict[str, Any] = {"status": to, "updated_at": now}
    if to == "closed":
        values["closed_at"] = now
    result = await session.execute(
        update(Survey).where(Survey.id == survey_id, Survey.status.in_(from_statuses))
        .values(**values).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def close_due(session: AsyncSession, now: datetime) -> list[tuple[int, str]]:
    """Close every open survey past its closing time; (id, slug) of each."""
    rows = await session.execute(
        update(Survey)
        .where(Survey.status == "open", Survey.closes_at.is_not(None), Survey.closes_at <= now)
        .values(status="closed", closed_at=now, updated_at=now)
        .returning(Survey.id, Survey.slug)
        .execution_options(synchronize_session=False)
    )
    return [(int(i), str(s)) for i, s in rows.all()]


# --- progress ---------------------------------------------------------------------------------

async def active_progress(session: AsyncSession, supporter_id: int) -> SurveyProgress | None:
    """The survey the person touched last and has not submitted: where typed text goes."""
    return (await session.execute(
        select(SurveyProgress)
        .join(Survey, Survey.id == SurveyProgress.survey_id)
        .where(SurveyProgress.supporter_id == supporter_id,
               SurveyProgress.state.in_(ACTIVE_STATES), Survey.status == "open")
        .order_by(SurveyProgress.updated_at.desc(), SurveyProgress.id.desc())
        .limit(1)
    )).scalar_one_or_none()


# --- the answering hot path: plain rows, set-based writes -------------------------------------

@dataclass
class ProgressRow:
    """A `survey_progress` row as plain values: the answering rules change it in memory and
    `save_progress` writes a whole batch's changes at once (no ORM objects per answer).
    `id` is None for a row not inserted yet."""

    id: int | None
    survey_id: int
    supporter_id: int
    answers: dict[str, Any]
    path: list[str]
    current: str
    state: str
    started_at: datetime
    updated_at: datetime
    reminded_at: datetime | None = None
    submitted_at: datetime | None = None

    def stamp(self) -> tuple[Any, ...]:
        """What `save_progress` writes, to tell a changed row from one only read."""
        return (self.answers, self.path, self.current, self.state, self.updated_at,
                self.reminded_at, self.submitted_at)


_P = SurveyProgress
_SURVEY_STAMP = (Survey.id, Survey.updated_at, Survey.status, Survey.closes_at)
_PROGRESS = (_P.id, _P.survey_id, _P.supporter_id, _P.answers, _P.path, _P.current, _P.state,
             _P.started_at, _P.updated_at, _P.reminded_at, _P.submitted_at)


def _progress_row(r: Any) -> ProgressRow:
    return ProgressRow(int(r[0]), int(r[1]), int(r[2]), dict(r[3] or {}), list(r[4] or []),
                       str(r[5]), str(r[6]), r[7], r[8], r[9], r[10])


async def progress_rows(
    session: AsyncSession, pairs: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], ProgressRow]:
    """`progress_many` as plain rows: (survey id, supporter id) -> row, one query."""
    if not pairs:
        return {}
    rows = await session.execute(
        select(*_PROGRESS).where(_P.survey_id.in_({s for s, _ in pairs}),
                                 _P.supporter_id.in_({p for _, p in pairs})))
    wanted = set(pairs)
    out = {}
    for r in rows.all():
        if (r[1], r[2]) in wanted:
            out[(int(r[1]), int(r[2]))] = _progress_row(r)
    return out


async def active_progress_rows(
    session: AsyncSession, supporter_ids: Sequence[int]
) -> dict[int, ProgressRow]:
    """`active_progress_many` as plain rows: supporter id -> the row touched last."""
    if not supporter_ids:
        return {}
    rows = await session.execute(
        select(*_PROGRESS)
        .join(Survey, Survey.id == _P.survey_id)
        .where(_P.supporter_id.in_(set(supporter_ids)), _P.state.in_(ACTIVE_STATES),
               Survey.status == "open")
        .order_by(_P.updated_at.desc(), _P.id.desc()))
    out: dict[int, ProgressRow] = {}
    for r in rows.all():
        if int(r[2]) not in out:  # the first one: the one touched last
            out[int(r[2])] = _progress_row(r)
    return out


# On the table, not the mapped class: a list of parameters is then one plain executemany
# (the ORM would take it for a bulk update by primary key, object machinery and all).
_PROGRESS_TABLE: Table = SurveyProgress.__table__  # type: ignore[assignment]
_ANSWER_TABLE: Table = SurveyAnswer.__table__  # type: ignore[assignment]
_PENDING_TABLE: Table = SurveyAnswerPending.__table__  # type: ignore[assignment]
_RESPONDENT_TABLE: Table = SurveyRespondent.__table__  # type: ignore[assignment]
@dataclass
class BatchProgress:
    """What `people_and_progress` read: the pressed surveys' rows, the typists' active
    rows, (updated_at, status, closes_at) of every survey those rows belong to, and
    which pressed (survey id, supporter id) pairs have submitted."""

    by_pair: dict[tuple[int, int], ProgressRow]
    active: dict[int, ProgressRow]
    stamps: dict[int, tuple[Any, ...]]
    responded: set[tuple[int, int]]


async def people_and_progress(
    session: AsyncSession, people: Sequence[tuple[int, str, str, int | None]],
) -> tuple[dict[tuple[int, str, str], Brief], BatchProgress]:
    """`supporters.briefs_of` and `progress_for_batch` in one query per bot: for each
    (bot id, channel, user id, survey id pressed or None for typed text), the person
    and their progress in that survey, or their active progress rows; with the stamps
    of those rows' surveys."""
    briefs: dict[tuple[int, str, str], Brief] = {}
    out = BatchProgress({}, {}, {}, set())
    # One row object per progress row: a person may press one survey and type into the
    # same one in a batch, and a change made through either must be the one written.
    read: dict[int, ProgressRow] = {}
    groups: dict[tuple[int, str], list[tuple[str, int | None]]] = {}
    for bot_id, channel, user_id, survey_id in people:
        groups.setdefault((bot_id, channel), []).append((user_id, survey_id))
    ci, s = ChannelIdentity, Supporter
    for (bot_id, channel), members in groups.items():
        typing = {u for u, sv in members if sv is None}
        wanted = {(u, sv) for u, sv in members if sv is not None}
        tests = []
        if typing:
            tests.append(and_(ci.external_user_id.in_(typing), _P.state.in_(ACTIVE_STATES)))
        if wanted:
            tests.append(and_(ci.external_user_id.in_({u for u, _ in wanted}),
                              _P.survey_id.in_({sv for _, sv in wanted})))
        pressers, pressed = {u for u, _ in wanted}, {sv for _, sv in wanted}
        done = SurveyRespondent
        rows = await session.execute(
            select(ci.external_user_id, s.id, s.status, s.language, s.region, s.tier,
                   s.source_ref, s.pending_input, *_PROGRESS, *_SURVEY_STAMP, done.survey_id)
            .select_from(ci)
            .join(s, s.id == ci.supporter_id)
            .outerjoin(_P, and_(_P.supporter_id == s.id, or_(*tests)))
            .outerjoin(Survey, Survey.id == _P.survey_id)
            # "Has answered" for the pressed surveys (entering, sending) on the same trip.
            .outerjoin(done, and_(done.supporter_id == s.id, done.survey_id.in_(pressed or {-1}),
                                  ci.external_user_id.in_(pressers or {""})))
            .where(ci.bot_id == bot_id, ci.channel == channel,
                   ci.external_user_id.in_({u for u, _ in members}))
            .order_by(_P.updated_at.desc(), _P.id.desc()))
        for r in rows.all():
            user = str(r[0])
            briefs.setdefault((bot_id, channel, user), Brief(*r[1:8]))
            if r[23] is not None and (user, int(r[23])) in wanted:
                out.responded.add((int(r[23]), int(r[1])))
            progress = r[8:19]
            if progress[0] is None:
                continue  # no progress row that matters
            survey_id, supporter_id = int(progress[1]), int(progress[2])
            out.stamps[survey_id] = tuple(r[20:23])
            row = read.get(int(progress[0]))
            if row is None:
                row = read[int(progress[0])] = _progress_row(progress)
            if (user, survey_id) in wanted:
                out.by_pair[(survey_id, supporter_id)] = row
            if (user in typing and supporter_id not in out.active
                    and progress[6] in ACTIVE_STATES and r[21] == "open"):
                # The first of an open survey: the one touched last.
                out.active[supporter_id] = row
    return briefs, out


_SAVE_PROGRESS = (
    update(_PROGRESS_TABLE).where(_PROGRESS_TABLE.c.id == bindparam("row_id"))
    .values(answers=bindparam("answers"), path=bindparam("path"), current=bindparam("current"),
            state=bindparam("state"), updated_at=bindparam("updated_at"),
            reminded_at=bindparam("reminded_at"), submitted_at=bindparam("submitted_at"))

)


async def save_progress(session: AsyncSession, *, new: Sequence[ProgressRow] = (),
                        changed: Sequence[ProgressRow] = (), deleted: Sequence[int] = ()) -> None:
    """A batch's progress in at most three statements: rows started (a row another process
    started meanwhile wins), rows changed (one executemany), rows removed."""
    if new:
        # One executemany of one statement (compiled once), not a VALUES list per batch size.
        await session.execute(
            upsert_insert(session, _PROGRESS_TABLE)
            .on_conflict_do_nothing(index_elements=["survey_id", "supporter_id"]), [
                {"survey_id": r.survey_id, "supporter_id": r.supporter_id, "answers": r.answers,
                 "path": r.path, "current": r.current, "state": r.state,
                 "started_at": r.started_at, "updated_at": r.updated_at,
                 "reminded_at": r.reminded_at, "submitted_at": r.submitted_at} for r in new])
    if changed:
        await session.execute(_SAVE_PROGRESS, [
            {"row_id": r.id, "answers": r.answers, "path": r.path, "current": r.current,
             "state": r.state, "updated_at": r.updated_at, "reminded_at": r.reminded_at,
             "submitted_at": r.submitted_at} for r in changed])
    if deleted:
        await session.execute(delete(SurveyProgress).where(SurveyProgress.id.in_(list(deleted))))


async def responded_pairs(
    session: AsyncSession, pairs: Sequence[tuple[int, int]]
) -> set[tuple[int, int]]:
    """Which of these (survey id, supporter id) pairs have submitted, in one query."""
    if not pairs:
        return set()
    r = SurveyRespondent
    rows = await session.execute(
        select(r.survey_id, r.supporter_id).where(r.survey_id.in_({s for s, _ in pairs}),
                                                  r.supporter_id.in_({p for _, p in pairs})))
    wanted = set(pairs)
    return {(int(s), int(p)) for s, p in rows.all() if p is not None and (s, p) in wanted}


@dataclass(frozen=True)
class Response:
    """One submitted response: its answers and the tier, region and weight they carry
    (`supporter_id` None: anonymous)."""

    survey_id: int
    supporter_id: int | None
    answers: dict[str, str]
    tier: str
    region: str | None
    weight: str


async def write_responses(session: AsyncSession, responses: Sequence[Response], *,
                          respondents: Sequence[tuple[int, int]],
                          replaced: Sequence[tuple[int, int]]) -> None:
    """A whole batch's responses: the "has answered" marks,
    the earlier answers of the `replaced` (survey, supporter) pairs removed (edits), and
    every answer row in one executemany per table, each response under a fresh key."""
    if respondents:
        await session.execute(
            upsert_insert(session, _RESPONDENT_TABLE)
            .on_conflict_do_nothing(index_elements=["survey_id", "supporter_id"]),
            [{"survey_id": s, "supporter_id": p} for s, p in respondents])
    if replaced:
        await session.execute(
            delete(SurveyAnswer)
            .where(tuple_(SurveyAnswer.survey_id, SurveyAnswer.supporter_id).in_(list(replaced)))
            .execution_options(synchronize_session=False))
    named: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    for r in responses:
        key = new_response_key()
        for q, v in r.answers.items():
            row = {"survey_id": r.survey_id, "response_key": key, "question": q, "value": v,
                   "tier": r.tier, "region": r.region, "weight": r.weight}
            if r.supporter_id is None:
                pending.append(row)
            else:
                named.append({**row, "supporter_id": r.supporter_id})
    if named:
        await session.execute(insert(_ANSWER_TABLE), named)
    if pending:
        await session.execute(insert(_PENDING_TABLE), pending)


async def survey_stamps(session: AsyncSession,
                        ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
    """(updated_at, status, closes_at) per survey id: enough to tell whether a survey
    definition held in memory is still the stored one (its questions never change)."""
    if not ids:
        return {}
    rows = await session.execute(select(*_SURVEY_STAMP).where(Survey.id.in_(set(ids))))
    return {int(r[0]): tuple(r[1:]) for r in rows.all()}


async def survey_rows(session: AsyncSession, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Whole survey rows as plain mappings, id -> columns, in one query."""
    if not ids:
        return {}
    rows = await session.execute(select(Survey.__table__).where(Survey.id.in_(set(ids))))
    return {int(m["id"]): dict(m) for m in rows.mappings().all()}


@dataclass(frozen=True)
class Reminder:
    survey_id: int
    supporter_id: int
    language: str
    bot_id: int
    chat_id: int


async def claim_reminders(
    session: AsyncSession, *, idle_before: datetime, now: datetime, limit: int = 500,
    bot_id: int | None = None,
) -> list[Reminder]:
    """Mark unfinished progress idle since `idle_before` as reminded and return whom to
    remind (of one bot's supporters when given). The UPDATE is the claim: two processes
    cannot both take the same row."""
    open_survey = (
        select(literal(1)).select_from(Survey)
        .where(Survey.id == SurveyProgress.survey_id, Survey.status == "open",
               (Survey.closes_at.is_(None)) | (Survey.closes_at > now))
        .exists()
    )
    due = (
        select(SurveyProgress.id)
        .where(SurveyProgress.state.in_(ACTIVE_STATES), SurveyProgress.reminded_at.is_(None),
               SurveyProgress.updated_at <= idle_before, open_survey)
        .order_by(SurveyProgress.id).limit(limit)
    )
    if bot_id is not None:
        due = due.where(select(literal(1)).select_from(Supporter).where(
            Supporter.id == SurveyProgress.supporter_id, Supporter.bot_id == bot_id).exists())
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claimed = await session.execute(
        update(SurveyProgress)
        .where(SurveyProgress.id.in_(due.scalar_subquery()), SurveyProgress.reminded_at.is_(None))
        .values(reminded_at=now)
        .returning(SurveyProgress.survey_id, SurveyProgress.supporter_id)
        .execution_options(synchronize_session=False)
    )
    pairs = [(int(s), int(p)) for s, p in claimed.all()]
    if not pairs:
        return []
    rows = await session.execute(
        select(Supporter.id, Supporter.language, ChannelIdentity.bot_id, ChannelIdentity.chat_id)
        .join(ChannelIdentity, ChannelIdentity.supporter_id == Supporter.id)
        .where(Supporter.id.in_([p for _, p in pairs]), Supporter.status == "active",
               ChannelIdentity.reachable.is_(True), ChannelIdentity.chat_id.is_not(None))
    )
    where = {int(i): (str(lang), int(b), int(c or 0)) for i, lang, b, c in rows.all()}
    return [Reminder(s, p, *where[p]) for s, p in pairs if p in where]


# --- submissions ------------------------------------------------------------------------------

async def has_responded(session: AsyncSession, survey_id: int, supporter_id: int) -> bool:
    return await session.scalar(
        select(SurveyRespondent.id).where(SurveyRespondent.survey_id == survey_id,
                                          SurveyRespondent.supporter_id == supporter_id)
    ) is not None


def _answers_in(query: Any, areas: Sequence[str] | None) -> Any:
    """A query over SurveyAnswer kept to a chapter's areas: the region copied at
    submission, the district of the (linked) respondent now; an anonymous answer, linked
    to nobody, counts for whole provinces only."""
    return keep_to(query, areas, SurveyAnswer)


async def respondent_count(session: AsyncSession, survey_id: int,
                           areas: Sequence[str] | None = None) -> int:
    query = (select(func.count()).select_from(SurveyRespondent)
             .where(SurveyRespondent.survey_id == survey_id))
    if areas is not None:
        query = query.join(Supporter, Supporter.id == SurveyRespondent.supporter_id).where(
            in_areas(areas))
    return int(await session.scalar(query) or 0)


async def write_answers(
    session: AsyncSession, *, survey_id: int, supporter_id: int | None, answers: dict[str, str],
    tier: str, region: str | None, weight: str,
) -> None:
    """One response's answers under a fresh random key; a named response replaces the
    person's earlier one (an edit). An anonymous one (supporter None) waits in
    `survey_answer_pending` until `take_pending`/`insert_mixed` move it, shuffled; results
    count only mixed answers, so a live chart moves by whole batches, never by one person."""
    if supporter_id is not None:
        await session.execute(
            delete(SurveyAnswer).where(SurveyAnswer.survey_id == survey_id,
                                       SurveyAnswer.supporter_id == supporter_id)
        )
    if not answers:
        return
    key = new_response_key()
    if supporter_id is None:
        await session.execute(upsert_insert(session, SurveyAnswerPending).values([
            {"survey_id": survey_id, "response_key": key, "question": q, "value": v,
             "tier": tier, "region": region, "weight": weight}
            for q, v in answers.items()
        ]))
        return
    await session.execute(upsert_insert(session, SurveyAnswer).values([
        {"survey_id": survey_id, "response_key": key, "question": q, "supporter_id": supporter_id,
         "value": v, "tier": tier, "region": region, "weight": weight}
        for q, v in answers.items()
    ]))


async def pending_counts(session: AsyncSession) -> dict[int, tuple[int, str]]:
    """Unmixed anonymous responses per survey: survey id → (responses, survey status)."""
    p = SurveyAnswerPending
    rows = await session.execute(
        select(p.survey_id, func.count(func.distinct(p.response_key)), Survey.status)
        .join(Survey, Survey.id == p.survey_id)
        .group_by(p.survey_id, Survey.status)
    )
    return {int(i): (int(n), str(st)) for i, n, st in rows.all()}


async def take_pending(session: AsyncSession, survey_id: int) -> list[list[dict[str, Any]]]:
    """Remove and return one survey's unmixed responses, each a list of answer rows
    (disjoint between concurrent mixers: the DELETE is the claim)."""
    p = SurveyAnswerPending
    rows = await session.execute(
        delete(p).where(p.survey_id == survey_id)
        .returning(p.response_key, p.question, p.value, p.tier, p.region, p.weight)
        .execution_options(synchronize_session=False)
    )
    responses: dict[str, list[dict[str, Any]]] = {}
    for r in rows.mappings().all():
        responses.setdefault(str(r["response_key"]), []).append(dict(r))
    return list(responses.values())


async def insert_mixed(session: AsyncSession, survey_id: int,
                       responses: Sequence[Sequence[dict[str, Any]]]) -> None:
    """Insert already shuffled responses in one statement, each under a fresh key."""
    values = []
    for response in responses:
        key = new_response_key()
        values += [{"survey_id": survey_id, "response_key": key, "question": r["question"],
                    "supporter_id": None, "value": r["value"], "tier": r["tier"],
                    "region": r["region"], "weight": r["weight"]} for r in response]
    if values:
        await session.execute(upsert_insert(session, SurveyAnswer).values(values))


async def pending_count(session: AsyncSession, survey_id: int) -> int:
    """Anonymous responses of one survey not yet mixed (so not yet in results)."""
    p = SurveyAnswerPending
    return int(await session.scalar(
        select(func.count(func.distinct(p.response_key))).where(p.survey_id == survey_id)) or 0)


@dataclass(frozen=True)
class AnswerGroup:
    """`count` identical answers: same question, value, tier, region and weight."""

    question: str
    value: str
    tier: str
    region: str | None
    weight: str
    count: int


async def answer_groups(
    session: AsyncSession, survey_id: int, questions: Sequence[str],
    areas: Sequence[str] | None = None,
) -> list[AnswerGroup]:
    """Answers to the given questions grouped in SQL (one statement)."""
    if not questions:
        return []
    a = SurveyAnswer
    rows = await session.execute(_answers_in(
        select(a.question, a.value, a.tier, a.region, a.weight, func.count())
        .where(a.survey_id == survey_id, a.question.in_(list(questions))), areas)
        .group_by(a.question, a.value, a.tier, a.region, a.weight)
    )
    return [AnswerGroup(str(q), str(v), str(t), r, str(w), int(n))
            for q, v, t, r, w, n in rows.all()]


async def crosstab_groups(
    session: AsyncSession, survey_id: int, rows: str, columns: str,
    areas: Sequence[str] | None = None,
) -> list[tuple[str, str, str, int]]:
    """(answer to `rows`, answer to `columns`, weight, responses) of the responses that
    answered both, grouped in SQL: one pass over the two questions' answers, folded per
    response (a response's answers share its key and its weight), then counted. (A
    self-join on the key depends on the planner's statistics: one bench run, right after
    the answers arrived, took 620 ms at 14,000 answers.)"""
    a = SurveyAnswer
    per_response = (
        _answers_in(
            select(func.max(case((a.question == rows, a.value))).label("r"),
                   func.max(case((a.question == columns, a.value))).label("c"),
                   func.max(a.weight).label("w"))
            .where(a.survey_id == survey_id, a.question.in_([rows, columns])), areas)
        .group_by(a.response_key)
        .subquery()
    )
    found = await session.execute(
        select(per_response.c.r, per_response.c.c, per_response.c.w, func.count())
        .where(per_response.c.r.is_not(None), per_response.c.c.is_not(None))
        .group_by(per_response.c.r, per_response.c.c, per_response.c.w)
    )
    return [(str(r), str(c), str(w), int(n)) for r, c, w, n in found.all()]


async def text_answers(session: AsyncSession, survey_id: int, question: str,
                       areas: Sequence[str] | None = None) -> list[str]:
    """Free-text answers to one question, in no particular order and with no person."""
    a = SurveyAnswer
    rows = await session.execute(_answers_in(
        select(a.value).where(a.survey_id == survey_id, a.question == question), areas)
        .order_by(a.response_key)
    )
    return [str(v) for v in rows.scalars()]


async def stored_rows(session: AsyncSession, survey_id: int) -> list[dict[str, Any]]:
    """Every answer row without supporter ids, for recounts and exports."""
    a = SurveyAnswer
    rows = await session.execute(
        select(a.response_key, a.question, a.value, a.tier, a.region, a.weight)
        .where(a.survey_id == survey_id).order_by(a.response_key, a.question)
    )
    return [dict(r) for r in rows.mappings().all()]


async def stream_rows(session: AsyncSession, survey_id: int, chunk: int = 1000,
                      areas: Sequence[str] | None = None) -> AsyncIterator[dict[str, Any]]:
    """`stored_rows` streamed (a server-side cursor on PostgreSQL): exports of large
    surveys never hold every answer in memory. ``areas``: a chapter's answers only."""
    a = SurveyAnswer
    result = await session.stream(
        _answers_in(select(a.response_key, a.question, a.value, a.tier, a.region, a.weight)
                    .where(a.survey_id == survey_id), areas)
        .order_by(a.response_key, a.question)
        .execution_options(yield_per=chunk)
    )
    async for row in result.mappings():
        yield dict(row)


# --- privacy ----------------------------------------------------------------------------------

async def export_supporter(session: AsyncSession, supporter_id: int) -> dict[str, Any]:
    """Named answers in full, unfinished progress, and (anonymous) only that they answered."""
    named = await session.execute(
        select(Survey.slug, SurveyAnswer.question, SurveyAnswer.value)
        .join(Survey, Survey.id == SurveyAnswer.survey_id)
        .where(SurveyAnswer.supporter_id == supporter_id)
        .order_by(Survey.slug, SurveyAnswer.question)
    )
    answers: dict[str, dict[str, str]] = {}
    for slug, question, value in named.all():
        answers.setdefault(slug, {})[question] = value
    progress = await session.execute(
        select(Survey.slug, SurveyProgress.state, SurveyProgress.answers,
               SurveyProgress.started_at)
        .join(Survey, Survey.id == SurveyProgress.survey_id)
        .where(SurveyProgress.supporter_id == supporter_id).order_by(SurveyProgress.id)
    )
    anonymous = await session.execute(
        select(Survey.slug).select_from(SurveyRespondent)
        .join(Survey, Survey.id == SurveyRespondent.survey_id)
        .where(SurveyRespondent.supporter_id == supporter_id, Survey.anonymous.is_(True))
        .order_by(Survey.slug)
    )
    return {
        "survey_answers": answers,
        "survey_progress": [
            {"survey": slug, "state": state, "answers": given, "started_at": at.isoformat()}
            for slug, state, given, at in progress.all()
        ],
        "anonymous_surveys_answered": list(anonymous.scalars()),
    }


async def erase_supporter(session: AsyncSession, supporter_id: int) -> None:
    """Drop progress; unlink answers and "has answered" marks (results survive)."""
    await session.execute(delete(SurveyProgress).where(SurveyProgress.supporter_id == supporter_id))
    await session.execute(
        update(SurveyAnswer).where(SurveyAnswer.supporter_id == supporter_id)
        .values(supporter_id=None).execution_options(synchronize_session=False)
    )
    await session.execute(
        update(SurveyRespondent).where(SurveyRespondent.supporter_id == supporter_id)
        .values(supporter_id=None).execution_options(synchronize_session=False)
    )


# --- API listings -----------------------------------------------------------------------------

def surveys_query(campaign_id: int | None = None) -> Select[Any]:
    stmt = select(Survey).order_by(Survey.id)
    return stmt.where(Survey.campaign_id == campaign_id) if campaign_id else stmt


def answers_query(survey_id: int, areas: list[str] | None = None) -> Select[Any]:
    """Mixed answer rows of one survey, by response then question (no insert order);
    ``areas``: a scoped organiser's only."""
    return (_answers_in(select(SurveyAnswer).where(SurveyAnswer.survey_id == survey_id), areas)
            .order_by(SurveyAnswer.response_key, SurveyAnswer.question))
