"""The inbox: Telegram updates stored before they are acknowledged, with group commit.

Telegram redelivers an update only when the webhook does not answer 2xx, so an
update acknowledged but not stored is lost. Requests arriving within a few
milliseconds share one INSERT (group commit), which keeps the per-update cost of
"store first" small under load. The primary key (bot, update_id) makes a
redelivered update a no-op.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.batching import GroupCommit
from storage.db import Database
from storage.models import ChannelIdentity, InboxUpdate

log = logging.getLogger(__name__)


_STATEMENTS: dict[str, Any] = {}


def _insert_statement(dialect: str) -> Any:
    # One cached statement run as executemany (SQLAlchemy's insertmanyvalues): a multi-row
    # VALUES built per batch would be compiled again for every batch size.
    stmt = _STATEMENTS.get(dialect)
    if stmt is None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = _STATEMENTS[dialect] = (
            insert(InboxUpdate).on_conflict_do_nothing()
            .returning(InboxUpdate.bot_id, InboxUpdate.update_id)
        )
    return stmt


async def insert_updates(
    session: AsyncSession, rows: list[tuple[int, int, str, datetime]], *,
    handled: bool = False,
) -> list[bool]:
    """Store (bot, update_id, payload, received_at) rows; for each, True if it is new.

    A repeat of a stored update, or a second copy inside the same batch, is False.
    `handled`: stored as handled already, without the payload (the fast lane, which
    answers them in the same transaction; `reopen` puts back those it does not answer).
    """
    unique: dict[tuple[int, int], dict[str, Any]] = {}
    for b, u, p, n in rows:
        unique.setdefault((b, u), {"bot_id": b, "update_id": u,
                                   "payload": None if handled else p, "received_at": n,
                                   "processed_at": n if handled else None, "attempts": 0})
    dialect = session.get_bind().dialect.name
    result = await session.execute(_insert_statement(dialect), list(unique.values()))
    inserted = {(b, u) for b, u in result.all()}
    seen: set[tuple[int, int]] = set()
    out = []
    for b, u, _, _ in rows:
        out.append((b, u) in inserted and (b, u) not in seen)
        seen.add((b, u))
    return out


_INBOX: Table = InboxUpdate.__table__  # type: ignore[assignment]
# Core, not ORM: an executemany UPDATE with a WHERE is a plain batch statement here.
_DONE = (
    update(_INBOX)
    .where(_INBOX.c.bot_id == bindparam("b"), _INBOX.c.update_id == bindparam("u"))
    .values(processed_at=bindparam("now"), payload=None)
)


async def mark_done(session: AsyncSession, keys: list[tuple[int, int]], now: datetime) -> None:
    """Updates handled: record when, and drop their payload (it holds personal data)."""
    if keys:
        await session.execute(_DONE, [{"b": b, "u": u, "now": now} for b, u in keys])


_REOPEN = (
    update(_INBOX)
    .where(_INBOX.c.bot_id == bindparam("b"), _INBOX.c.update_id == bindparam("u"))
    .values(processed_at=None, payload=bindparam("p"))
)


async def reopen(session: AsyncSession, rows: list[tuple[int, int, str]]) -> None:
    """(bot, update_id, payload) stored as handled that are not: pending again, payload back
    (in the same transaction, so no other process ever sees them handled)."""
    if rows:
        await session.execute(_REOPEN, [{"b": b, "u": u, "p": p} for b, u, p in rows])


class InboxWriter(GroupCommit):
    """`await put(bot_id, update_id, payload, now)` → True if new, False if seen before."""

    def __init__(self, db: Database, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.db = db

    async def put(self, bot_id: int, update_id: int, payload: str, now: datetime) -> bool:
        return bool(await self.submit((bot_id, update_id, payload, now)))

    async def flush(self, items: list[Any]) -> list[Any]:
        async with self.db.session() as session:
            return await insert_updates(session, items)


class InboxDone(GroupCommit):
    """Marks updates handled, in batches."""

    def __init__(self, db: Database, **kwargs: Any) -> None:
        kwargs.setdefault("max_delay", 0.02)
        super().__init__(**kwargs)
        self.db = db

    async def done(self, bot_id: int, update_id: int, now: datetime) -> None:
        await self.submit((bot_id, update_id, now))

    async def flush(self, items: list[Any]) -> list[Any]:
        async with self.db.session() as session:
            await mark_done(session, [(b, u) for b, u, _ in items],
                            max(n for _, _, n in items))
        return [None] * len(items)


# Recovery hands an update back at most this many times: one whose handling crashes every
# time must not be requeued every 30 s forever.
MAX_ATTEMPTS = 3


async def pending(
    db: Database, bot_id: int, older_than: datetime, limit: int = 1000
) -> list[tuple[int, str]]:
    """Stored but never handled (a crash between acknowledge and handling): handle them now.
    Each is counted; after MAX_ATTEMPTS it is no longer returned (it is dead)."""
    async with db.session() as session:
        rows = (await session.execute(
            select(InboxUpdate.update_id, InboxUpdate.payload)
            .where(
                InboxUpdate.bot_id == bot_id,
                InboxUpdate.processed_at.is_(None),
                InboxUpdate.received_at < older_than,
                InboxUpdate.payload.is_not(None),
                InboxUpdate.attempts < MAX_ATTEMPTS,
            )
            .order_by(InboxUpdate.update_id)
            .limit(limit)
        )).all()
        if rows:
            await session.execute(
                update(InboxUpdate)
                .where(InboxUpdate.bot_id == bot_id,
                       InboxUpdate.update_id.in_([u for u, _ in rows]))
                .values(attempts=InboxUpdate.attempts + 1))
        return [(u, p) for u, p in rows if p is not None]


async def mark_dead(db: Database, bot_id: int, update_id: int, now: datetime) -> None:
    """An update that cannot be parsed: kept as handled (its id still filters redeliveries),
    payload dropped, never handed back by `pending`."""
    async with db.session() as session:
        await session.execute(
            update(InboxUpdate)
            .where(InboxUpdate.bot_id == bot_id, InboxUpdate.update_id == update_id)
            .values(processed_at=now, payload=None, attempts=MAX_ATTEMPTS))


async def erase_supporter(session: AsyncSession, supporter_id: int) -> None:
    """Updates from the person not yet handled (the /forget itself among them) lose their
    payload: it holds their Telegram id and name. Runs before the identities are deleted."""
    ids = (await session.execute(
        select(ChannelIdentity.bot_id, ChannelIdentity.external_user_id)
        .where(ChannelIdentity.supporter_id == supporter_id,
               ChannelIdentity.channel == "telegram"))).all()
    for bot_id, user_id in ids:
        if not user_id.isdigit():
            continue
        # The raw body as Telegram sent it: `"id":123,` (spaces tolerated).
        mentions = [InboxUpdate.payload.like(f'%"id":{sep}{user_id},%') for sep in ("", " ")]
        await session.execute(
            update(InboxUpdate)
            .where(InboxUpdate.bot_id == bot_id, InboxUpdate.processed_at.is_(None),
                   InboxUpdate.payload.is_not(None), or_(*mentions))
            .values(payload=None))


async def purge(db: Database, before: datetime) -> None:
    """Handled rows only matter for dedup while Telegram may redeliver (24 hours)."""
    async with db.session() as session:
        await session.execute(
            delete(InboxUpdate).where(
                InboxUpdate.processed_at.is_not(None), InboxUpdate.processed_at < before
            )
        )


RETENTION = timedelta(days=2)
