"""A database of the first release (revision 0001, commit 5a7a948), full of what that
code wrote, through `nalgae db upgrade` to head: nothing lost, the new columns empty,
the overview counters counted, the bot token sealed, and the app at work on it.
Then back down to 0001 with the data still there."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from campaigns import signin
from campaigns.clock import FixedClock
from campaigns.settings import Settings
from cli import cli
from storage import migrate, supporter_counts
from storage.db import Database
from tests.dashboard_helpers import (
    PASSWORD,
    cheap_password_hashes,  # noqa: F401  (autouse)
    sign_in,
)
from tests.test_migrations import empty_db  # noqa: F401  (a fixture: a database with no tables)
from tests.test_signup_rules import person, sign_up
from web.app import create_app

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
T = [NOW - timedelta(days=10, hours=h) for h in range(40)]
PLAIN_TOKEN = "123456:RELEASED-plain-text-token"
API_TOKEN = "nalgae_released_api_token_0001"
TOKEN_KEY = "a-token-key-of-at-least-16-chars"

# (display_name, region, district, tier, status); 12 active, 1 stopped, 1 erased.
PEOPLE = [
    *[(f"서울{i}", "seoul", None, ("member", "supporter")[i % 2], "active") for i in range(6)],
    *[(f"경기{i}", "gyeonggi", ("suwon", "goyang", "yeoncheon")[i % 3], "supporter", "active")
      for i in range(5)],
    ("무지역", None, None, "supporter", "active"),
    ("그만", "busan", None, "supporter", "stopped"),
    (None, None, None, "supporter", "erased"),
]


def _ts(dialect: str, at: datetime) -> Any:
    """A time as 5a7a948's UTCDateTime stored it (naive text on SQLite)."""
    return at.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else at


