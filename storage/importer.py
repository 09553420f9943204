"""Bulk supporter import and export (SQL only; the rules are in campaigns/importer.py).

Set-based, with no ORM objects: on PostgreSQL each chunk of rows is COPied into a
staging table, then one INSERT .. SELECT per table; on SQLite one executemany per
table through Core, with values converted once per chunk rather than once per row.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ARRAY, String, any_, bindparam, func, insert, literal, select, text, true
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.chapters import in_areas
from storage.db import Database
from storage.models import ChannelIdentity, Consent, Supporter, SupporterTag, UTCDateTime

log = logging.getLogger(__name__)

# Rows per round trip of an export.
CHUNK = 10_000
# Rows per chunk of an import (each: a COPY and four statements); it also sets how often
# progress is reported. Five times the export's: a million rows took 0.7 s less of the
# process's CPU than in chunks of 10,000, and memory holds the whole list anyway.
IMPORT_CHUNK = 50_000
_LOOKUP_CHUNK = 5000  # under SQLite's and asyncpg's 32,767 bound parameters


class NewSupporter(NamedTuple):
    """One supporter to insert, with one identity on one channel (a tuple: built in bulk)."""

    external_user_id: str
    chat_id: int | None
    display_name: str | None
    language: str
    region: str | None
    tier: str
    tags: tuple[str, ...] = ()
    district: str | None = None


@dataclass(frozen=True)
class GrantedConsent:
    purpose: str
    notice_version: str
    channel: str


async def existing_external_ids(
    session: AsyncSession, bot_id: int, channel: str, external_ids: Sequence[str]
) -> set[str]:
    """Those of ``external_ids`` already known to this bot on this channel."""
    found: set[str] = set()
    # A list imported into a bot that knows no one on the channel yet (the first load of
    # a movement's list) has nothing to compare: one probe of the unique index instead
    # of a million (1.5 s at a million rows).
    if not await any_identity(session, bot_id, channel):
        return found
    postgres = session.get_bind().dialect.name == "postgresql"
    # PostgreSQL takes the ids as one array parameter; SQLite in lists under its limit.
    size = 100_000 if postgres else _LOOKUP_CHUNK
    for start in range(0, len(external_ids), size):
        chunk = list(external_ids[start : start + size])
        matches = (
            ChannelIdentity.external_user_id == any_(bindparam("ids", chunk, ARRAY(String)))
            if postgres
            else ChannelIdentity.external_user_id.in_(bindparam("ids", chunk, expanding=True))
        )
        rows = await session.execute(
            select(ChannelIdentity.external_user_id).where(
                ChannelIdentity.bot_id == bot_id, ChannelIdentity.channel == channel, matches
            )
        )
        found.update(rows.scalars())
    return found


async def any_identity(session: AsyncSession, bot_id: int, channel: str) -> bool:
    """Whether this bot knows anyone on this channel."""
    return (await session.execute(
        select(ChannelIdentity.id).where(ChannelIdentity.bot_id == bot_id,
                                         ChannelIdentity.channel == channel).limit(1)
    )).first() is not None


async def insert_supporters(
    session: AsyncSession,
    *,
    bot_id: int,
    channel: str,
    rows: Sequence[NewSupporter],
    consent: GrantedConsent,
    now: datetime,
) -> int:
    """Insert active, consenting supporters with their identity, consent and tags.

    Runs in the caller's transaction; call it with chunks of about IMPORT_CHUNK rows.
    """
    if not rows:
        return 0
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        return await _insert_postgresql(conn, bot_id, channel, rows, consent, now)
    return await _insert_sqlite(conn, bot_id, channel, rows, consent, now)


# PostgreSQL: the chunk goes to the server by COPY (binary, no SQL text to parse per
# row) into a temporary staging table whose id column draws from the supporter
# sequence, so every row has its supporter id on arrival; then one INSERT .. SELECT per
# table. The staging table lives until the import's transaction ends (ON COMMIT DROP)
# and is emptied between chunks.
_PG_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS nalgae_import_staging (
    id bigint NOT NULL DEFAULT nextval({sequence}),
    external_user_id text NOT NULL,
    chat_id bigint,
    display_name text,
    language text NOT NULL,
    region text,
    tier text NOT NULL,
    tags text[] NOT NULL,
    district text
) ON COMMIT DROP
"""
# NewSupporter's fields, in its order: its tuples are COPied as they are (a million
# rows, so no second tuple per row).
_PG_STAGING_COLUMNS = NewSupporter._fields
_PG_FROM_STAGING = (
    text("""
    INSERT INTO supporter (id, bot_id, display_name, language, region, tier, district, status,
                           created_at, updated_at, consented_at)
    SELECT id, CAST(:bot_id AS bigint), display_name, language, region, tier, district,
           'active',
           CAST(:now AS timestamptz), CAST(:now AS timestamptz), CAST(:now AS timestamptz)
    FROM nalgae_import_staging"""),
    text("""
    INSERT INTO channel_identity (supporter_id, bot_id, channel, external_user_id, chat_id,
                                  reachable, created_at)
    SELECT id, CAST(:bot_id AS bigint), CAST(:channel AS text), external_user_id, chat_id, true,
           CAST(:now AS timestamptz)
    FROM nalgae_import_staging"""),
    text("""
    INSERT INTO consent (supporter_id, purpose, notice_version, choice, channel, created_at)
    SELECT id, CAST(:purpose AS text), CAST(:notice_version AS text), 'granted',
           CAST(:consent_channel AS text), CAST(:now AS timestamptz)
    FROM nalgae_import_staging"""),
    text("""
    INSERT INTO supporter_tag (supporter_id, tag)
    SELECT s.id, t.tag FROM nalgae_import_staging AS s, unnest(s.tags) AS t(tag)"""),
)


