"""Ideas, backs, drafts and per-campaign idea settings (SQL only, no rules)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import upsert_insert
from storage.models import ChannelIdentity, Idea, IdeaBacking, IdeaDraft, IdeaSettings, Supporter

# --- settings ---------------------------------------------------------------------------------

async def settings_of(session: AsyncSession, campaign_id: int) -> IdeaSettings | None:
    return await session.get(IdeaSettings, campaign_id)


async def set_settings(session: AsyncSession, campaign_id: int, *, threshold: int | None,
                       backs_per_supporter: int | None) -> None:
    stmt = upsert_insert(session, IdeaSettings).values(
        campaign_id=campaign_id, threshold=threshold, backs_per_supporter=backs_per_supporter)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["campaign_id"],
        set_={"threshold": stmt.excluded.threshold,
              "backs_per_supporter": stmt.excluded.backs_per_supporter}))


# --- ideas ------------------------------------------------------------------------------------

async def insert_idea(session: AsyncSession, **values: Any) -> Idea:
    idea = Idea(**values)
    session.add(idea)
    await session.flush()
    return idea


async def idea_by_id(session: AsyncSession, idea_id: int) -> Idea | None:
    return await session.get(Idea, idea_id)


async def ideas(session: AsyncSession, campaign_id: int, statuses: Sequence[str],
                *, limit: int = 200) -> list[Idea]:
    rows = await session.execute(
        select(Idea).where(Idea.campaign_id == campaign_id, Idea.status.in_(list(statuses)))
        .order_by(Idea.back_count.desc(), Idea.id).limit(limit))
    return list(rows.scalars())


async def texts(session: AsyncSession, campaign_id: int,
                statuses: Sequence[str]) -> list[tuple[int, str, str]]:
    """(id, title, body) of a campaign's ideas: what similarity is computed against."""
    rows = await session.execute(
        select(Idea.id, Idea.title, Idea.body)
        .where(Idea.campaign_id == campaign_id, Idea.status.in_(list(statuses)))
        .order_by(Idea.id))
    return [(int(i), str(t), str(b)) for i, t, b in rows.all()]


