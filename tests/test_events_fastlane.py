"""참석 through the webhook's fast lane: stored first, counted once, the same answers as
the PTB path (a seat, then the waitlist), the button's callback answered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
from sqlalchemy import select

from campaigns.clock import FixedClock
from storage.db import Database
from storage.models import AuditLog, EventRsvp
from tests.builders import make_event
from tests.test_webhook import fast_lane_env, post_updates, settled, signed_up


def press_json(update_id: int, user_id: int, data: str) -> bytes:
    user = {"id": user_id, "is_bot": False, "first_name": "Web", "language_code": "en"}
    return orjson.dumps({
        "update_id": update_id,
        "callback_query": {
            "id": f"q{update_id}", "from": user, "chat_instance": "1", "data": data,
            "message": {"message_id": 1, "date": 1764230400, "text": "card",
                        "chat": {"id": user_id, "type": "private", "first_name": "Web"}},
        },
    })


async def test_fast_lane_rsvps_once_and_keeps_the_waitlist(db: Database) -> None:
    async with fast_lane_env(db, "clean-air") as (env, url):
        await make_event(db, FixedClock(datetime.now(UTC)), capacity=1)
        first = await signed_up(env, 6201, "Sora")
        second = await signed_up(env, 6202, "Mina")
        # A redelivered press counts once.
        await post_updates(url, press_json(710001, 6201, "ev:g:screening"),
                           press_json(710001, 6201, "ev:g:screening"),
                           press_json(710002, 6202, "ev:g:screening"))
        await first.expect("You are going to", since=0)
        await second.expect("number 1 on the waitlist", since=0)
        await asyncio.sleep(0.3)
        texts = [m.text or "" for m in first.user.chat.log if m.from_bot]
        assert sum("You are going to" in t for t in texts) == 1
        async with db.session() as s:
            rows = (await s.execute(select(EventRsvp.status).order_by(EventRsvp.seq))).all()
        assert [r[0] for r in rows] == ["going", "waitlisted"]
        assert await settled(db) == 0
        async with db.session() as s:  # audited as a press handled alone is
            audited = (await s.execute(select(AuditLog.details).where(
                AuditLog.action == "event.rsvp").order_by(AuditLog.id))).scalars().all()
        assert [d["status"] for d in audited] == ["going", "waitlisted"]
