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

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from storage.batching import GroupCommit
from storage.db import Database
from storage.models import InboxUpdate

log = logging.getLogger(__name__)


def _insert(db: Database) -> Any:
    return (postgresql.insert if db.is_postgres else sqlite.insert)(InboxUpdate)


class InboxWriter(GroupCommit):
    """`await put(bot_id, update_id, payload, now)` → True if new, False if seen before."""

    def __init__(self, db: Database, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.db = db
        self._stmt: Any = None

    async def put(self, bot_id: int, update_id: int, payload: str, now: datetime) -> bool:
        return bool(await self.submit((bot_id, update_id, payload, now)))

    async def flush(self, items: list[Any]) -> list[Any]:
        # Two copies of one update inside one batch: the first wins, like the PK would.
        unique: dict[tuple[int, int], dict[str, Any]] = {}
        for b, u, p, n in items:
            unique.setdefault((b, u), {"bot_id": b, "update_id": u, "payload": p,
                                       "received_at": n, "attempts": 0})
        # executemany of one cached statement (SQLAlchemy's insertmanyvalues): a multi-row
        # VALUES built per batch would be compiled again for every batch size.
        async with self.db.session() as session:
            result = await session.execute(self._statement(), list(unique.values()))
            inserted = {(b, u) for b, u in result.all()}
        seen: set[tuple[int, int]] = set()
        out = []
        for b, u, _, _ in items:
            key = (b, u)
            out.append(key in inserted and key not in seen)
            seen.add(key)
        return out

    def _statement(self) -> Any:
        if self._stmt is None:
            self._stmt = (
                _insert(self.db)
                .on_conflict_do_nothing()
                .returning(InboxUpdate.bot_id, InboxUpdate.update_id)
            )
        return self._stmt


class InboxDone(GroupCommit):
    """Marks updates handled and drops their payload (it holds personal data)."""

    def __init__(self, db: Database, **kwargs: Any) -> None:
        kwargs.setdefault("max_delay", 0.02)
        super().__init__(**kwargs)
        self.db = db

    async def done(self, bot_id: int, update_id: int, now: datetime) -> None:
        await self.submit((bot_id, update_id, now))

    async def flush(self, items: list[Any]) -> list[Any]:
        now = max(n for _, _, n in items)
        async with self.db.session() as session:
            await session.execute(
                _DONE, [{"b": b, "u": u, "now": now} for b, u, _ in items]
            )
        return [None] * len(items)


_DONE = (
    update(InboxUpdate)
    .where(InboxUpdate.bot_id == bindparam("b"), InboxUpdate.update_id == bindparam("u"))
    .values(processed_at=bindparam("now"), payload=None)
)


async def pending(
    db: Database, bot_id: int, older_than: datetime, limit: int = 1000
) -> list[tuple[int, str]]:
    """Stored but never handled (a crash between acknowledge and handling): handle them now."""
    async with db.session() as session:
        rows = await session.execute(
            select(InboxUpdate.update_id, InboxUpdate.payload)
            .where(
                InboxUpdate.bot_id == bot_id,
                InboxUpdate.processed_at.is_(None),
                InboxUpdate.received_at < older_than,
                InboxUpdate.payload.is_not(None),
            )
            .order_by(InboxUpdate.update_id)
            .limit(limit)
        )
        return [(u, p) for u, p in rows.all() if p is not None]


async def purge(db: Database, before: datetime) -> None:
    """Handled rows only matter for dedup while Telegram may redeliver (24 hours)."""
    async with db.session() as session:
        from sqlalchemy import delete

        await session.execute(
            delete(InboxUpdate).where(
                InboxUpdate.processed_at.is_not(None), InboxUpdate.processed_at < before
            )
        )


RETENTION = timedelta(days=2)
