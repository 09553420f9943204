"""Data export and erasure across every table that can hold a supporter's data.

Each feature that stores something about a supporter adds its exporter and its
eraser here, so that `/export` and `/forget` can never miss a table. A test scans
every table after erasure for the supporter's identifiers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import CHECKPOINT_AFTER_COMMIT

Exporter = Callable[[AsyncSession, int], Awaitable[dict[str, Any]]]
Eraser = Callable[[AsyncSession, int], Awaitable[None]]


def exporters() -> list[Exporter]:
    """Every feature's exporter, in order. Add yours here."""
    from storage import api, events, ideas, outbox, petitions, polls, supporters, surveys, x
    from storage import invites as invite_store

    return [supporters.export_core, petitions.export_supporter, polls.export_supporter,
            outbox.export_supporter, api.export_supporter, x.export_supporter,
            surveys.export_supporter, ideas.export_supporter, events.export_supporter,
            invite_store.export_supporter]


def erasers() -> list[Eraser]:
    """Every feature's eraser. Erase rows or unlink them so aggregates survive. Add yours here."""
    from storage import api, events, ideas, inbox, outbox, petitions, polls, supporters, surveys, x
    from storage import invites as invite_store

    # The inbox first: it finds the person's updates by their identities, which
    # erase_core deletes.
    return [inbox.erase_supporter, supporters.erase_core, petitions.erase_supporter,
            polls.erase_supporter, outbox.erase_supporter, api.erase_supporter, x.erase_supporter,
            surveys.erase_supporter, ideas.erase_supporter, events.erase_supporter,
            invite_store.erase_supporter]


async def erase(session: AsyncSession, supporter_id: int, now: datetime) -> None:
    """/forget: every eraser, then (once committed) the bytes leave the disk too: SQLite runs
    with `secure_delete` (freed content is zeroed) and the WAL, which still holds the old
    pages, is checkpointed and truncated (see Database.session).

    First, the person leaves events not yet ended (`now` says which): an erased row must
    not hold a seat, nor wait for one."""
    from storage import events

    await events.leave_upcoming(session, supporter_id, now)
    for eraser in erasers():
        await eraser(session, supporter_id)
    session.info[CHECKPOINT_AFTER_COMMIT] = True