async def _fill(db: Database) -> None:
    """The rows the released code wrote, by plain SQL against the 0001 schema."""
    d = db.dialect

    def ts(i: int) -> Any:
        return _ts(d, T[i])

    async with db.engine.begin() as conn:
        async def run(sql: str, *rows: dict[str, Any]) -> None:
            for row in rows:
                await conn.execute(text(sql), row)

        await run("INSERT INTO bot (id, channel, name, token, max_rate, enabled, created_at)"
                  " VALUES (1, 'telegram', 'main', :tok, 30.0, :on, :t)",
                  {"tok": PLAIN_TOKEN, "on": True, "t": ts(39)})
        await run("INSERT INTO campaign (id, bot_id, slug, title_ko, title_en, status,"
                  " created_at) VALUES (1, 1, 'air', '맑은 공기', 'Clean air', 'active', :t)",
                  {"t": ts(39)})
        for i, (name, region, district, tier, status) in enumerate(PEOPLE, start=1):
            await run(
                "INSERT INTO supporter (id, bot_id, display_name, language, region, district,"
                " tier, status, source_ref, created_at, updated_at, consented_at, stopped_at,"
                " erased_at) VALUES (:id, 1, :n, 'ko', :r, :dist, :tier, :st, :src, :c, :c,"
                " :con, :stop, :er)",
                {"id": i, "n": name, "r": region, "dist": district, "tier": tier, "st": status,
                 "src": "poster7" if i % 4 == 0 else None, "c": ts(30 - i),
                 "con": None if status == "erased" else ts(30 - i),
                 "stop": ts(2) if status == "stopped" else None,
                 "er": ts(1) if status == "erased" else None})
            if status == "erased":
                continue
            await run("INSERT INTO channel_identity (supporter_id, bot_id, channel,"
                      " external_user_id, chat_id, reachable, created_at) VALUES"
                      " (:s, 1, 'telegram', :u, :chat, :reach, :c)",
                      {"s": i, "u": str(500_000 + i), "chat": 500_000 + i,
                       "reach": i != 3, "c": ts(30 - i)})
            await run("INSERT INTO consent (supporter_id, purpose, notice_version, choice,"
                      " channel, created_at) VALUES (:s, 'campaign_contact', '2026-01',"
                      " 'granted', 'telegram', :c)", {"s": i, "c": ts(30 - i)})
        await run("INSERT INTO supporter_tag (supporter_id, tag) VALUES (:s, :tag)",
                  {"s": 1, "tag": "volunteer"}, {"s": 1, "tag": "donor"},
                  {"s": 7, "tag": "volunteer"})

        await run("INSERT INTO petition (id, campaign_id, slug, title_ko, title_en, body_ko,"
                  " status, milestones, signature_count, last_milestone, last_milestone_at,"
                  " created_at, updated_at) VALUES (1, 1, 'clean-air', '미세먼지 대책',"
                  " 'Act on fine dust', '본문', 'open', :m, 7, 5, :t, :t, :t)",
                  {"m": json.dumps([5, 100]), "t": ts(20)})
        await run("INSERT INTO signature (petition_id, supporter_id, region, tier, source_ref,"
                  " created_at, valid) VALUES (1, :s, :r, 'supporter', :src, :t, :v)",
                  *[{"s": s, "r": PEOPLE[s - 1][1], "src": "flyer" if s == 2 else None,
                     "t": ts(15 - s), "v": True} for s in (1, 2, 3, 4, 7, 8, 9)])
        await run("INSERT INTO petition_region_count (petition_id, region, count)"
                  " VALUES (1, :r, :n)", {"r": "seoul", "n": 4}, {"r": "gyeonggi", "n": 3})

        await run("INSERT INTO poll (id, campaign_id, slug, question_ko, question_en, kind,"
                  " options, weights, secret, allow_change, native, status, created_at,"
                  " updated_at) VALUES (1, 1, 'mascot', '마스코트?', 'Mascot?', 'single', :o,"
                  " :w, :f, :on, :f, 'open', :t, :t)",
                  {"o": json.dumps([{"ko": "고양이", "en": "Cat"}, {"ko": "개", "en": "Dog"}]),
                   "w": json.dumps({"member": "1", "supporter": "1"}), "f": False, "on": True,
                   "t": ts(12)})
        for s in (1, 2, 7):
            await run("INSERT INTO poll_voter (poll_id, supporter_id) VALUES (1, :s)", {"s": s})
            await run("INSERT INTO poll_answer (poll_id, supporter_id, choices, tier, region,"
                      " weight, answered_at) VALUES (1, :s, :c, :tier, :r, '1', :t)",
                      {"s": s, "c": str(s % 2), "tier": PEOPLE[s - 1][3],
                       "r": PEOPLE[s - 1][1], "t": ts(11)})

        await run("INSERT INTO event (id, campaign_id, slug, title_ko, title_en, place,"
                  " starts_at, ends_at, capacity, waitlist, members_only, reminders, status,"
                  " version, rsvp_seq, created_at, updated_at) VALUES (1, 1, 'rally',"
                  " '광장 집회', 'Square rally', '광장', :s, :e, 2, :on, :f, :rem, 'open', 1, 3,"
                  " :t, :t)", {"s": _ts(d, NOW + timedelta(days=5)),
                               "e": _ts(d, NOW + timedelta(days=5, hours=2)), "on": True,
                               "f": False, "rem": json.dumps([1440]), "t": ts(10)})
        await run("INSERT INTO event_rsvp (event_id, supporter_id, status, seq, region,"
                  " created_at, updated_at) VALUES (1, :s, :st, :q, :r, :t, :t)",
                  *[{"s": s, "st": st, "q": q, "r": PEOPLE[s - 1][1], "t": ts(9)}
                    for q, (s, st) in enumerate([(1, "going"), (8, "going"),
                                                 (2, "waitlisted")], start=1)])

        await run("INSERT INTO survey (id, campaign_id, slug, title_ko, title_en, definition,"
                  " anonymous, locked, weights, status, created_at, updated_at) VALUES"
                  " (1, 1, 'needs', '필요', 'Needs', :def, :f, :on, :w, 'closed', :t, :t)",
                  {"def": json.dumps({"questions": [{"id": "q1", "kind": "text",
                                                     "ko": "무엇이 필요한가요?",
                                                     "en": "What do you need?"}]}),
                   "f": False, "on": True, "w": json.dumps({"member": "1", "supporter": "1"}),
                   "t": ts(8)})
        for s in (1, 9):
            await run("INSERT INTO survey_respondent (survey_id, supporter_id) VALUES (1, :s)",
                      {"s": s})
            await run("INSERT INTO survey_answer (survey_id, response_key, question,"
                      " supporter_id, value, tier, region, weight) VALUES (1, :k, 'q1', :s,"
                      " :v, :tier, :r, '1')",
                      {"k": f"r{s}", "s": s, "v": f"버스 {s}", "tier": PEOPLE[s - 1][3],
                       "r": PEOPLE[s - 1][1]})

        await run("INSERT INTO idea (id, campaign_id, proposer_id, title, body, language,"
                  " status, back_count, created_at, updated_at) VALUES (1, 1, 7, '나무 심기',"
                  " '가로수를 더', 'ko', 'published', 2, :t, :t)", {"t": ts(7)})
        await run("INSERT INTO idea_backing (idea_id, campaign_id, supporter_id, tier, region,"
                  " created_at) VALUES (1, 1, :s, :tier, :r, :t)",
                  *[{"s": s, "tier": PEOPLE[s - 1][3], "r": PEOPLE[s - 1][1], "t": ts(6)}
                    for s in (8, 9)])

        await run("INSERT INTO organiser (id, login, display_name, role, created_at,"
                  " session_version) VALUES (1, 'minji', '민지', 'organiser', :t, 0),"
                  " (2, 'gyeong', '경기 담당', 'organiser', :t, 0)", {"t": ts(39)})
        await run("INSERT INTO chapter (id, name, title, regions, bot_id, created_at)"
                  " VALUES (1, 'gyeonggi', '경기 지부', :r, 1, :t)",
                  {"r": json.dumps(["gyeonggi"]), "t": ts(38)})
        await run("INSERT INTO chapter_organiser (chapter_id, organiser_id) VALUES (1, 2)", {})
        await run("INSERT INTO api_token (name, token_hash, scope, created_by, created_at)"
                  " VALUES ('crm', :h, 'read', 'cli', :t)",
                  {"h": hashlib.sha256(API_TOKEN.encode()).hexdigest(), "t": ts(5)})
        if d == "postgresql":  # explicit ids, as a restore would leave them: sequences on
            for table in ("bot", "campaign", "supporter", "petition", "poll", "event",
                          "survey", "idea", "organiser", "chapter"):
                await conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" (SELECT max(id) FROM {table}))"))


