"""Polls, voters, open answers, secret ballots and native-poll mapping (SQL only, no rules).

"Has voted" is `poll_voter`, one row per (poll, supporter), for every poll. What was
voted is `poll_answer` (open polls, linked to the supporter so it can be changed) or
a secret ballot (`poll_ballot_pending`, then mixed into `poll_ballot`), which holds
no supporter id, no timestamp and a random key.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, delete, func, literal, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import supporter_counts
from storage.chapters import in_areas
from storage.db import rowcount, upsert_insert
from storage.models import (
    NativePollMap,
    Poll,
    PollAnswer,
    PollBallot,
    PollBallotPending,
    PollVoter,
    Supporter,
)


def new_ballot_id() -> str:
    """A random ballot key: 128 bits from the OS, so it orders nothing."""
    return secrets.token_hex(16)


# --- polls ------------------------------------------------------------------------------------

async def insert_poll(session: AsyncSession, **values: Any) -> Poll:
    poll = Poll(**values)
    session.add(poll)
    await session.flush()
    return poll


async def poll_by_slug(session: AsyncSession, slug: str) -> Poll | None:
    return (await session.execute(select(Poll).where(Poll.slug == slug))).scalar_one_or_none()


async def poll_by_id(session: AsyncSession, poll_id: int) -> Poll | None:
    return await session.get(Poll, poll_id)


async def polls(session: AsyncSession, status: str | None = None) -> list[Poll]:
    query = select(Poll).order_by(Poll.id)
    if status:
        query = query.where(Poll.status == status)
    return list((await session.execute(query)).scalars())


async def change_status(
    session: AsyncSession, poll_id: int, *, from_statuses: Sequence[str], to: str, now: datetime
) -> bool:
    values: dict[str, Any] = {"status": to, "updated_at": now}
    if to == "closed":
        values["closed_at"] = now
    result = await session.execute(
        update(Poll)
        .where(Poll.id == poll_id, Poll.status.in_(from_statuses))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def close_due(session: AsyncSession, now: datetime) -> list[tuple[int, str]]:
    """Close every open poll whose closing time has passed; (id, slug) of each closed."""
    rows = await session.execute(
        update(Poll)
        .where(Poll.status == "open", Poll.closes_at.is_not(None), Poll.closes_at <= now)
        .values(status="closed", closed_at=now, updated_at=now)
        .returning(Poll.id, Poll.slug)
        .execution_options(synchronize_session=False)
    )
    return [(int(i), str(s)) for i, s in rows.all()]


# --- voting -----------------------------------------------------------------------------------

def _open_condition(poll_id: int, now: datetime) -> Any:
    return (
        select(literal(1)).select_from(Poll)
        .where(Poll.id == poll_id, Poll.status == "open",
               (Poll.closes_at.is_(None)) | (Poll.closes_at > now))
        .exists()
    )


async def record_voter(
    session: AsyncSession, poll_id: int, supporter_id: int, now: datetime
) -> bool:
    """Mark "has voted" while the poll is open: True the first time, False on a repeat."""
    stmt = (
        upsert_insert(session, PollVoter)
        .from_select(
            ["poll_id", "supporter_id"],
            select(literal(poll_id), literal(supporter_id)).where(_open_condition(poll_id, now)),
        )
        .on_conflict_do_nothing(index_elements=["poll_id", "supporter_id"])
        .returning(PollVoter.id)
    )
    return (await session.execute(stmt)).first() is not None


async def has_voted(session: AsyncSession, poll_id: int, supporter_id: int) -> bool:
    found = await session.scalar(
        select(PollVoter.id).where(PollVoter.poll_id == poll_id,
                                   PollVoter.supporter_id == supporter_id)
    )
    return found is not None


async def insert_answer(
    session: AsyncSession, *, poll_id: int, supporter_id: int, choices: str, tier: str,
    region: str | None, weight: str, now: datetime,
) -> None:
    await session.execute(
        upsert_insert(session, PollAnswer).values(
            poll_id=poll_id, supporter_id=supporter_id, choices=choices, tier=tier,
            region=region, weight=weight, answered_at=now,
        )
    )


async def answer_of(session: AsyncSession, poll_id: int, supporter_id: int) -> PollAnswer | None:
    return (
        await session.execute(
            select(PollAnswer).where(PollAnswer.poll_id == poll_id,
                                     PollAnswer.supporter_id == supporter_id)
        )
    ).scalar_one_or_none()


async def change_answer(
    session: AsyncSession, *, poll_id: int, supporter_id: int, choices: str, now: datetime
) -> bool:
    """Replace an open answer while the poll is open; False if there is none or it closed."""
    result = await session.execute(
        update(PollAnswer)
        .where(PollAnswer.poll_id == poll_id, PollAnswer.supporter_id == supporter_id,
               _open_condition(poll_id, now))
        .values(choices=choices, changed_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


async def withdraw_answer(
    session: AsyncSession, *, poll_id: int, supporter_id: int, now: datetime
) -> bool:
    """Remove an open answer and its "has voted" mark (a retracted native-poll vote)."""
    result = await session.execute(
        delete(PollAnswer)
        .where(PollAnswer.poll_id == poll_id, PollAnswer.supporter_id == supporter_id,
               _open_condition(poll_id, now))
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return False
    await session.execute(
        delete(PollVoter).where(PollVoter.poll_id == poll_id,
                                PollVoter.supporter_id == supporter_id)
    )
    return True


async def insert_pending_ballot(
    session: AsyncSession, *, poll_id: int, choices: str, tier: str, region: str | None,
    weight: str,
) -> None:
    """A secret ballot: no supporter, no time; the key is random."""
    await session.execute(
        upsert_insert(session, PollBallotPending).values(
            poll_id=poll_id, id=new_ballot_id(), choices=choices, tier=tier, region=region,
            weight=weight,
        )
    )


async def pending_counts(session: AsyncSession) -> dict[int, tuple[int, str]]:
    """Unmixed secret ballots per poll: poll id → (count, poll status)."""
    rows = await session.execute(
        select(PollBallotPending.poll_id, func.count(), Poll.status)
        .join(Poll, Poll.id == PollBallotPending.poll_id)
        .group_by(PollBallotPending.poll_id, Poll.status)
    )
    return {int(p): (int(n), str(s)) for p, n, s in rows.all()}


async def take_pending(session: AsyncSession, poll_id: int) -> list[dict[str, Any]]:
    """Remove and return one poll's unmixed ballots (disjoint between concurrent mixers)."""
    rows = await session.execute(
        delete(PollBallotPending)
        .where(PollBallotPending.poll_id == poll_id)
        .returning(PollBallotPending.choices, PollBallotPending.tier, PollBallotPending.region,
                   PollBallotPending.weight)
        .execution_options(synchronize_session=False)
    )
    return [dict(r) for r in rows.mappings().all()]


