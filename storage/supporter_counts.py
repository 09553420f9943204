"""The overview's supporter counts kept on write (SQL only; tables and triggers in
storage/models/supporter_counts.py).

Reading a figure sums a handful of counter rows instead of every supporter, so the
dashboard's first view costs the same at a million supporters as at ten. The triggers
see every write (the ORM, the set-based import, /stop, /forget, raw SQL), so no code
path can forget to count.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models.supporter_counts import (
    TRIGGER_NAMES,
    TRIGGER_PREFIX,
    TRIGGER_TABLES,
    X_ACCOUNT_REF,
    PollVoterCount,
    ReachCount,
    SignupCount,
    SupporterCount,
    trigger_statements,
)

_KEYS = {
    "supporter_count": "bot_id, status, tier, region",
    "supporter_signup_count": "bot_id, hour",
    "supporter_reach_count": "bot_id, reachable",
    "poll_voter_count": "poll_id",
}


def _hour(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"date_trunc('hour', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    return f"strftime('%Y-%m-%d %H:00:00.000000', {column})"


def _recounts(dialect: str) -> dict[str, str]:
    """Each table's figures counted from the rows (what the triggers keep)."""
    people = f"(source_ref IS NULL OR source_ref <> '{X_ACCOUNT_REF}')"
    return {
        "supporter_count": (
            "SELECT bot_id, status, tier, coalesce(region, '') AS region, count(*) AS n"
            f" FROM supporter WHERE {people} GROUP BY bot_id, status, tier, coalesce(region, '')"),
        "supporter_signup_count": (
            f"SELECT bot_id, {_hour(dialect, 'created_at')} AS hour, count(*) AS n"
            f" FROM supporter WHERE {people} GROUP BY 1, 2"),
        "supporter_reach_count": (
            "SELECT s.bot_id, ci.reachable, count(*) AS n FROM channel_identity AS ci"
            " JOIN supporter AS s ON s.id = ci.supporter_id WHERE s.status = 'active'"
            " GROUP BY 1, 2"),
        "poll_voter_count": "SELECT poll_id, count(*) AS n FROM poll_voter GROUP BY poll_id",
    }


def _reconcile_statements(dialect: str) -> list[str]:
    """One INSERT .. SELECT per table: the recount minus the stored figures, added as a
    correction. One statement sees one snapshot, so writes meanwhile (whose triggers add
    their own deltas) cannot make it over- or under-correct."""
    out = []
    for table, recount in _recounts(dialect).items():
        keys = _KEYS[table]
        if dialect == "postgresql":
            folded, upsert = "false", ""
        else:  # SQLite keeps folded rows only (its triggers add into them)
            folded = "true"
            upsert = f" ON CONFLICT ({keys}) WHERE folded DO UPDATE SET n = n + excluded.n"
        out.append(
            f"INSERT INTO {table} ({keys}, n, folded)"
            f" SELECT {keys}, sum(n), {folded} FROM"
            f" (SELECT {keys}, -n AS n FROM {table} UNION ALL {recount}) AS x"
            f" WHERE true GROUP BY {keys} HAVING sum(n) <> 0{upsert}")
    return out


def _installed(conn: Connection) -> set[str]:
    if conn.dialect.name == "postgresql":
        rows = conn.execute(text(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE :p"),
            {"p": TRIGGER_PREFIX + "%"})
    else:
        rows = conn.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE :p"),
            {"p": TRIGGER_PREFIX + "%"})
    return {str(r[0]) for r in rows}


def install(conn: Connection) -> bool:
    """Create the counting triggers where missing and count what is already there.

    Runs after `create_all` and after every `nalgae db upgrade` (inside its transaction):
    a database that already has them is left alone; one that lacks any (new, or older than
    the counters) gets all of them and a recount in the same transaction. On PostgreSQL
    CREATE TRIGGER holds off writes to the two tables until that transaction commits, so
    the recount cannot miss a write (about a second at a million supporters, once).
    Returns whether it installed."""
    dialect = conn.dialect.name
    if _installed(conn) >= {TRIGGER_PREFIX + n for n in TRIGGER_NAMES}:
        # PostgreSQL's trigger bodies are functions: replaced in place (no table lock),
        # so a new version's counting reaches a database that already has the triggers.
        for statement in trigger_statements(dialect):
            if statement.startswith("CREATE OR REPLACE FUNCTION"):
                conn.exec_driver_sql(statement)
        return False
    if dialect != "postgresql":  # SQLite has no CREATE OR REPLACE TRIGGER
        for name in TRIGGER_NAMES:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {TRIGGER_PREFIX}{name}")
    for statement in trigger_statements(dialect):
        conn.exec_driver_sql(statement)
    for statement in _reconcile_statements(dialect):
        conn.execute(text(statement))
    return True


