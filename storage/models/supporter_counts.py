"""The dashboard overview's supporter counts, kept on write by database triggers.

Each table holds signed deltas (`folded` false) and at most one folded row per key
(`folded` true, the partial unique index). A figure is the sum of a key's rows, so it
is exact the moment the write that changed it commits; the fold (storage/supporter_counts)
only keeps the tables small. On SQLite the triggers add straight into the folded row
(one writer at a time: nothing to contend on); on PostgreSQL they append deltas, so
concurrent sign-ups never queue on one counter row, and a tick folds them every second.

No personal data: a bot, a status, a tier, a region code, an hour and a count. A
region the supporter did not give is stored as '' (a unique key cannot match NULLs).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, BigIntPK, UTCDateTime


def _folded_key(name: str, *columns: str) -> Index:
    return Index(name, *columns, unique=True, postgresql_where=text("folded"),
                 sqlite_where=text("folded"))


class SupporterCount(Base):
    """Supporters per bot, status, tier and region (the X account row not counted)."""

    __tablename__ = "supporter_count"
    __table_args__ = (_folded_key("uq_supporter_count_folded", "bot_id", "status", "tier",
                                  "region"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    bot_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    tier: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(String(16), default="")
    n: Mapped[int] = mapped_column(BigInteger)
    folded: Mapped[bool] = mapped_column(Boolean, default=False)


class SignupCount(Base):
    """Sign-ups per bot and UTC hour of `created_at`, whatever the status since (erased
    people still signed up that day). Hours, not days: any whole-hour offset can group
    them into its own calendar days."""

    __tablename__ = "supporter_signup_count"
    # One folded row per bot and hour (8,760 a year): the overview reads the last 30 days.
    __table_args__ = (_folded_key("uq_supporter_signup_count_folded", "bot_id", "hour"),
                      Index("ix_supporter_signup_count_hour", "hour"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    bot_id: Mapped[int] = mapped_column(Integer)
    hour: Mapped[datetime] = mapped_column(UTCDateTime())
    n: Mapped[int] = mapped_column(BigInteger)
    folded: Mapped[bool] = mapped_column(Boolean, default=False)


class ReachCount(Base):
    """Channel identities of active supporters per supporter bot: reachable or blocked."""

    __tablename__ = "supporter_reach_count"
    __table_args__ = (_folded_key("uq_supporter_reach_count_folded", "bot_id", "reachable"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    bot_id: Mapped[int] = mapped_column(Integer)
    reachable: Mapped[bool] = mapped_column(Boolean)
    n: Mapped[int] = mapped_column(BigInteger)
    folded: Mapped[bool] = mapped_column(Boolean, default=False)


class PollVoterCount(Base):
    """Voters per poll (the "has voted" rows), for the live counts of the overview's
    "open now", the polls list and the result pages: a poll of a million voters was
    counted row by row on every view."""

    __tablename__ = "poll_voter_count"
    __table_args__ = (_folded_key("uq_poll_voter_count_folded", "poll_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    poll_id: Mapped[int] = mapped_column(BigInteger)
    n: Mapped[int] = mapped_column(BigInteger)
    folded: Mapped[bool] = mapped_column(Boolean, default=False)


# --- the triggers -------------------------------------------------------------------------------
# Installed by `install` (after `create_all`, and by storage.migrate.upgrade after the
# Alembic revisions: the regenerated migration knows tables and indexes, not triggers).

X_ACCOUNT_REF = "x:account"  # the X channel's own account row: not a person
TRIGGER_PREFIX = "nalgae_count_"

# PostgreSQL: statement-level triggers with transition tables, so a set-based import of a
# million rows adds a handful of grouped delta rows, not a million.
_PG_SUPPORTER_STATEMENTS = """
INSERT INTO supporter_count (bot_id, status, tier, region, n, folded)
SELECT bot_id, status, tier, coalesce(region, ''), sum(d), false FROM ({changes}) AS c
WHERE source_ref IS DISTINCT FROM '{x}' GROUP BY 1, 2, 3, 4 HAVING sum(d) <> 0;
INSERT INTO supporter_signup_count (bot_id, hour, n, folded)
SELECT bot_id, date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', sum(d),
       false