async def moderate(session: AsyncSession, idea_id: int, *, to: str, reason: str | None,
                   actor: str, now: datetime) -> bool:
    """pending → approved | rejected, once (a second moderator changes nothing)."""
    result = await session.execute(
        update(Idea).where(Idea.id == idea_id, Idea.status == "pending")
        .values(status=to, moderation_reason=reason, moderated_by=actor, moderated_at=now,
                updated_at=now)
        .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def set_answer(session: AsyncSession, idea_id: int, *, answer: str, text: str,
                     now: datetime) -> bool:
    result = await session.execute(
        update(Idea).where(Idea.id == idea_id, Idea.status.in_(("approved", "answered")))
        .values(status="answered", answer=answer, answer_text=text, answered_at=now,
                updated_at=now)
        .execution_options(synchronize_session=False))
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        return False
    # A new answer is delivered to every backer again, once.
    await session.execute(
        update(IdeaBacking).where(IdeaBacking.idea_id == idea_id)
        .values(answer_sent_at=None).execution_options(synchronize_session=False))
    return True


# --- backs ------------------------------------------------------------------------------------

async def add_back(session: AsyncSession, *, idea_id: int, campaign_id: int, supporter_id: int,
                   tier: str, region: str | None, now: datetime) -> int | None:
    """Back once: the idea's new count, or None when this person had already backed it.
    The unique (idea, supporter) row decides, so concurrent taps count once."""
    inserted = await session.execute(
        upsert_insert(session, IdeaBacking)
        .values(idea_id=idea_id, campaign_id=campaign_id, supporter_id=supporter_id, tier=tier,
                region=region, created_at=now)
        .on_conflict_do_nothing(index_elements=["idea_id", "supporter_id"])
        .returning(IdeaBacking.id))
    if inserted.first() is None:
        return None
    count = await session.execute(
        update(Idea).where(Idea.id == idea_id)
        .values(back_count=Idea.back_count + 1, updated_at=now)
        .returning(Idea.back_count).execution_options(synchronize_session=False))
    return int(count.scalar_one())


async def remove_back(session: AsyncSession, *, idea_id: int, supporter_id: int,
                      now: datetime) -> bool:
    removed = await session.execute(
        delete(IdeaBacking)
        .where(IdeaBacking.idea_id == idea_id, IdeaBacking.supporter_id == supporter_id)
        .returning(IdeaBacking.id).execution_options(synchronize_session=False))
    if removed.first() is None:
        return False
    await session.execute(
        update(Idea).where(Idea.id == idea_id)
        .values(back_count=Idea.back_count - 1, updated_at=now)
        .execution_options(synchronize_session=False))
    return True


async def has_backed(session: AsyncSession, idea_id: int, supporter_id: int) -> bool:
    return await session.scalar(
        select(IdeaBacking.id).where(IdeaBacking.idea_id == idea_id,
                                     IdeaBacking.supporter_id == supporter_id)) is not None


async def lock_backer(session: AsyncSession, supporter_id: int) -> None:
    """Hold this supporter's backs until the transaction ends, so a limit check and the
    insert after it are one step: concurrent taps on different ideas queue up here instead
    of all counting the same number of backs and all inserting.

    PostgreSQL: the supporter's row FOR UPDATE (other supporters are not held up).
    SQLite has one writer: a write that changes nothing takes the database's write lock
    now, before the count, rather than at the insert (busy_timeout makes the others wait).
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(Supporter.id).where(Supporter.id == supporter_id).with_for_update())
    else:
        await session.execute(text("UPDATE supporter SET status = status WHERE id = :id"),
                              {"id": supporter_id})


async def backs_by(session: AsyncSession, campaign_id: int, supporter_id: int) -> int:
    return int(await session.scalar(
        select(func.count()).select_from(IdeaBacking)
        .where(IdeaBacking.campaign_id == campaign_id,
               IdeaBacking.supporter_id == supporter_id)) or 0)


async def mark_threshold(session: AsyncSession, idea_id: int, threshold: int,
                         now: datetime) -> bool:
    """True for exactly one caller: the one whose back took the idea to the threshold."""
    result = await session.execute(
        update(Idea).where(Idea.id == idea_id, Idea.threshold_reached_at.is_(None),
                           Idea.back_count >= threshold)
        .values(threshold_reached_at=now).execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def back_counts(session: AsyncSession, idea_id: int) -> dict[str, dict[str, int]]:
    """Backs by tier and by region (region "" = unknown), counted from the rows."""
    rows = await session.execute(
        select(IdeaBacking.tier, IdeaBacking.region, func.count())
        .where(IdeaBacking.idea_id == idea_id)
        .group_by(IdeaBacking.tier, IdeaBacking.region))
    by_tier: dict[str, int] = {}
    by_region: dict[str, int] = {}
    for tier, region, n in rows.all():
        by_tier[str(tier)] = by_tier.get(str(tier), 0) + int(n)
        by_region[region or ""] = by_region.get(region or "", 0) + int(n)
    return {"by_tier": by_tier, "by_region": by_region}


async def claim_answer_deliveries(
    session: AsyncSession, now: datetime, limit: int = 500, *, bot_id: int | None = None,
) -> list[tuple[int, int, str, int, int]]:
    """Claim backs of answered ideas whose backer has not been sent the answer:
    (idea id, supporter id, language, bot id, chat id). The claim is the UPDATE."""
    picked = (
        select(IdeaBacking.id)
        .join(Idea, Idea.id == IdeaBacking.idea_id)
        .where(Idea.status == "answered", IdeaBacking.answer_sent_at.is_(None),
               IdeaBacking.supporter_id.is_not(None))
        .order_by(IdeaBacking.id).limit(limit))
    if bot_id is not None:
        picked = picked.where(IdeaBacking.supporter_id.in_(
            select(Supporter.id).where(Supporter.bot_id == bot_id)))
    if session.get_bind().dialect.name == "postgresql":
        picked = picked.with_for_update(skip_locked=True, of=IdeaBacking)
    claimed = await session.execute(
        update(IdeaBacking).where(IdeaBacking.id.in_(picked.scalar_subquery()),
                                  IdeaBacking.answer_sent_at.is_(None))
        .values(answer_sent_at=now)
        .returning(IdeaBacking.idea_id, IdeaBacking.supporter_id)
        .execution_options(synchronize_session=False))
    pairs = [(int(i), int(s or 0)) for i, s in claimed.all()]
    if not pairs:
        return []
    rows = await session.execute(
        select(Supporter.id, Supporter.language, ChannelIdentity.bot_id, ChannelIdentity.chat_id)
        .join(ChannelIdentity, ChannelIdentity.supporter_id == Supporter.id)
        .where(Supporter.id.in_([s for _, s in pairs]), Supporter.status == "active",
               ChannelIdentity.reachable.is_(True), ChannelIdentity.chat_id.is_not(None)))
    where = {int(i): (str(lang), int(b), int(c or 0)) for i, lang, b, c in rows.all()}
    return [(i, s, *where[s]) for i, s in sorted(pairs) if s in where]


async def reach(session: AsyncSession, supporter_id: int) -> tuple[str, int, int] | None:
    """(language, bot id, chat id) to message one supporter, if reachable."""
    row = (await session.execute(
        select(Supporter.language, ChannelIdentity.bot_id, ChannelIdentity.chat_id)
        .join(ChannelIdentity, ChannelIdentity.supporter_id == Supporter.id)
        .where(Supporter.id == supporter_id, Supporter.status == "active",
               ChannelIdentity.reachable.is_(True), ChannelIdentity.chat_id.is_not(None))
        .limit(1))).first()
    return (str(row[0]), int(row[1]), int(row[2] or 0)) if row else None


# --- drafts -----------------------------------------------------------------------------------

async def draft_of(session: AsyncSession, supporter_id: int) -> IdeaDraft | None:
    return await session.get(IdeaDraft, supporter_id)


async def start_draft(session: AsyncSession, supporter_id: int, campaign_id: int,
                      now: datetime) -> IdeaDraft:
    """A fresh draft (an unfinished earlier one is replaced)."""
    await session.execute(delete(IdeaDraft).where(IdeaDraft.supporter_id == supporter_id))
    draft = IdeaDraft(supporter_id=supporter_id, campaign_id=campaign_id, step="title",
                      similar=[], updated_at=now)
    session.add(draft)
    await session.flush()
    return draft


async def delete_draft(session: AsyncSession, supporter_id: int) -> None:
    await session.execute(delete(IdeaDraft).where(IdeaDraft.supporter_id == supporter_id))


# --- privacy ----------------------------------------------------------------------------------

async def export_supporter(session: AsyncSession, supporter_id: int) -> dict[str, Any]:
    proposed = await session.execute(
        select(Idea.id, Idea.title, Idea.body, Idea.status, Idea.created_at)
        .where(Idea.proposer_id == supporter_id).order_by(Idea.id))
    backed = await session.execute(
        select(IdeaBacking.idea_id, IdeaBacking.created_at)
        .where(IdeaBacking.supporter_id == supporter_id).order_by(IdeaBacking.id))
    draft = await draft_of(session, supporter_id)
    return {
        "ideas_proposed": [{"id": i, "title": t, "text": b, "status": s, "at": at.isoformat()}
                           for i, t, b, s, at in proposed.all()],
        "ideas_backed": [{"idea": i, "at": at.isoformat()} for i, at in backed.all()],
        "idea_draft": ({"title": draft.title, "text": draft.body} if draft else None),
    }


async def erase_supporter(session: AsyncSession, supporter_id: int) -> None:
    """Ideas lose their author, backs their backer; the texts and counts stay."""
    await delete_draft(session, supporter_id)
    await session.execute(
        update(Idea).where(Idea.proposer_id == supporter_id).values(proposer_id=None)
        .execution_options(synchronize_session=False))
    await session.execute(
        update(IdeaBacking).where(IdeaBacking.supporter_id == supporter_id)
        .values(supporter_id=None).execution_options(synchronize_session=False))


def ideas_query(campaign_id: int | None, statuses: Sequence[str]) -> Select[Any]:
    """Ideas for the API, oldest first (never their proposers: the caller shapes rows)."""
    stmt = select(Idea).where(Idea.status.in_(list(statuses))).order_by(Idea.id)
    return stmt.where(Idea.campaign_id == campaign_id) if campaign_id else stmt