async def _insert_postgresql(
    conn: AsyncConnection,
    bot_id: int,
    channel: str,
    rows: Sequence[NewSupporter],
    consent: GrantedConsent,
    now: datetime,
) -> int:
    sequence = (await conn.execute(
        text("SELECT pg_get_serial_sequence('supporter', 'id')"))).scalar_one()
    # Run through SQLAlchemy first: that also opens the caller's transaction on the
    # driver connection, which the COPY below then joins.
    await conn.execute(text(_PG_STAGING.format(sequence=_sql_string(sequence))))
    await conn.execute(text("TRUNCATE nalgae_import_staging"))
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    await raw.copy_records_to_table(
        "nalgae_import_staging", columns=_PG_STAGING_COLUMNS,
        records=rows,
    )
    params = {
        "bot_id": bot_id, "channel": channel, "purpose": consent.purpose,
        "notice_version": consent.notice_version, "consent_channel": consent.channel,
        "now": now,
    }
    skip_checks = SKIP_FK_CHECKS and await _may_skip_triggers(conn)
    if skip_checks:
        # The foreign keys these inserts would check row by row (a trigger per row,
        # each an index probe and a row lock on the parent) hold by construction:
        # every supporter_id is an id this transaction has just inserted into
        # supporter from the same staging rows (no one else sees them, so no one can
        # delete them), and the one bot_id is locked here as the check would lock it.
        # The four tables have no other triggers. Replica mode is set for these
        # statements only, and only where the role may set it (a superuser, or one
        # granted SET on the parameter); elsewhere the checks run as usual.
        found = (await conn.execute(
            text("SELECT id FROM bot WHERE id = :bot_id FOR KEY SHARE"), {"bot_id": bot_id}
        )).scalar_one_or_none()
        if found is None:
            raise ValueError(f"no bot {bot_id}")
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
    for statement in _PG_FROM_STAGING:
        await conn.execute(statement, params)
    if skip_checks:  # (after a failure the rollback undoes SET LOCAL)
        await conn.execute(text("SET LOCAL session_replication_role = origin"))
    return len(rows)