FROM ({changes}) AS c
WHERE source_ref IS DISTINCT FROM '{x}' GROUP BY 1, 2 HAVING sum(d) <> 0;
"""
_PG_ROWS = "SELECT id, bot_id, status, tier, region, source_ref, created_at, {d} AS d FROM {t}"
# Only the rows whose reach changed (active or not, or the bot) join their identities.
_PG_REACH_UPDATE = """
INSERT INTO supporter_reach_count (bot_id, reachable, n, folded)
SELECT c.bot_id, ci.reachable, sum(c.d), false
FROM (SELECT o.id, o.bot_id, -1 AS d FROM old_rows o JOIN new_rows n ON n.id = o.id
      WHERE o.status = 'active' AND (n.status <> 'active' OR n.bot_id <> o.bot_id)
      UNION ALL
      SELECT n.id, n.bot_id, 1 FROM old_rows o JOIN new_rows n ON n.id = o.id
      WHERE n.status = 'active' AND (o.status <> 'active' OR n.bot_id <> o.bot_id)) AS c
JOIN channel_identity ci ON ci.supporter_id = c.id
GROUP BY 1, 2 HAVING sum(c.d) <> 0;
"""
# One primary-key probe per identity (LIMIT keeps the planner from turning the lookup
# into a join that reads every supporter: an import adds 10,000 identities a statement,
# a hundred statements at a million).
_PG_IDENTITY_STATEMENT = """
INSERT INTO supporter_reach_count (bot_id, reachable, n, folded)
SELECT s.bot_id, c.reachable, sum(c.d), false FROM ({changes}) AS c
CROSS JOIN LATERAL (SELECT bot_id FROM supporter WHERE id = c.supporter_id
                    AND status = 'active' LIMIT 1) AS s
GROUP BY 1, 2 HAVING sum(c.d) <> 0;
"""
_PG_IDENTITY_CHANGED = (
    "SELECT o.supporter_id, o.reachable, -1 AS d FROM old_rows o JOIN new_rows n ON n.id = o.id"
    " WHERE o.reachable IS DISTINCT FROM n.reachable OR o.supporter_id <> n.supporter_id"
    " UNION ALL"
    " SELECT n.supporter_id, n.reachable, 1 FROM old_rows o JOIN new_rows n ON n.id = o.id"
    " WHERE o.reachable IS DISTINCT FROM n.reachable OR o.supporter_id <> n.supporter_id")


_PG_VOTER_STATEMENT = """
INSERT INTO poll_voter_count (poll_id, n, folded)
SELECT poll_id, sum(d), false FROM ({changes}) AS c GROUP BY 1 HAVING sum(d) <> 0;
"""


def _pg_function(name: str, body: str, returns: str = "NULL") -> str:
    return (f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
            f"BEGIN\n{body}\nRETURN {returns};\nEND\n$fn$")


def _pg_statements() -> list[str]:
    def supporters(changes: str) -> str:
        return _PG_SUPPORTER_STATEMENTS.format(changes=changes, x=X_ACCOUNT_REF)

    def identities(changes: str) -> str:
        return _PG_IDENTITY_STATEMENT.format(changes=changes)

    new, old = _PG_ROWS.format(d=1, t="new_rows"), _PG_ROWS.format(d=-1, t="old_rows")
    out = [
        _pg_function("nalgae_count_supporter_insert", supporters(new)),
        _pg_function("nalgae_count_supporter_update",
                     supporters(f"{old} UNION ALL {new}") + _PG_REACH_UPDATE),
        _pg_function("nalgae_count_supporter_delete", supporters(old)),
        # Row-level and BEFORE: the identities are still there (a cascade removes them
        # next, and by then their own trigger no longer finds an active supporter).
        _pg_function("nalgae_count_supporter_unreach", """
IF OLD.status = 'active' THEN
  INSERT INTO supporter_reach_count (bot_id, reachable, n, folded)
  SELECT OLD.bot_id, reachable, -count(*), false FROM channel_identity
  WHERE supporter_id = OLD.id GROUP BY reachable;