async def insert_ballots(
    session: AsyncSession, poll_id: int, ballots: list[dict[str, Any]]
) -> None:
    """Insert already shuffled ballots in one statement, each under a fresh random key."""
    if not ballots:
        return
    await session.execute(
        upsert_insert(session, PollBallot).values([
            {"poll_id": poll_id, "id": new_ballot_id(), "choices": b["choices"],
             "tier": b["tier"], "region": b["region"], "weight": b["weight"]}
            for b in ballots
        ])
    )


# --- tallies ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TallyGroup:
    """`count` identical rows: same choices, tier, region and weight."""

    choices: str
    tier: str
    region: str | None
    weight: str
    count: int


def _rows_source(poll: Poll, districts: bool = False) -> Any:
    """The stored rows; with `districts`, each with the voter's district now for an open
    answer and none for a secret ballot (linked to nobody: it counts for whole provinces
    only). Only a chapter's figures pay for that join."""
    if poll.secret:
        cols = ("choices", "tier", "region", "weight")
        extra = [literal(None, String).label("district")] if districts else []
        return union_all(
            select(*(getattr(PollBallot, c) for c in cols), *extra)
            .where(PollBallot.poll_id == poll.id),
            select(*(getattr(PollBallotPending, c) for c in cols), *extra)
            .where(PollBallotPending.poll_id == poll.id),
        ).subquery()
    query = select(PollAnswer.choices, PollAnswer.tier, PollAnswer.region, PollAnswer.weight,
                   PollAnswer.supporter_id).where(PollAnswer.poll_id == poll.id)
    if districts:
        query = query.add_columns(Supporter.district).outerjoin(
            Supporter, Supporter.id == PollAnswer.supporter_id)
    return query.subquery()


async def tally_groups(session: AsyncSession, poll: Poll,
                       areas: Sequence[str] | None = None) -> list[TallyGroup]:
    """The stored rows grouped in SQL (one statement); the rules weigh them exactly.
    ``areas`` keeps to a chapter's (storage.chapters.in_areas)."""
    src = _rows_source(poll, districts=areas is not None)
    query = select(src.c.choices, src.c.tier, src.c.region, src.c.weight, func.count())
    if areas is not None:
        query = query.where(in_areas(areas, src.c.region, src.c.district))
    rows = await session.execute(
        query.group_by(src.c.choices, src.c.tier, src.c.region, src.c.weight)
    )
    return [TallyGroup(str(c), str(t), r, str(w), int(n)) for c, t, r, w, n in rows.all()]