# Whether the import skips the per-row foreign-key triggers where it may (see above).
SKIP_FK_CHECKS = True


async def _may_skip_triggers(conn: AsyncConnection) -> bool:
    return bool((await conn.execute(text(
        "SELECT current_setting('is_superuser') = 'on'"
        " OR has_parameter_privilege('session_replication_role', 'SET')"
    ))).scalar_one())


def _sql_string(value: str) -> str:
    """A SQL string literal (for DDL, which takes no parameters)."""
    return "'" + value.replace("'", "''") + "'"


def _db_value(conn: AsyncConnection, model: Any, column_name: str, value: Any) -> Any:
    """``value`` as the column's type would send it to this database."""
    # dialect_impl: SQLite's DATETIME formats with microseconds, the generic type does not.
    col_type = model.__table__.c[column_name].type.dialect_impl(conn.dialect)
    process = col_type.bind_processor(conn.dialect)
    return process(value) if process else value


def _insert_sql(model: Any, *names: str) -> str:
    """A plain parameterised INSERT (qmark style, as sqlite3 takes it)."""
    return (f"INSERT INTO {model.__tablename__} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' * len(names))})")


# On SQLite the rows go straight to the driver's executemany as tuples: building and
# type-converting SQLAlchemy parameters row by row costs more than the inserts
# themselves. The one converted value (the timestamp) is converted once per chunk.
_SUPPORTER_SQL = _insert_sql(Supporter, "bot_id", "display_name", "language", "region", "tier",
                             "district", "status", "created_at", "updated_at", "consented_at")
_IDENTITY_SQL = _insert_sql(ChannelIdentity, "supporter_id", "bot_id", "channel",
                            "external_user_id", "chat_id", "reachable", "created_at")
_TAG_SQL = _insert_sql(SupporterTag, "supporter_id", "tag")


async def _insert_sqlite(
    conn: AsyncConnection,
    bot_id: int,
    channel: str,
    rows: Sequence[NewSupporter],
    consent: GrantedConsent,
    now: datetime,
) -> int:
    at = _db_value(conn, Supporter, "created_at", now)
    await conn.exec_driver_sql(_SUPPORTER_SQL, [
        (bot_id, r.display_name, r.language, r.region, r.tier, r.district, "active", at, at, at)
        for r in rows
    ])
    # SQLite has one writer at a time and this transaction now holds the write lock;
    # an INTEGER PRIMARY KEY takes max(id) + 1, so the chunk got the newest ids, in order.
    last = int((await conn.execute(select(func.max(Supporter.id)))).scalar_one())
    first = last - len(rows) + 1
    mine = (await conn.execute(
        select(func.count()).select_from(Supporter).where(
            Supporter.id.between(first, last), Supporter.bot_id == bot_id,
            Supporter.created_at == now,
        )
    )).scalar_one()
    if mine != len(rows):  # never expected; refuse to link rows to the wrong people
        raise RuntimeError("supporter ids of the imported chunk are not contiguous")
    ids = range(first, last + 1)
    await conn.exec_driver_sql(_IDENTITY_SQL, [
        (sid, bot_id, channel, r.external_user_id, r.chat_id, True, at)
        for sid, r in zip(ids, rows, strict=True)
    ])
    await conn.execute(
        insert(Consent).from_select(
            ["supporter_id", "purpose", "notice_version", "choice", "channel", "created_at"],
            select(
                Supporter.id, literal(consent.purpose), literal(consent.notice_version),
                literal("granted"), literal(consent.channel), literal(now, UTCDateTime()),
            ).where(Supporter.id.between(first, last)),
        )
    )
    tag_rows = [(sid, tag) for sid, r in zip(ids, rows, strict=True) for tag in r.tags]
    if tag_rows:
        await conn.exec_driver_sql(_TAG_SQL, tag_rows)
    return len(rows)


# The tables a bulk import grows; their planner statistics are refreshed right after it.
_IMPORTED_TABLES = ("supporter", "channel_identity", "consent", "supporter_tag")


