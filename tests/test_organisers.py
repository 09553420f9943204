"""Organiser roles: first admins from NALGAE_ADMINS, refusals audited, on both stores."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from campaigns import organisers
from campaigns.clock import FixedClock
from campaigns.people import Person
from campaigns.settings import Settings
from storage.db import Database
from storage.models import AuditLog, Organiser
from tests.builders import make_bot, make_supporters


def person(bot_id: int, user_id: str) -> Person:
    return Person(bot_id=bot_id, channel="telegram", user_id=user_id, chat_id=int(user_id),
                  first_name="운영", language_code="ko")


async def refusals(db: Database) -> list[tuple[str, str | None, dict[str, object] | None]]:
    async with db.session() as s:
        rows = await s.execute(select(AuditLog.actor, AuditLog.target, AuditLog.details)
                               .where(AuditLog.action == "organiser.refused")
                               .order_by(AuditLog.id))
        return [(a, t, d) for a, t, d in rows.all()]


async def test_first_admins_come_from_settings(db: Database) -> None:
    clock = FixedClock()
    settings = Settings.from_env({"NALGAE_ADMINS": "1001, 1002,not-a-number"})
    async with db.session() as s:
        assert await organisers.bootstrap_admins(s, settings.admins, clock) == 2
    async with db.session() as s:  # every process runs this at start: a no-op the next time
        assert await organisers.bootstrap_admins(s, settings.admins, clock) == 0
        rows = (await s.execute(select(Organiser.telegram_user_id, Organiser.role)
                                .order_by(Organiser.id))).all()
    assert [tuple(r) for r in rows] == [("1001", "admin"), ("1002", "admin")]


async def test_non_organisers_are_refused_and_audited(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    [sid] = await make_supporters(db, bot_id, clock.now(), 1, first_user_id=2001)
    async with db.session() as s:
        await organisers.set_role(s, "3001", "viewer", clock, by="cli")
        await organisers.set_role(s, "3002", "organiser", clock, by="cli")
    for user_id in ("2001", "9999", "3001"):
        async with db.session() as s:
            who = await organisers.authorize(s, person(bot_id, user_id), organisers.MANAGE,
                                             "petition.close", clock)
        assert who is None
    assert "운영진만" in organisers.refusal("ko").text
    async with db.session() as s:
        viewer = await organisers.authorize(s, person(bot_id, "3001"), organisers.VIEW,
                                            "stats", clock)
        manager = await organisers.authorize(s, person(bot_id, "3002"), organisers.MANAGE,
                                             "petition.close", clock)
    assert viewer is not None and manager is not None
    assert (viewer.role, manager.role) == ("viewer", "organiser")
    logged = await refusals(db)
    assert [(a, t) for a, t, _ in logged] == [
        (f"supporter:{sid}", "petition.close"),
        ("stranger", "petition.close"),  # nothing personal about someone who never consented
        (f"organiser:{viewer.id}", "petition.close"),
    ]
    assert logged[2][2] == {"need": "organiser", "role": "viewer"}
    # Internal ids only: no Telegram user id, name or chat id in the audit log.
    for _, _, details in logged:
        assert "2001" not in str(details) and "9999" not in str(details)


async def test_only_known_roles_and_numeric_ids(db: Database) -> None:
    clock = FixedClock()
    async with db.session() as s:
        with pytest.raises(ValueError):
            await organisers.set_role(s, "123", "boss", clock, by="cli")
        with pytest.raises(ValueError):
            await organisers.set_role(s, "@someone", "viewer", clock, by="cli")
        o = await organisers.set_role(s, "123", "viewer", clock, by="cli")
        o = await organisers.set_role(s, "123", "admin", clock, by="cli")
    assert o.role == "admin"
    assert organisers.allows("admin", organisers.MANAGE)
    assert not organisers.allows(None, organisers.VIEW)