async def stored_rows(session: AsyncSession, poll: Poll,
                      areas: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every stored answer or ballot (no supporter ids), for anyone to recompute results.

    `erased` says whether an open answer's supporter used /forget (its link is gone); a
    secret ballot never had one, so it is False there. The caller decides what to withhold.
    """
    src = _rows_source(poll, districts=areas is not None)
    erased = (src.c.supporter_id.is_(None) if not poll.secret
              else literal(False)).label("erased")
    query = select(src.c.choices, src.c.tier, src.c.region, src.c.weight, erased)
    if areas is not None:
        query = query.where(in_areas(areas, src.c.region, src.c.district))
    rows = await session.execute(
        query.order_by(src.c.choices, src.c.tier, src.c.region, src.c.weight)
    )
    return [dict(r) for r in rows.mappings().all()]


async def voter_count(session: AsyncSession, poll_id: int) -> int:
    """From the counter kept on write (storage/supporter_counts), not by counting rows."""
    return await supporter_counts.poll_voters(session, poll_id)


async def voter_ids(session: AsyncSession, poll_id: int) -> list[int]:
    """Supporters (still linked) who voted: whom to send the result to."""
    rows = await session.execute(
        select(PollVoter.supporter_id)
        .where(PollVoter.poll_id == poll_id, PollVoter.supporter_id.is_not(None))
        .order_by(PollVoter.supporter_id)
    )
    return [int(s) for s in rows.scalars() if s is not None]


# --- native Telegram polls --------------------------------------------------------------------

async def map_native(
    session: AsyncSession, *, bot_id: int, telegram_poll_id: str, poll_id: int,
    supporter_id: int | None, chat_id: int, message_id: int, now: datetime,
) -> None:
    await session.execute(
        upsert_insert(session, NativePollMap)
        .values(bot_id=bot_id, telegram_poll_id=telegram_poll_id, poll_id=poll_id,
                supporter_id=supporter_id, chat_id=chat_id, message_id=message_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["bot_id", "telegram_poll_id"])
    )


async def native_lookup(
    session: AsyncSession, bot_id: int, telegram_poll_id: str
) -> NativePollMap | None:
    return await session.get(NativePollMap, (bot_id, telegram_poll_id))


async def native_messages(session: AsyncSession, poll_id: int) -> list[NativePollMap]:
    rows = await session.execute(select(NativePollMap).where(NativePollMap.poll_id == poll_id))
    return list(rows.scalars())


# --- privacy ----------------------------------------------------------------------------------

async def export_supporter(session: AsyncSession, supporter_id: int) -> dict[str, Any]:
    """Open answers in full; for secret polls only that the person voted (nothing else exists)."""
    answers = await session.execute(
        select(Poll.slug, PollAnswer.choices, PollAnswer.answered_at, PollAnswer.changed_at)
        .join(Poll, Poll.id == PollAnswer.poll_id)
        .where(PollAnswer.supporter_id == supporter_id)
        .order_by(PollAnswer.id)
    )
    voted = await session.execute(
        select(Poll.slug, Poll.secret)
        .select_from(PollVoter)
        .join(Poll, Poll.id == PollVoter.poll_id)
        .where(PollVoter.supporter_id == supporter_id)
        .order_by(PollVoter.id)
    )
    return {
        "poll_answers": [
            {"poll": slug, "choices": [int(c) for c in choices.split(",") if c],
             "at": at.isoformat(), "changed_at": changed.isoformat() if changed else None}
            for slug, choices, at, changed in answers.all()
        ],
        "secret_ballots_cast": [slug for slug, secret in voted.all() if secret],
    }


async def erase_supporter(session: AsyncSession, supporter_id: int) -> None:
    """Unlink answers and "has voted" marks (tallies survive); forget native-poll mappings.

    Answer times are cut to the day, as for the supporter row: an exact time could be
    matched with other records to single the person out.
    """
    answers = await session.execute(
        select(PollAnswer.id, PollAnswer.answered_at).where(PollAnswer.supporter_id == supporter_id)
    )
    for answer_id, at in answers.all():
        await session.execute(
            update(PollAnswer).where(PollAnswer.id == answer_id)
            .values(supporter_id=None, changed_at=None,
                    answered_at=at.replace(hour=0, minute=0, second=0, microsecond=0))
            .execution_options(synchronize_session=False)
        )
    await session.execute(
        update(PollVoter).where(PollVoter.supporter_id == supporter_id)
        .values(supporter_id=None).execution_options(synchronize_session=False)
    )
    await session.execute(delete(NativePollMap).where(NativePollMap.supporter_id == supporter_id))