async def refresh_statistics(db: Database) -> None:
    """ANALYZE the tables an import filled; call it after the import has committed.

    Without it PostgreSQL keeps planning with the statistics of the empty tables until
    autovacuum gets round to them: the signing path's identity lookup then scanned every
    identity of the bot (17 ms for 80,000 supporters instead of 0.07 ms), exactly when an
    organiser imports a list and opens a petition to it. It runs in its own short
    transaction (inside the import's, its lock would make a second import wait) and is
    best effort: the import has succeeded either way. PostgreSQL only analyzes tables
    the database role owns (otherwise it warns and skips them; autovacuum still will).
    """
    try:
        async with db.session() as session:
            if not db.is_postgres:
                # A sample, as `PRAGMA optimize` takes, instead of reading every row.
                await session.execute(text("PRAGMA analysis_limit = 1000"))
            for table in _IMPORTED_TABLES:
                await session.execute(text(f"ANALYZE {table}"))
    except Exception:
        log.warning("refreshing planner statistics after an import failed", exc_info=True)


class ExportedSupporter(NamedTuple):  # a tuple: a million of them pass through an export
    id: int
    external_user_id: str | None
    display_name: str | None
    language: str
    region: str | None
    tier: str
    status: str
    created_at: datetime
    tags: tuple[str, ...]
    district: str | None


async def iter_supporters(
    session: AsyncSession, bot_id: int, channel: str, batch: int = CHUNK,
    regions: Sequence[str] | None = None,
) -> AsyncIterator[list[ExportedSupporter]]:
    """Every supporter of a bot except erased ones, in batches (keyset pagination by id).

    A supporter with no identity on `channel` comes with external_user_id None, one
    with several comes once per identity (an outer join, done here per batch).
    ``regions`` keeps to those regions (a scoped organiser's chapters).
    """
    in_scope = in_areas(regions) if regions is not None else true()
    last_id = 0
    while True:
        rows = (
            await session.execute(
                select(
                    Supporter.id,
                    Supporter.display_name,
                    Supporter.language,
                    Supporter.region,
                    Supporter.tier,
                    Supporter.status,
                    Supporter.created_at,
                    Supporter.district,
                )
                .where(
                    in_scope,
                    Supporter.bot_id == bot_id,
                    Supporter.status != "erased",
                    # The X channel's own account row is an address, not a person.
                    Supporter.source_ref.is_distinct_from("x:account"),
                    Supporter.id > last_id,
                )
                .order_by(Supporter.id)
                .limit(batch)
            )
        ).all()
        if not rows:
            return
        last_id = rows[-1].id
        # Identities and tags by the batch's id range, each an index range scan. Joined
        # in SQL, PostgreSQL hashed every identity of the bot for each batch at a
        # million supporters (13,000 rows/s, slower with every batch); and a list of
        # 10,000 ids cost more to compile than the query.
        first = rows[0].id
        identities: dict[int, list[str]] = {}
        for sid, external in await session.execute(
            select(ChannelIdentity.supporter_id, ChannelIdentity.external_user_id)
            .where(ChannelIdentity.supporter_id.between(first, last_id),
                   ChannelIdentity.bot_id == bot_id, ChannelIdentity.channel == channel)
            .order_by(ChannelIdentity.supporter_id, ChannelIdentity.id)
        ):
            identities.setdefault(sid, []).append(external)
        tags: dict[int, list[str]] = {}
        for sid, tag in await session.execute(
            select(SupporterTag.supporter_id, SupporterTag.tag)
            .where(SupporterTag.supporter_id.between(first, last_id))
            .order_by(SupporterTag.supporter_id, SupporterTag.tag)
        ):
            tags.setdefault(sid, []).append(tag)
        no_tags: tuple[str, ...] = ()
        none: list[str | None] = [None]
        yield [
            ExportedSupporter(r[0], external, *r[1:7],
                              tuple(tags[r[0]]) if r[0] in tags else no_tags, r[7])
            for r in rows for external in identities.get(r[0], none)
        ]