def _dump(sync_conn: Connection, tables: dict[str, list[str]]) -> dict[str, list[str]]:
    """Every row of ``tables`` (only the given columns), as sorted text."""
    out = {}
    for table, columns in tables.items():
        rows = sync_conn.execute(text(
            # Quoted: some names are keywords on PostgreSQL (similar, current).
            "SELECT " + ", ".join(f'"{c}"' for c in columns) + f" FROM {table}"
        )).mappings().all()
        out[table] = sorted(repr(sorted(dict(r).items())) for r in rows)
    return out


def _released_columns(sync_conn: Connection) -> dict[str, list[str]]:
    found = inspect(sync_conn)
    return {t: [c["name"] for c in found.get_columns(t)] for t in found.get_table_names()
            if t != "alembic_version"}


async def _nalgae_db_upgrade(db: Database, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("NALGAE_DATABASE_URL", db.url)
    monkeypatch.setenv("NALGAE_TOKEN_KEY", TOKEN_KEY)
    # The CLI runs its own event loop: in a thread, as from a shell.
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["db", "upgrade", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


async def test_a_released_database_upgrades_with_nothing_lost(
        empty_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    db = empty_db
    await migrate.upgrade(db, "0001")
    await _fill(db)
    async with db.engine.connect() as conn:
        released = await conn.run_sync(_released_columns)
        before = await conn.run_sync(_dump, released)
    assert len(before["supporter"]) == len(PEOPLE) and len(before["signature"]) == 7

    done = await _nalgae_db_upgrade(db, monkeypatch)
    assert (done["from"], done["to"]) == ("0001", migrate.head_revision())
    assert await migrate.schema_differences(db) == []

    async with db.engine.connect() as conn:
        after = await conn.run_sync(_dump, released)
        bot = (await conn.execute(text("SELECT token, token_hint FROM bot"))).one()
        rsvp_refs = (await conn.execute(text("SELECT source_ref FROM event_rsvp"))).all()
        new_rows = {t: (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar()
                    for t in ("invite", "referral", "interest", "x_account")}
    # Every released row with every released value, but the token, now sealed.
    assert {t: r for t, r in after.items() if t != "bot"} == {
        t: r for t, r in before.items() if t != "bot"}
    assert bot.token.startswith("enc1:") and PLAIN_TOKEN not in bot.token
    assert bot.token_hint and PLAIN_TOKEN not in bot.token_hint
    assert rsvp_refs == [(None,)] * 3
    assert new_rows == {"invite": 0, "referral": 0, "interest": 0, "x_account": 0}

    async with db.session() as s:
        # The counters start from a recount of the released rows: nothing to correct.
        assert await supporter_counts.reconcile(s) == 0
        counted = await supporter_counts.by_status_tier_region(s, 1)
    assert counted[("active", "member", "seoul")] == 3
    assert counted[("active", "supporter", "gyeonggi")] == 5
    assert counted[("stopped", "supporter", "busan")] == 1
    assert sum(counted.values()) == len(PEOPLE)

    clock = FixedClock(NOW)
    async with db.session() as s:
        await signin.set_password(s, "minji", PASSWORD, clock, by="cli")
    app = create_app(Settings(secret_key="test-secret-key-for-sessions"), db, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        await sign_in(client, "minji")
        home = await client.get("/?lang=en")
        assert home.status_code == 200
        assert "<b>12</b><span>Active supporters" in home.text.replace("\n", "")
        petition = await client.get("/petitions/clean-air?lang=en")
        assert petition.status_code == 200
        assert 'data-label="Seoul" data-value="4"' in petition.text
        api = await client.get("/api/v1/petitions",
                               headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert api.status_code == 200 and "clean-air" in api.text, api.text
    async with db.session() as s:
        await signin.set_password(s, "gyeong", PASSWORD, clock, by="cli")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        await sign_in(client, "gyeong")  # the 경기 chapter's organiser: its scope only
        home = await client.get("/?lang=en")
        assert "<b>5</b><span>Active supporters" in home.text.replace("\n", "")

    # A new supporter signs up through the rules, and the counters follow.
    await sign_up(db, person(1, user_id="900001", chat_id=900001), clock)
    async with db.session() as s:
        counted = await supporter_counts.by_status_tier_region(s, 1)
        assert counted[("active", "supporter", "busan")] == 1
        assert await supporter_counts.reconcile(s) == 0

    # And back: 0002 comes off, every row of the released tables stays as it was.
    async with db.engine.connect() as conn:
        at_head = await conn.run_sync(_dump, released)
    await migrate.downgrade(db, "0001")
    assert await migrate.current_revision(db) == "0001"
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_released_columns) == released
        assert await conn.run_sync(_dump, released) == at_head
    assert set(before["supporter"]) < set(at_head["supporter"])  # plus the one who signed up
    # The released code keeps writing supporters there (no trigger left behind).
    async with db.engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO supporter (bot_id, language, tier, status, created_at, updated_at)"
            " VALUES (1, 'ko', 'supporter', 'active', :t, :t)"), {"t": _ts(db.dialect, NOW)})
    await migrate.upgrade(db)  # and up again, recounted
    async with db.session() as s:
        assert await supporter_counts.reconcile(s) == 0
        assert sum((await supporter_counts.by_status_tier_region(s, 1)).values()) == len(
            PEOPLE) + 2
