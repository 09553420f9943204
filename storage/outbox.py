"""The broadcast outbox: materialise, claim, record outcomes (SQL only, set-based).

Every function here runs a fixed number of statements per call, whatever the
number of rows: one INSERT .. SELECT to materialise an audience, one UPDATE ..
RETURNING to claim a batch, one statement per outcome kind to record a batch.

Claiming differs per backend. PostgreSQL picks rows with ``FOR UPDATE SKIP
LOCKED`` in a CTE, so any number of workers claim disjoint batches without
waiting for each other, and the same statement joins the supporter to skip
whoever opted out. SQLite has a single writer, so an UPDATE .. RETURNING on a
bounded id set is already exclusive; the opt-out check follows in the same
transaction, which holds the write lock until it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    Select,
    Table,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.chapters import in_areas
from storage.models import (
    Bot,
    Broadcast,
    ChannelIdentity,
    OutboxMessage,
    Supporter,
    SupporterTag,
)
from storage.models.base import UTCDateTime

MAX_ERROR = 200
# Core tables, not ORM entities: bulk statements here must not try to synchronise
# objects in the session, and executemany must stay a plain executemany.
OUT: Table = OutboxMessage.__table__  # type: ignore[assignment]
IDENT: Table = ChannelIdentity.__table__  # type: ignore[assignment]
BCAST: Table = Broadcast.__table__  # type: ignore[assignment]
OPEN_STATUSES = ("pending", "inflight")


def _dialect(session: AsyncSession) -> str:
    bind = session.get_bind()
    return bind.dialect.name


# --- audience -------------------------------------------------------------------------------

@dataclass(frozen=True)
class AudienceQuery:
    """Filters on the active supporters of one bot; empty tuples mean "any"."""

    regions: tuple[str, ...] = ()
    # (province, district code): lives in any one of them
    districts: tuple[tuple[str, str], ...] = ()
    tiers: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    signed: tuple[str, ...] = ()  # petition slugs: signed every one of them
    not_signed: tuple[str, ...] = ()  # petition slugs: signed none of them
    answered: tuple[str, ...] = ()  # poll slugs
    not_answered: tuple[str, ...] = ()
    rsvp: tuple[str, ...] = ()  # "event-slug" or "event-slug:going|maybe|waitlisted"
    attended: tuple[str, ...] = ()  # event slugs: checked in
    no_show: tuple[str, ...] = ()  # event slugs: going, never checked in
    survey_done: tuple[str, ...] = ()  # survey slugs: submitted every one of them
    survey_not_done: tuple[str, ...] = ()  # survey slugs: submitted none of them
    # (survey slug, question key, stored value): a named answer, any of them
    answers: tuple[tuple[str, str, str], ...] = ()
    # A scoped organiser's areas (provinces or districts): storage.chapters.in_areas.
    areas: tuple[str, ...] = ()


def _petition_filters(query: AudienceQuery) -> list[Any]:
    """Conditions on signatures and poll answers (models owned by the petitions feature)."""
    conds: list[Any] = []
    if query.signed or query.not_signed:
        from storage.models.petitions import Petition, Signature

        for slug in query.signed:
            conds.append(exists().where(
                Signature.supporter_id == Supporter.id,
                Signature.valid.is_(True),
                Signature.petition_id == select(Petition.id).where(Petition.slug == slug)
                .scalar_subquery(),
            ))
        if query.not_signed:
            conds.append(not_(exists().where(
                Signature.supporter_id == Supporter.id,
                Signature.valid.is_(True),
                Signature.petition_id.in_(
                    select(Petition.id).where(Petition.slug.in_(query.not_signed))
                ),
            )))
    if query.answered or query.not_answered:
        from storage.models.petitions import Poll, PollVoter

        for slug in query.answered:
            conds.append(exists().where(
                PollVoter.supporter_id == Supporter.id,
                PollVoter.poll_id == select(Poll.id).where(Poll.slug == slug).scalar_subquery(),
            ))
        if query.not_answered:
            conds.append(not_(exists().where(
                PollVoter.supporter_id == Supporter.id,
                PollVoter.poll_id.in_(select(Poll.id).where(Poll.slug.in_(query.not_answered))),
            )))
    return conds


def _survey_filters(query: AudienceQuery) -> list[Any]:
    """Conditions on survey submissions and named answers (the surveys feature's models)."""
    if not (query.survey_done or query.survey_not_done or query.answers):
        return []
    from storage.models.surveys import Survey, SurveyAnswer, SurveyRespondent

    conds: list[Any] = []
    for slug in query.survey_done:
        conds.append(exists().where(
            SurveyRespondent.supporter_id == Supporter.id,
            SurveyRespondent.survey_id == select(Survey.id).where(Survey.slug == slug)
            .scalar_subquery(),
        ))
    if query.survey_not_done:
        conds.append(not_(exists().where(
            SurveyRespondent.supporter_id == Supporter.id,
            SurveyRespondent.survey_id.in_(
                select(Survey.id).where(Survey.slug.in_(query.survey_not_done))),
        )))
    if query.answers:
        # A multiple-choice answer is stored as sorted indexes "0,2": the value matches
        # alone or as one element of that list (values are bound, never formatted in).
        alternatives = []
        for slug, question, value in query.answers:
            padded = literal(",") + SurveyAnswer.value + literal(",")
            alternatives.append(and_(
                SurveyAnswer.survey_id == select(Survey.id).where(Survey.slug == slug)
                .scalar_subquery(),
                SurveyAnswer.question == question,
                or_(SurveyAnswer.value == value,
                    padded.contains("," + value + ",", autoescape=True)),
            ))
        conds.append(exists().where(SurveyAnswer.supporter_id == Supporter.id,
                                    or_(*alternatives)))
    return conds


def audience_select(
    bot_id: int, query: AudienceQuery, *, several_bots: bool = True
) -> Select[int, int, str, int | None, int]:
    """One reachable identity per matching active supporter and channel.

    The audience is the bot's supporters (everyone with an identity on it). Someone who
    talks to several bots of the channel gets the message once: through this bot, or,
    if they blocked it, through the enabled bot they used last.
    """
    ci = ChannelIdentity
    member = aliased(ChannelIdentity, name="member")
    conds: list[Any] = [
        Supporter.status == "active",
        ci.reachable.is_(True),
        ci.chat_id.is_not(None),
    ]
    if several_bots:
        conds += [
            exists().where(member.supporter_id == Supporter.id, member.bot_id == bot_id),
            Bot.enabled.is_(True),
            Bot.channel == select(Bot.channel).where(Bot.id == bot_id).scalar_subquery(),
        ]
    else:
        conds.append(Supporter.bot_id == bot_id)
    if query.regions:
        conds.append(Supporter.region.in_(query.regions))
    if query.districts:
        conds.append(or_(*(and_(Supporter.region == province, Supporter.district == code)
                           for province, code in query.districts)))
    if query.areas:
        conds.append(in_areas(query.areas))
    if query.tiers:
        conds.append(Supporter.tier.in_(query.tiers))
    if query.languages:
        conds.append(Supporter.language.in_(query.languages))
    if query.channels:
        conds.append(ci.channel.in_(query.channels))
    if query.tags:
        conds.append(exists().where(
            SupporterTag.supporter_id == Supporter.id, SupporterTag.tag.in_(query.tags)
        ))
    conds.extend(_petition_filters(query))
    if query.rsvp or query.attended or query.no_show:
        from storage.events import audience_filters

        conds.extend(audience_filters(query.rsvp, query.attended, query.no_show))
    conds.extend(_survey_filters(query))
    if not several_bots:
        # The one bot of its channel: each identity is the only way to its supporter, and
        # the plain join (as before there were several bots) is the cheapest.
        return (
            select(Supporter.id.label("supporter_id"), ci.id.label("identity_id"),
                   ci.channel.label("channel"), ci.chat_id.label("chat_id"),
                   ci.bot_id.label("bot_id"))
            .join(ci, and_(ci.supporter_id == Supporter.id, ci.bot_id == bot_id))
            .where(*conds)
        )
    pick = func.row_number().over(
        partition_by=(ci.supporter_id, ci.channel),
        order_by=(case((ci.bot_id == bot_id, 0), else_=1),
                  func.coalesce(ci.last_used_at, ci.created_at).desc(), ci.id.desc()),
    )
    reach = (
        select(Supporter.id.label("supporter_id"), ci.id.label("identity_id"),
               ci.channel.label("channel"), ci.chat_id.label("chat_id"),
               ci.bot_id.label("bot_id"), pick.label("pick"))
        .join(ci, ci.supporter_id == Supporter.id)
        .join(Bot, Bot.id == ci.bot_id)
        .where(*conds)
        .subquery("reach")
    )
    return select(reach.c.supporter_id, reach.c.identity_id, reach.c.channel, reach.c.chat_id,
                  reach.c.bot_id).where(reach.c.pick == 1)


async def several_bots(session: AsyncSession, bot_id: int) -> bool:
    """Whether another bot shares this bot's channel (then people may be reached twice)."""
    same = aliased(Bot, name="same")
    found = await session.execute(
        select(Bot.id).join(same, same.channel == Bot.channel)
        .where(same.id == bot_id, Bot.id != bot_id).limit(1))
    return found.first() is not None


def audience_count_query(bot_id: int, query: AudienceQuery, *,
                         several_bots: bool = True) -> Select[int]:
    """The count `audience_size` runs (public so a test can EXPLAIN it)."""
    sub = audience_select(bot_id, query, several_bots=several_bots).subquery()
    return select(func.count()).select_from(sub)


async def audience_size(session: AsyncSession, bot_id: int, query: AudienceQuery) -> int:
    """How many (supporter, channel) messages a broadcast to this audience would send."""
    narrowed = (bool(query.regions or query.districts or query.tiers)
                and _dialect(session) == "postgresql")
    if narrowed:
        # Region and tier narrow a million supporters to a few ten thousand by an
        # index range (ix_supporter_area). Every other filter is then cheapest as
        # a probe per candidate (an index-only lookup each), but PostgreSQL hashes the
        # whole filter table instead when the filter is common: a tag half the list
        # carries is 500,000 rows read to keep 18,000 (0.3-0.5 s at a million against
        # 0.17-0.22 s by probes, same machine). Off for this statement only.
        await session.execute(text("SET LOCAL enable_hashjoin = off"))
    several = await several_bots(session, bot_id)
    count = int((await session.execute(
        audience_count_query(bot_id, query, several_bots=several))).scalar_one())
    if narrowed:
        await session.execute(text("SET LOCAL enable_hashjoin TO DEFAULT"))
    return count


def _spread_expr(dialect: str, start: datetime, window_s: float, order_col: Any) -> Any:
    """not_before spread evenly from ``start`` over ``window_s`` seconds, in supporter order."""
    offset = (
        cast(func.row_number().over(order_by=order_col) - 1, Float)
        * literal(window_s, Float)
        / func.count().over()
    )
    if dialect == "postgresql":
        return literal(start, UTCDateTime()) + func.make_interval(0, 0, 0, 0, 0, 0, offset)
    # SQLite keeps datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text (SQLAlchemy's format);
    # build exactly that from epoch seconds so comparisons stay lexical and correct.
    epoch = literal(start.timestamp(), Float) + offset
    whole = cast(epoch, Integer)
    return func.strftime("%Y-%m-%d %H:%M:%S", whole, "unixepoch").op("||")(
        func.printf(".%06d", cast((epoch - whole) * 1_000_000, Integer))
    )


_STALE_TABLES = text("""
SELECT relname FROM pg_stat_user_tables
WHERE relname IN ('supporter', 'channel_identity', 'supporter_tag', 'outbox_message')
  AND (last_analyze IS NULL AND last_autoanalyze IS NULL
       OR n_mod_since_analyze > 1000 + n_live_tup / 5)
""")


async def refresh_statistics(session: AsyncSession) -> list[str]:
    """ANALYZE the audience tables if they changed a lot since PostgreSQL last looked.

    Right after a bulk import the planner still believes the tables are empty and
    joins a million supporters by nested loops (minutes instead of a second);
    autovacuum would fix that, but only later. ANALYZE samples, so it is cheap.
    """
    if _dialect(session) != "postgresql":
        return []
    stale = [str(r) for r in (await session.execute(_STALE_TABLES)).scalars()]
    for name in stale:
        try:
            async with session.begin_nested():
                await session.execute(text(f'ANALYZE "{name}"'))
        except Exception:  # not the owner: carry on with the statistics there are
            continue
    return stale


async def materialise(
    session: AsyncSession,
    *,
    broadcast_id: int,
    bot_id: int,
    query: AudienceQuery,
    send_at: datetime,
    window_end: datetime | None,
) -> int:
    """Write the outbox rows of a broadcast in one INSERT .. SELECT; a repeat adds nothing."""
    dialect = _dialect(session)
    await refresh_statistics(session)
    several = await several_bots(session, bot_id)
    aud = audience_select(bot_id, query, several_bots=several).subquery("aud")
    window_s = (window_end - send_at).total_seconds() if window_end else 0.0
    if window_s > 0:
        not_before: Any = _spread_expr(dialect, send_at, window_s, aud.c.supporter_id)
    else:
        not_before = literal(send_at, UTCDateTime())
    source = select(
        literal(broadcast_id).label("broadcast_id"),
        aud.c.bot_id,
        aud.c.supporter_id,
        aud.c.identity_id,
        aud.c.channel,
        aud.c.chat_id,
        literal("pending").label("status"),
        literal(0).label("attempts"),
        not_before.label("not_before"),
    ).where(aud.c.supporter_id.is_not(None))  # SQLite needs a WHERE before ON CONFLICT
    cols = ["broadcast_id", "bot_id", "supporter_id", "identity_id", "channel", "chat_id",
            "status", "attempts", "not_before"]
    insert_fn = pg_insert if dialect == "postgresql" else sqlite_insert
    rows = await _insert_outbox(session, broadcast_id, insert_fn(OUT), cols, source,
                                aud.c.supporter_id)
    if several:
        # Which bots the rows go out through: the workers open a lane for each.
        via = sorted(int(b) for b in (await session.execute(
            select(OUT.c.bot_id).where(OUT.c.broadcast_id == broadcast_id).distinct()
        )).scalars())
        await session.execute(
            update(BCAST).where(BCAST.c.id == broadcast_id).values(via_bot_ids=via or None))
    return rows


async def _insert_outbox(session: AsyncSession, broadcast_id: int, stmt: Any, cols: list[str],
                         source: Select[Any], supporter_id: Any) -> int:
    """Insert the rows of ``source``, skipping those the broadcast already has.

    A broadcast is materialised once, by the scheduler that moved it to sending (that
    UPDATE's row lock keeps a second one out until the first has committed), so its
    outbox is nearly always empty here, and then a plain INSERT does: ON CONFLICT DO
    NOTHING checks the unique index for every row before inserting it (a speculative
    insertion each), 30 % of the time at a million rows. Rows in supporter order go
    into the unique index (supporter first) in its order, one leaf after the next,
    and the plan reads both tables in that order instead of hashing one of them
    (together 13.7 -> about 8 s of server time at a million, see the README). Should
    the broadcast have rows after all, or someone insert them meanwhile, the statement
    falls back to skipping the duplicates: the unique constraint still holds either way.
    """
    has_rows = (await session.execute(
        select(OUT.c.id).where(OUT.c.broadcast_id == broadcast_id).limit(1))).first()
    ordered = source.order_by(supporter_id)
    if has_rows is None:
        try:
            async with session.begin_nested():
                result = await session.execute(stmt.from_select(cols, ordered))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
        except IntegrityError:
            pass  # inserted meanwhile: skip those rows, as below
    result = await session.execute(stmt.from_select(cols, ordered).on_conflict_do_nothing())
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- scheduler claims -----------------------------------------------------------------------

async def claim_due_broadcasts(
    session: AsyncSession, *, owner: str, now: datetime, until: datetime, limit: int = 10
) -> list[int]:
    """Claim scheduled broadcasts whose time has come; concurrent schedulers get disjoint sets."""
    pick = (
        select(BCAST.c.id)
        .where(
            BCAST.c.status == "scheduled",
            BCAST.c.send_at <= now,
            or_(BCAST.c.claimed_until.is_(None), BCAST.c.claimed_until < now),
        )
        .order_by(BCAST.c.send_at, BCAST.c.id)
        .limit(limit)
    )
    if _dialect(session) == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    result = await session.execute(
        update(BCAST)
        .where(BCAST.c.id.in_(pick.scalar_subquery()))
        .values(claimed_by=owner, claimed_until=until)
        .returning(BCAST.c.id)
    )
    return sorted(int(i) for i in result.scalars())


@dataclass(frozen=True)
class Starting:
    bot_id: int
    audience: dict[str, Any]
    send_at: datetime
    window_end: datetime | None


async def begin_sending(
    session: AsyncSession, broadcast_id: int, *, owner: str, now: datetime
) -> Starting | None:
    """Move a broadcast this scheduler claimed from scheduled to sending; None if not ours."""
    row = (await session.execute(
        update(BCAST)
        .where(BCAST.c.id == broadcast_id, BCAST.c.status == "scheduled",
               BCAST.c.claimed_by == owner)
        .values(status="sending", started_at=now, claimed_by=None, claimed_until=None)
        .returning(BCAST.c.bot_id, BCAST.c.audience, BCAST.c.send_at, BCAST.c.window_end)
    )).first()
    if row is None:
        return None
    return Starting(int(row[0]), dict(row[1] or {}), row[2] or now, row[3])


async def set_audience_size(session: AsyncSession, broadcast_id: int, size: int) -> None:
    await session.execute(
        update(BCAST).where(BCAST.c.id == broadcast_id).values(audience_size=size)
    )


# --- worker claims --------------------------------------------------------------------------

@dataclass(slots=True)
class ClaimedRow:
    """An outbox row leased to one worker, with what rendering it needs."""

    id: int
    broadcast_id: int
    supporter_id: int
    identity_id: int | None
    chat_id: int
    attempts: int
    language: str
    name: str | None
    region: str | None
    first_attempt_at: datetime | None = None  # see OutboxMessage.first_attempt_at


_PG_CLAIM = text("""
WITH picked AS (
    SELECT o.id, s.status AS s_status, s.language, s.display_name, s.region,
           ci.reachable, ci.chat_id AS ci_chat_id
    FROM outbox_message AS o
    LEFT JOIN supporter AS s ON s.id = o.supporter_id
    LEFT JOIN channel_identity AS ci ON ci.id = o.identity_id
    WHERE o.bot_id = :bot_id AND o.status = 'pending' AND o.not_before <= :now
      AND o.broadcast_id IN (SELECT b.id FROM broadcast AS b WHERE b.status = 'sending')
    ORDER BY o.not_before, o.id
    LIMIT :limit
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE outbox_message AS o
SET status = CASE WHEN p.s_status = 'active' AND p.reachable AND p.ci_chat_id IS NOT NULL
                  THEN 'inflight' ELSE 'skipped' END,
    lease_owner = CASE WHEN p.s_status = 'active' AND p.reachable AND p.ci_chat_id IS NOT NULL
                       THEN :owner END,
    lease_until = CASE WHEN p.s_status = 'active' AND p.reachable AND p.ci_chat_id IS NOT NULL
                       THEN CAST(:until AS timestamptz) END,
    chat_id = COALESCE(p.ci_chat_id, o.chat_id),
    error = CASE WHEN p.s_status = 'active' AND p.reachable AND p.ci_chat_id IS NOT NULL
                 THEN NULL ELSE 'opted out or unreachable' END,
    finished_at = CASE WHEN p.s_status = 'active' AND p.reachable AND p.ci_chat_id IS NOT NULL
                       THEN NULL ELSE :now END
FROM picked AS p
WHERE o.id = p.id
RETURNING o.id, o.broadcast_id, o.supporter_id, o.identity_id, o.chat_id, o.attempts,
          o.status, p.language, p.display_name, p.region, o.first_attempt_at
""").bindparams(
    bindparam("now", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime())
)

_SQLITE_CLAIM = text("""
UPDATE outbox_message
SET status = 'inflight', lease_owner = :owner, lease_until = :until
WHERE id IN (
    SELECT o.id FROM outbox_message AS o
    WHERE o.bot_id = :bot_id AND o.status = 'pending' AND o.not_before <= :now
      AND o.broadcast_id IN (SELECT b.id FROM broadcast AS b WHERE b.status = 'sending')
    ORDER BY o.not_before, o.id
    LIMIT :limit)
RETURNING id
""").bindparams(
    bindparam("now", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime())
)

_SQLITE_DETAILS = text("""
SELECT o.id, o.broadcast_id, o.supporter_id, o.identity_id, ci.chat_id, o.attempts,
       s.status, ci.reachable, s.language, s.display_name, s.region, o.first_attempt_at
FROM outbox_message AS o
LEFT JOIN supporter AS s ON s.id = o.supporter_id
LEFT JOIN channel_identity AS ci ON ci.id = o.identity_id
WHERE o.id IN :ids
""").bindparams(bindparam("ids", expanding=True))


def _utc(value: Any) -> datetime | None:
    """A timestamp read through ``text()`` (no column type): aware UTC, as UTCDateTime gives."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def claim(
    session: AsyncSession,
    *,
    bot_id: int,
    owner: str,
    now: datetime,
    until: datetime,
    limit: int,
) -> tuple[list[ClaimedRow], int]:
    """Lease up to ``limit`` due rows to ``owner``; returns (rows to send, rows skipped).

    Rows whose supporter is no longer active, or whose identity is unreachable, are
    marked skipped here: a /stop committed before the claim stops the message.
    """
    params = {"bot_id": bot_id, "now": now, "until": until, "owner": owner, "limit": limit}
    out: list[ClaimedRow] = []
    skipped = 0
    if _dialect(session) == "postgresql":
        for r in (await session.execute(_PG_CLAIM, params)).all():
            if r[6] == "inflight":
                out.append(ClaimedRow(r[0], r[1], r[2], r[3], r[4], r[5], r[7], r[8], r[9],
                                      _utc(r[10])))
            else:
                skipped += 1
        return out, skipped
    ids = list((await session.execute(_SQLITE_CLAIM, params)).scalars())
    if not ids:
        return out, 0
    rejected: list[int] = []
    for r in (await session.execute(_SQLITE_DETAILS, {"ids": ids})).all():
        if r[6] == "active" and r[7] and r[4] is not None:
            out.append(ClaimedRow(r[0], r[1], r[2], r[3], r[4], r[5], r[8], r[9], r[10],
                                  _utc(r[11])))
        else:
            rejected.append(r[0])
    if rejected:
        await session.execute(
            update(OUT)
            .where(OUT.c.id.in_(rejected))
            .values(status="skipped", lease_owner=None, lease_until=None,
                    error="opted out or unreachable", finished_at=now)
        )
    return out, len(rejected)


async def reclaim_expired(session: AsyncSession, *, now: datetime) -> int:
    """Return rows whose worker's lease ran out (it died or hung) to the queue."""
    result = await session.execute(
        update(OUT)
        .where(OUT.c.status == "inflight", OUT.c.lease_until < now)
        .values(status="pending", lease_owner=None, lease_until=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- outcomes -------------------------------------------------------------------------------

@dataclass
class Outcomes:
    """One batch of delivery results of one worker, recorded together."""

    # (outbox id, channel message id)
    sent: list[tuple[int, int | None]]
    # (outbox id, identity id, reason): the identity becomes unreachable
    blocked: list[tuple[int, int | None, str]]
    # (outbox id, attempts, reason)
    failed: list[tuple[int, int, str]]
    # (outbox id, attempts, not_before, reason): back to pending
    retry: list[tuple[int, int, datetime, str | None]]
    # (outbox id, identity id, new chat id): a group chat that became a supergroup
    migrated: list[tuple[int, int | None, int]]

    @classmethod
    def empty(cls) -> Outcomes:
        return cls([], [], [], [], [])

    def __len__(self) -> int:
        return len(self.sent) + len(self.blocked) + len(self.failed) + len(self.retry)


_PG_SENT = text("""
UPDATE outbox_message AS o
SET status = 'sent', message_id = v.mid, attempts = o.attempts + 1,
    lease_owner = NULL, lease_until = NULL, error = NULL, finished_at = :now
FROM unnest(CAST(:ids AS bigint[]), CAST(:mids AS bigint[])) AS v(id, mid)
WHERE o.id = v.id AND o.status = 'inflight' AND o.lease_owner = :owner
""").bindparams(bindparam("now", type_=UTCDateTime()))


def _mine(owner: str) -> Any:
    return and_(OUT.c.status == "inflight", OUT.c.lease_owner == owner)


async def record(session: AsyncSession, *, owner: str, now: datetime, batch: Outcomes) -> None:
    """Write a batch of outcomes; rows whose lease this worker lost are left alone."""
    om = OUT.c
    postgres = _dialect(session) == "postgresql"
    if batch.migrated:
        # Before the outcomes: a resent message's row then keeps the new chat id.
        moved = [{"iid": iid, "cid": cid} for _, iid, cid in batch.migrated if iid is not None]
        if moved:
            await session.execute(
                update(IDENT)
                .where(IDENT.c.id == bindparam("iid"))
                .values(chat_id=bindparam("cid")),
                moved,
            )
        await session.execute(
            update(OUT).where(om.id == bindparam("oid")).values(chat_id=bindparam("cid")),
            [{"oid": oid, "cid": cid} for oid, _, cid in batch.migrated],
        )
    if batch.sent:
        if postgres:
            await session.execute(_PG_SENT, {
                "ids": [i for i, _ in batch.sent], "mids": [m for _, m in batch.sent],
                "owner": owner, "now": now,
            })
        else:
            await session.execute(
                update(OUT).where(om.id == bindparam("oid"), _mine(owner)).values(
                    status="sent", message_id=bindparam("mid"), attempts=om.attempts + 1,
                    lease_owner=None, lease_until=None, error=None, finished_at=now),
                [{"oid": i, "mid": m} for i, m in batch.sent],
            )
    if batch.blocked:
        await session.execute(
            update(OUT).where(om.id == bindparam("oid"), _mine(owner)).values(
                status="blocked", attempts=om.attempts + 1, lease_owner=None, lease_until=None,
                error=bindparam("err"), finished_at=now),
            [{"oid": i, "err": e[:MAX_ERROR]} for i, _, e in batch.blocked],
        )
        identities = sorted({iid for _, iid, _ in batch.blocked if iid is not None})
        if identities:
            await session.execute(
                update(IDENT).where(IDENT.c.id.in_(identities)).values(reachable=False)
            )
    if batch.failed:
        await session.execute(
            update(OUT).where(om.id == bindparam("oid"), _mine(owner)).values(
                status="failed", attempts=bindparam("att"), lease_owner=None, lease_until=None,
                error=bindparam("err"), finished_at=now),
            [{"oid": i, "att": a, "err": e[:MAX_ERROR]} for i, a, e in batch.failed],
        )
    if batch.retry:
        # A row with a counted attempt has failed at least once: the first such record
        # starts its retry window (later ones keep it; rows handed back keep theirs).
        await session.execute(
            update(OUT).where(om.id == bindparam("oid"), _mine(owner)).values(
                status="pending", attempts=bindparam("att"), not_before=bindparam("nb"),
                lease_owner=None, lease_until=None, error=bindparam("err"),
                first_attempt_at=func.coalesce(
                    om.first_attempt_at, bindparam("first", type_=UTCDateTime()))),
            [{"oid": i, "att": a, "nb": nb, "err": (e or "")[:MAX_ERROR] or None,
              "first": now if a > 0 else None}
             for i, a, nb, e in batch.retry],
        )


async def map_native_polls(
    session: AsyncSession, rows: list[dict[str, Any]], *, now: datetime
) -> None:
    """Remember which native Telegram poll went to whom, so its answers can be counted."""
    from storage.models.petitions import NativePollMap

    table: Table = NativePollMap.__table__  # type: ignore[assignment]
    insert_fn = pg_insert if _dialect(session) == "postgresql" else sqlite_insert
    await session.execute(
        insert_fn(table).on_conflict_do_nothing(index_elements=["bot_id", "telegram_poll_id"]),
        [{**row, "created_at": now} for row in rows],
    )


async def release(
    session: AsyncSession, *, owner: str, ids: Sequence[int], not_before: datetime
) -> None:
    """Hand rows this worker will not send back to the queue (shutdown, long pause)."""
    if not ids:
        return
    await session.execute(
        update(OUT)
        .where(OUT.c.id.in_(list(ids)), _mine(owner))
        .values(status="pending", lease_owner=None, lease_until=None, not_before=not_before)
    )


# --- progress and control -------------------------------------------------------------------

async def progress(session: AsyncSession, broadcast_id: int) -> dict[str, int]:
    """Outbox rows of a broadcast by status (every status present, zero if none)."""
    rows = await session.execute(
        select(OUT.c.status, func.count())
        .where(OUT.c.broadcast_id == broadcast_id)
        .group_by(OUT.c.status)
    )
    counts = dict.fromkeys(("pending", "inflight", "sent", "blocked", "failed", "skipped"), 0)
    counts.update({status: int(n) for status, n in rows.all()})
    return counts


async def held_by_bot(session: AsyncSession, broadcast_id: int) -> dict[str, int]:
    """Rows of a broadcast waiting on a disabled bot, by bot name (the worker holds them)."""
    rows = await session.execute(
        select(Bot.name, func.count())
        .select_from(OUT.join(Bot, Bot.id == OUT.c.bot_id))
        .where(OUT.c.broadcast_id == broadcast_id, OUT.c.status.in_(OPEN_STATUSES),
               Bot.enabled.is_(False))
        .group_by(Bot.name)
    )
    return {str(name): int(n) for name, n in rows.all()}


async def finish_if_complete(session: AsyncSession, broadcast_id: int, now: datetime) -> bool:
    """Mark a sending broadcast done once no row is pending or in flight."""
    open_rows = exists().where(
        OUT.c.broadcast_id == broadcast_id, OUT.c.status.in_(OPEN_STATUSES)
    )
    result = await session.execute(
        update(BCAST)
        .where(BCAST.c.id == broadcast_id, BCAST.c.status == "sending", not_(open_rows))
        .values(status="done", finished_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def sending_broadcasts(session: AsyncSession) -> list[tuple[int, int]]:
    """(broadcast id, bot id) of every broadcast being sent, for each bot it goes out through."""
    rows = await session.execute(
        select(BCAST.c.id, BCAST.c.bot_id, BCAST.c.via_bot_ids).where(BCAST.c.status == "sending")
    )
    return [(int(a), int(b)) for a, own, via in rows.all() for b in (via or [own])]


async def next_due(session: AsyncSession, bot_ids: Sequence[int]) -> datetime | None:
    """The earliest time a row of these bots becomes claimable (due or lease expiry)."""
    if not bot_ids:
        return None
    sending = select(BCAST.c.id).where(BCAST.c.status == "sending")
    pending = await session.execute(
        select(func.min(OUT.c.not_before)).where(
            OUT.c.bot_id.in_(list(bot_ids)), OUT.c.status == "pending",
            OUT.c.broadcast_id.in_(sending),
        )
    )
    lease = await session.execute(
        select(func.min(OUT.c.lease_until)).where(
            OUT.c.bot_id.in_(list(bot_ids)), OUT.c.status == "inflight"
        )
    )
    times = [t for t in (pending.scalar(), lease.scalar()) if t is not None]
    return min(times) if times else None


async def scheduled_before(session: AsyncSession, at: datetime) -> bool:
    """Is a broadcast scheduled to start before ``at`` (and not started yet)?"""
    found = await session.execute(
        select(BCAST.c.id).where(BCAST.c.status == "scheduled", BCAST.c.send_at <= at).limit(1)
    )
    return found.first() is not None


async def set_status(
    session: AsyncSession,
    broadcast_id: int,
    *,
    new: str,
    allowed_from: Sequence[str],
    now: datetime,
) -> bool:
    """Move a broadcast to ``new`` if it is in one of ``allowed_from``; False otherwise."""
    values: dict[str, Any] = {"status": new}
    if new in ("done", "cancelled"):
        values["finished_at"] = now
    result = await session.execute(
        update(BCAST)
        .where(BCAST.c.id == broadcast_id, BCAST.c.status.in_(list(allowed_from)))
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def skip_pending(session: AsyncSession, broadcast_id: int, *, reason: str,
                       now: datetime) -> int:
    """Mark every pending row of a broadcast skipped (it was cancelled)."""
    result = await session.execute(
        update(OUT)
        .where(OUT.c.broadcast_id == broadcast_id, OUT.c.status == "pending")
        .values(status="skipped", error=reason, finished_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- privacy --------------------------------------------------------------------------------

async def export_supporter(session: AsyncSession, supporter_id: int) -> dict[str, Any]:
    """The broadcasts a supporter was sent, and what happened to each."""
    rows = await session.execute(
        select(OUT.c.broadcast_id, OUT.c.channel, OUT.c.chat_id,
               OUT.c.status, OUT.c.message_id, OUT.c.finished_at)
        .where(OUT.c.supporter_id == supporter_id)
        .order_by(OUT.c.id)
    )
    return {"broadcast_messages": [
        {"broadcast_id": b, "channel": ch, "chat_id": chat, "status": st, "message_id": mid,
         "at": at.isoformat() if at else None}
        for b, ch, chat, st, mid, at in rows.all()
    ]}


async def erase_supporter(session: AsyncSession, supporter_id: int) -> None:
    """Forget where a supporter's messages went; keep the rows so broadcast counts survive.

    Rows not yet sent are skipped, so nothing reaches an erased supporter.
    """
    now = datetime.now(UTC)
    om = OUT.c
    await session.execute(
        update(OUT)
        .where(om.supporter_id == supporter_id, om.status.in_(OPEN_STATUSES))
        .values(status="skipped", error="erased", finished_at=now, lease_owner=None,
                lease_until=None)
    )
    await session.execute(
        update(OUT)
        .where(om.supporter_id == supporter_id)
        .values(chat_id=None, message_id=None, identity_id=None)
    )