END IF;""", returns="OLD"),
        _pg_function("nalgae_count_identity_insert", identities(
            "SELECT supporter_id, reachable, 1 AS d FROM new_rows")),
        _pg_function("nalgae_count_identity_update", identities(_PG_IDENTITY_CHANGED)),
        _pg_function("nalgae_count_identity_delete", identities(
            "SELECT supporter_id, reachable, -1 AS d FROM old_rows")),
        _pg_function("nalgae_count_poll_voter_insert", _PG_VOTER_STATEMENT.format(
            changes="SELECT poll_id, 1 AS d FROM new_rows")),
        _pg_function("nalgae_count_poll_voter_update", _PG_VOTER_STATEMENT.format(
            changes="SELECT poll_id, -1 AS d FROM old_rows"
                    " UNION ALL SELECT poll_id, 1 FROM new_rows")),
        _pg_function("nalgae_count_poll_voter_delete", _PG_VOTER_STATEMENT.format(
            changes="SELECT poll_id, -1 AS d FROM old_rows")),
    ]
    triggers = [
        ("supporter_insert", "AFTER INSERT ON supporter REFERENCING NEW TABLE AS new_rows"
         " FOR EACH STATEMENT", "supporter"),
        ("supporter_update", "AFTER UPDATE ON supporter REFERENCING OLD TABLE AS old_rows"
         " NEW TABLE AS new_rows FOR EACH STATEMENT", "supporter"),
        ("supporter_delete", "AFTER DELETE ON supporter REFERENCING OLD TABLE AS old_rows"
         " FOR EACH STATEMENT", "supporter"),
        ("supporter_unreach", "BEFORE DELETE ON supporter FOR EACH ROW", "supporter"),
        ("identity_insert", "AFTER INSERT ON channel_identity REFERENCING NEW TABLE AS"
         " new_rows FOR EACH STATEMENT", "channel_identity"),
        ("identity_update", "AFTER UPDATE ON channel_identity REFERENCING OLD TABLE AS"
         " old_rows NEW TABLE AS new_rows FOR EACH STATEMENT", "channel_identity"),
        ("identity_delete", "AFTER DELETE ON channel_identity REFERENCING OLD TABLE AS"
         " old_rows FOR EACH STATEMENT", "channel_identity"),
        ("poll_voter_insert", "AFTER INSERT ON poll_voter REFERENCING NEW TABLE AS new_rows"
         " FOR EACH STATEMENT", "poll_voter"),
        ("poll_voter_update", "AFTER UPDATE ON poll_voter REFERENCING OLD TABLE AS old_rows"
         " NEW TABLE AS new_rows FOR EACH STATEMENT", "poll_voter"),
        ("poll_voter_delete", "AFTER DELETE ON poll_voter REFERENCING OLD TABLE AS old_rows"
         " FOR EACH STATEMENT", "poll_voter"),
    ]
    for name, when, table in triggers:
        full = TRIGGER_PREFIX + name
        # Not CREATE OR REPLACE TRIGGER: that needs PostgreSQL 14.
        out.append(f"DROP TRIGGER IF EXISTS {full} ON {table}")
        out.append(f"CREATE TRIGGER {full} {when} EXECUTE FUNCTION {full}()")
        # ALWAYS: the bulk import may run with session_replication_role = replica (no
        # foreign-key triggers); the counts must follow it all the same.
        out.append(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {full}")
    return out


# SQLite: row-level triggers adding straight into the folded rows (one writer at a time).
_UPSERT = {
    "supporter_count": "ON CONFLICT (bot_id, status, tier, region) WHERE folded"
                       " DO UPDATE SET n = n + excluded.n",
    "supporter_signup_count": "ON CONFLICT (bot_id, hour) WHERE folded"
                              " DO UPDATE SET n = n + excluded.n",
    "supporter_reach_count": "ON CONFLICT (bot_id, reachable) WHERE folded"
                             " DO UPDATE SET n = n + excluded.n",
    "poll_voter_count": "ON CONFLICT (poll_id) WHERE folded DO UPDATE SET n = n + excluded.n",
}
# The stored format of UTCDateTime on SQLite, so that the hours compare as strings.
_SQLITE_HOUR = "strftime('%Y-%m-%d %H:00:00.000000', {r}.created_at)"


def _sqlite_count(r: str, d: int, also: str = "") -> str:
    return (
        "INSERT INTO supporter_count (bot_id, status, tier, region, n, folded)"
        f" SELECT {r}.bot_id, {r}.status, {r}.tier, coalesce({r}.region, ''), {d}, 1"
        f" WHERE {r}.source_ref IS NOT '{X_ACCOUNT_REF}' {also} {_UPSERT['supporter_count']};")


def _sqlite_signup(r: str, d: int, also: str = "") -> str:
    return (
        "INSERT INTO supporter_signup_count (bot_id, hour, n, folded)"
        f" SELECT {r}.bot_id, {_SQLITE_HOUR.format(r=r)}, {d}, 1"
        f" WHERE {r}.source_ref IS NOT '{X_ACCOUNT_REF}' {also}"
        f" {_UPSERT['supporter_signup_count']};")


def _sqlite_reach_of_supporter(r: str, sign: str, also: str = "") -> str:
    return (
        "INSERT INTO supporter_reach_count (bot_id, reachable, n, folded)"
        f" SELECT {r}.bot_id, reachable, {sign}count(*), 1 FROM channel_identity"
        f" WHERE supporter_id = {r}.id AND {r}.status = 'active' {also} GROUP BY reachable"
        f" {_UPSERT['supporter_reach_count']};")


def _sqlite_reach_of_identity(r: str, d: int, also: str = "") -> str:
    return (
        "INSERT INTO supporter_reach_count (bot_id, reachable, n, folded)"
        f" SELECT s.bot_id, {r}.reachable, {d}, 1 FROM supporter AS s"
        f" WHERE s.id = {r}.supporter_id AND s.status = 'active' {also}"
        f" {_UPSERT['supporter_reach_count']};")


def _sqlite_voter(r: str, d: int) -> str:
    return (f"INSERT INTO poll_voter_count (poll_id, n, folded) SELECT {r}.poll_id, {d}, 1"
            f" WHERE true {_UPSERT['poll_voter_count']};")


def _sqlite_statements() -> list[str]:
    moved = ("AND (OLD.bot_id IS NOT NEW.bot_id OR OLD.created_at IS NOT NEW.created_at"
             " OR OLD.source_ref IS NOT NEW.source_ref)")
    reach_moved = "AND (NEW.status IS NOT OLD.status OR NEW.bot_id IS NOT OLD.bot_id)"
    identity_moved = ("AND (NEW.reachable IS NOT OLD.reachable"
                      " OR NEW.supporter_id IS NOT OLD.supporter_id)")
    triggers = {
        "supporter_insert": ("AFTER INSERT ON supporter",
                             [_sqlite_count("NEW", 1), _sqlite_signup("NEW", 1)]),
        "supporter_update": (
            "AFTER UPDATE OF bot_id, status, tier, region, source_ref, created_at ON supporter",
            [_sqlite_count("OLD", -1), _sqlite_count("NEW", 1),
             _sqlite_signup("OLD", -1, moved), _sqlite_signup("NEW", 1, moved),
             _sqlite_reach_of_supporter("OLD", "-", reach_moved),
             _sqlite_reach_of_supporter("NEW", "", reach_moved)]),
        "supporter_delete": ("AFTER DELETE ON supporter",
                             [_sqlite_count("OLD", -1), _sqlite_signup("OLD", -1)]),
        # BEFORE: the identities are still there (see the PostgreSQL twin).
        "supporter_unreach": ("BEFORE DELETE ON supporter",
                              [_sqlite_reach_of_supporter("OLD", "-")]),
        "identity_insert": ("AFTER INSERT ON channel_identity",
                            [_sqlite_reach_of_identity("NEW", 1)]),
        "identity_update": ("AFTER UPDATE OF reachable, supporter_id ON channel_identity",
                            [_sqlite_reach_of_identity("OLD", -1, identity_moved),
                             _sqlite_reach_of_identity("NEW", 1, identity_moved)]),
        "identity_delete": ("AFTER DELETE ON channel_identity",
                            [_sqlite_reach_of_identity("OLD", -1)]),
        "poll_voter_insert": ("AFTER INSERT ON poll_voter", [_sqlite_voter("NEW", 1)]),
        "poll_voter_update": ("AFTER UPDATE OF poll_id ON poll_voter",
                              [_sqlite_voter("OLD", -1), _sqlite_voter("NEW", 1)]),
        "poll_voter_delete": ("AFTER DELETE ON poll_voter", [_sqlite_voter("OLD", -1)]),
    }
    return [f"CREATE TRIGGER {TRIGGER_PREFIX}{name} {when} FOR EACH ROW BEGIN\n"
            + "\n".join(body) + "\nEND" for name, (when, body) in triggers.items()]


# Each trigger (after TRIGGER_PREFIX) and its table.
TRIGGER_TABLES = {
    "supporter_insert": "supporter", "supporter_update": "supporter",
    "supporter_delete": "supporter", "supporter_unreach": "supporter",
    "identity_insert": "channel_identity", "identity_update": "channel_identity",
    "identity_delete": "channel_identity",
    "poll_voter_insert": "poll_voter", "poll_voter_update": "poll_voter",
    "poll_voter_delete": "poll_voter",
}
TRIGGER_NAMES = tuple(TRIGGER_TABLES)


def trigger_statements(dialect: str) -> list[str]:
    return _pg_statements() if dialect == "postgresql" else _sqlite_statements()