def uninstall(conn: Connection) -> None:
    """Drop the counting triggers (and PostgreSQL's trigger functions).

    Before a downgrade: a migration below the counters drops their tables, and a trigger
    left behind would fail every later write to supporter, channel_identity or
    poll_voter. The next upgrade to head installs them again, with a recount."""
    postgres = conn.dialect.name == "postgresql"
    for name, table in TRIGGER_TABLES.items():
        full = TRIGGER_PREFIX + name
        if postgres:
            # DROP TRIGGER IF EXISTS still fails on a missing table (a database at base).
            if conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar():
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {full} ON {table}")
            conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {full}()")
        else:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {full}")


async def reconcile(session: AsyncSession) -> int:
    """Correct the counters to a recount of the rows; how many keys had drifted.

    The triggers keep them exact; this is the safety net (a trigger dropped by hand, or a
    concurrent /stop and block of the same person on PostgreSQL, whose two triggers each
    read the other's row as it was before)."""
    dialect = session.get_bind().dialect.name
    moved = 0
    for statement in _reconcile_statements(dialect):
        result: Any = await session.execute(text(statement))
        moved += int(result.rowcount or 0)
    return moved


async def fold(session: AsyncSession) -> int:
    """PostgreSQL: add the pending deltas into each key's folded row, in one statement per
    table (atomic: a reader sees the deltas or their sum, never both or neither). How many
    deltas were folded. SQLite writes folded rows directly: nothing to do."""
    if session.get_bind().dialect.name != "postgresql":
        return 0
    folded = 0
    for table, keys in _KEYS.items():
        result = await session.execute(text(
            f"WITH moved AS (DELETE FROM {table} WHERE NOT folded RETURNING {keys}, n),"
            f" added AS (INSERT INTO {table} ({keys}, n, folded)"
            f" SELECT {keys}, sum(n), true FROM moved GROUP BY {keys}"
            f" ON CONFLICT ({keys}) WHERE folded DO UPDATE SET n = {table}.n + excluded.n)"
            " SELECT count(*) FROM moved"))
        folded += int(result.scalar_one())
    return folded


# --- the figures ----------------------------------------------------------------------------

async def by_status_tier_region(
    session: AsyncSession, bot_id: int | None = None
) -> dict[tuple[str, str, str | None], int]:
    """Supporters per (status, tier, region) (None: no region given); erased rows included."""
    query = select(SupporterCount.status, SupporterCount.tier, SupporterCount.region,
                   func.sum(SupporterCount.n)).group_by(
        SupporterCount.status, SupporterCount.tier, SupporterCount.region)
    if bot_id is not None:
        query = query.where(SupporterCount.bot_id == bot_id)
    return {(s, t, r or None): int(n) for s, t, r, n in (await session.execute(query)).all()
            if n}


async def signups_by_hour(
    session: AsyncSession, since: datetime, bot_id: int | None = None
) -> dict[datetime, int]:
    """Sign-ups per UTC hour from ``since`` on (erased people included)."""
    query = (select(SignupCount.hour, func.sum(SignupCount.n))
             .where(SignupCount.hour >= since).group_by(SignupCount.hour))
    if bot_id is not None:
        query = query.where(SignupCount.bot_id == bot_id)
    return {h: int(n) for h, n in (await session.execute(query)).all() if n}


def hours_to_days(by_hour: dict[datetime, int], offset_minutes: int) -> dict[date, int]:
    """Group UTC hours into the calendar days of a whole-hour UTC offset."""
    if offset_minutes % 60:
        raise ValueError("sign-ups are counted by the hour: the offset must be whole hours")
    out: dict[date, int] = {}
    for hour, n in by_hour.items():
        day = (hour + timedelta(minutes=offset_minutes)).date()
        out[day] = out.get(day, 0) + n
    return out


async def poll_voters(session: AsyncSession, poll_id: int) -> int:
    """How many have voted in the poll (its "has voted" rows)."""
    return int(await session.scalar(
        select(func.coalesce(func.sum(PollVoterCount.n), 0))
        .where(PollVoterCount.poll_id == poll_id)) or 0)


def poll_voters_of(poll_id: Any) -> Any:
    """The same as a scalar subquery (the open-now page counts several items at once)."""
    return (select(func.coalesce(func.sum(PollVoterCount.n), 0))
            .where(PollVoterCount.poll_id == poll_id).scalar_subquery())


async def reach(session: AsyncSession, bot_id: int | None = None) -> dict[bool, int]:
    """Channel identities of active supporters: reachable (True) or blocked (False)."""
    query = select(ReachCount.reachable, func.sum(ReachCount.n)).group_by(ReachCount.reachable)
    if bot_id is not None:
        query = query.where(ReachCount.bot_id == bot_id)
    return {bool(r): int(n) for r, n in (await session.execute(query)).all()}

