"""`nalgae event` end to end, with --json, on both stores: the contract scripts rely on."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from campaigns import events
from campaigns.clock import SystemClock
from storage import events as store
from storage.db import Database
from storage.models import AuditLog, Supporter
from tests.builders import make_bot, make_supporters
from tests.test_petitions_cli import ok, run


async def test_event_create_show_checkin_and_export(db: Database) -> None:
    clock = SystemClock()
    bot_id = await make_bot(db, clock.now())
    await ok(db, "campaign", "create", "--slug", "cycle", "--title-ko", "온오프 순환")
    made = await ok(db, "event", "create", "--campaign", "cycle", "--slug", "screening-1219",
                    "--title-ko", "다큐 상영회", "--title-en", "Screening",
                    "--starts-at", "2099-12-19T19:00", "--ends-at", "2099-12-19T21:00",
                    "--place", "마포 문화센터", "--lat", "37.55", "--lon", "126.91",
                    "--capacity", "2", "--waitlist", "--rsvp-closes-at", "2099-12-19T18:00",
                    "--region", "seoul", "--reminders", "24h,2h")
    assert made["status"] == "draft" and made["starts_at"].startswith("2099-12-19T10:00")
    assert made["reminders"] == [1440, 120] and made["region"] == "seoul"
    assert (await ok(db, "event", "open", "screening-1219"))["status"] == "open"
    ids = await make_supporters(db, bot_id, clock.now(), 3)
    async with db.session() as s:
        for sid in ids:
            await events.rsvp(s, await s.get_one(Supporter, sid), "screening-1219", "going",
                              clock)
        event = await store.event_by_slug(s, "screening-1219")
        assert event is not None
        await store.set_code(s, event.id, ids[0], events.hash_code("ABCDE23456"))
    shown = await ok(db, "event", "show", "screening-1219")
    for key in ("going", "maybe", "waitlisted", "checked_in", "capacity"):
        assert type(shown[key]) is int, key
    assert (shown["going"], shown["waitlisted"], shown["capacity"]) == (2, 1, 2)
    assert shown["unlimited"] is False
    # No limit: capacity is still an integer, and "unlimited" says what its 0 means.
    rally = await ok(db, "event", "create", "--campaign", "cycle", "--slug", "rally",
                     "--title-ko", "집회", "--starts-at", "2099-12-20T14:00",
                     "--ends-at", "2099-12-20T16:00", "--place", "광화문")
    assert (rally["capacity"], rally["unlimited"]) == (0, True)
    shown_rally = await ok(db, "event", "show", "rally")
    assert type(shown_rally["capacity"]) is int and shown_rally["unlimited"] is True
    assert "going 0," in (await run(db, "event", "show", "rally")).stdout

    checked = await ok(db, "event", "checkin", "screening-1219", "abcde-23456")
    assert checked["ok"] is True
    again = await run(db, "event", "checkin", "screening-1219", "ABCDE-23456")
    assert again.exit_code == 1 and "already used" in again.stderr
    assert (await ok(db, "event", "show", "screening-1219"))["checked_in"] == 1

    listed = await ok(db, "event", "attendees", "screening-1219", "--status", "going")
    assert [r["status"] for r in listed] == ["going", "going"]
    exported = await run(db, "event", "export", "screening-1219")
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(rows) == 3 and sum(bool(r["checked_in_at"]) for r in rows) == 1

    bumped = await ok(db, "event", "update", "screening-1219", "--capacity", "3")
    assert (bumped["going"], bumped["waitlisted"]) == (3, 0)  # the waitlist was promoted
    assert (await ok(db, "event", "cancel", "screening-1219"))["status"] == "cancelled"
    bad = await run(db, "event", "create", "--campaign", "cycle", "--slug", "x",
                    "--title-ko", "t", "--starts-at", "2099-01-01T10:00",
                    "--ends-at", "2099-01-01T09:00", "--place", "p")
    assert bad.exit_code == 1 and bad.stderr.startswith("error:")
    async with db.session() as s:
        actions = set((await s.execute(select(AuditLog.action))).scalars())
    assert {"event.created", "event.opened", "event.checkin", "event.checkin_refused",
            "event.exported", "event.updated", "event.cancelled"} <= actions