# The CSV export on PostgreSQL, produced by the server (COPY .. TO STDOUT): the same
# cells, in the same order, as campaigns.importer writes through Python's csv module.
# Empty text is sent as NULL because COPY quotes an empty string ("") where Python
# writes nothing; quoting is otherwise the same (a cell with a comma, a quote or a line
# break is quoted, quotes doubled), except that COPY also quotes a lone carriage
# return, which reads back the same. $2 holds the characters that make a spreadsheet
# run a cell as a formula (such cells get a leading apostrophe).
_PG_EXPORT_CSV = """
SELECT NULLIF(ci.external_user_id, ''),
       NULLIF(CASE WHEN left(s.display_name, 1) = ANY($2::text[])
                   THEN '''' || s.display_name ELSE s.display_name END, ''),
       s.language,
       NULLIF(s.region, ''),
       s.tier,
       CASE WHEN left(t.tags, 1) = ANY($2::text[]) THEN '''' || t.tags ELSE t.tags END,
       CASE WHEN s.status = 'active' THEN 'yes' ELSE 'no' END,
       s.status,
       to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
       || CASE WHEN date_part('microseconds', s.created_at)::bigint % 1000000 = 0 THEN ''
               ELSE to_char(s.created_at AT TIME ZONE 'UTC', '.US') END
       || '+00:00',
       NULLIF(s.district, '')
FROM supporter AS s
LEFT JOIN channel_identity AS ci
       ON ci.supporter_id = s.id AND ci.bot_id = $1 AND ci.channel = $3
LEFT JOIN (SELECT supporter_id, string_agg(tag, ';' ORDER BY tag) AS tags
           FROM supporter_tag GROUP BY supporter_id) AS t
       ON t.supporter_id = s.id
WHERE s.bot_id = $1 AND s.status <> 'erased'
  AND s.source_ref IS DISTINCT FROM 'x:account'
ORDER BY s.id, ci.id
"""


# How much CSV text one piece of a COPY export holds (about 15,000 rows).
EXPORT_PIECE_BYTES = 1 << 20


class ExportStatus:
    """Filled in by `copy_export_csv` once the server has sent the last row."""

    rows: int = -1


async def copy_export_csv(
    session: AsyncSession,
    bot_id: int,
    channel: str,
    formula_start: Sequence[str],
    status: ExportStatus,
    *,
    piece_bytes: int | None = None,
) -> AsyncIterator[str]:
    """The export's CSV rows (no header) as text pieces, streamed by COPY (PostgreSQL only).

    The server writes the CSV; the pieces pass through a small bounded queue, so when
    the consumer is slow (a browser download) COPY waits rather than piling up rows
    here: memory stays a few pieces whatever the size.
    """
    conn = await session.connection()
    await conn.execute(text("SELECT 1"))  # opens the session's transaction; COPY joins it
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    piece_bytes = piece_bytes or EXPORT_PIECE_BYTES
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=4)
    pending: list[bytes] = []
    size = 0

    async def sink(chunk: bytes) -> None:
        nonlocal size
        pending.append(chunk)
        size += len(chunk)
        if size >= piece_bytes:
            await queue.put(b"".join(pending))
            pending.clear()
            size = 0

    async def run() -> str:
        try:
            return str(await raw.copy_from_query(
                _PG_EXPORT_CSV, bot_id, list(formula_start), channel,
                output=sink, format="csv"))
        finally:
            if pending:
                await queue.put(b"".join(pending))
            await queue.put(None)

    task = asyncio.create_task(run())
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while (piece := await queue.get()) is not None:
            yield decoder.decode(piece)
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail
        result = await task  # "COPY <rows>"; raises what COPY raised
        status.rows = int(result.rsplit(" ", 1)[-1])
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def can_copy(session: AsyncSession) -> bool:
    """Whether `copy_export_csv` works on this session's database (PostgreSQL)."""
    return session.get_bind().dialect.name == "postgresql"
