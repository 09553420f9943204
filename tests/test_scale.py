"""National scale (issue 14): streamed exports, keyset paging, and plans that stay on indexes."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from campaigns import api as api_rules
from campaigns import importer
from campaigns.clock import FixedClock
from campaigns.settings import Settings
from storage import bots, outbox, privacy
from storage import dashboard as queries
from storage import importer as import_store
from storage.db import Database
from tests.dashboard_helpers import (  # noqa: F401 (an autouse fixture)
    cheap_password_hashes,
    make_organiser,
    sign_in,
)
from web.app import create_app

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
HEADER = "telegram_id,name,language,region,tier,tags,consent\n"


async def _bot(db: Database) -> int:
    async with db.session() as s:
        return (await bots.ensure_bot(s, channel="telegram", name="scale", now=NOW)).id


async def _import(db: Database, bot_id: int, n: int, first: int = 5_000_000,
                  region: str = "seoul") -> None:
    rows = "".join(f"{first + i},김 {first + i},ko,{region},"
                   f"{'member' if i % 3 == 0 else ''},{'volunteer' if i % 2 else ''},yes\n"
                   for i in range(n))
    async with db.session() as s:
        result = await importer.import_supporters(s, bot_id, HEADER + rows, FixedClock(NOW))
    assert result.imported == n, result.problems[:3]
    await importer.after_import(db, result)


# --- exports stream --------------------------------------------------------------------------

async def test_the_supporter_export_hands_out_rows_before_reading_the_last(
    db: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A million-supporter export used to be one string built in memory before the first
    # byte left. Now the first batch is handed out while the rest is still unread (on
    # PostgreSQL the server's COPY output, in pieces of EXPORT_PIECE_BYTES).
    monkeypatch.setattr(import_store, "EXPORT_PIECE_BYTES", 64 * 1024)
    bot_id = await _bot(db)
    n = import_store.CHUNK + 500
    await _import(db, bot_id, n)
    async with db.session() as s:
        pieces = importer.export_chunks(s, bot_id, FixedClock(NOW), fmt="csv")
        header = await anext(pieces)
        first = await anext(pieces)
        assert header.startswith("telegram_id,name")
        # The first rows, and nothing of the last supporter yet: it has not been read.
        assert first.startswith("5000000,")
        assert f"{5_000_000 + n - 1}," not in first
        rest = [piece async for piece in pieces]
    assert sum(p.count("\n") for p in [first, *rest]) == n
    # Memory is bounded by a batch (or a COPY piece plus one read of the driver's), not
    # by the list.
    limit = 4 * 64 * 1024 if db.is_postgres else len(first)
    assert len(rest) >= 1 and max(len(p) for p in [first, *rest]) <= limit


async def test_the_dashboard_export_is_sent_in_pieces_and_equals_the_cli_file(
    db: Database,
) -> None:
    bot_id = await _bot(db)
    await _import(db, bot_id, import_store.CHUNK + 10)
    await make_organiser(db, NOW, "mina")
    app = create_app(Settings(secret_key="s" * 32), db, clock=FixedClock(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        await sign_in(client, "mina")
        cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    # Raw ASGI, so we see each body message as the app sends it (httpx buffers them).
    messages: list[MutableMapping[str, Any]] = []

    asked: list[bool] = []

    async def receive() -> MutableMapping[str, Any]:
        if not asked:
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected until the end
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        messages.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/export/supporters.csv",
             "raw_path": b"/export/supporters.csv", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1:8000"), (b"cookie", cookies.encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000)}
    await app(scope, receive, send)
    assert messages[0]["status"] == 200
    bodies = [m["body"] for m in messages if m["type"] == "http.response.body" and m["body"]]
    assert len(bodies) >= 3  # BOM, header, then a piece per batch
    csv_text = b"".join(bodies).decode()
    out = io.StringIO()
    async with db.session() as s:
        await importer.export_supporters(s, bot_id, out, FixedClock(NOW))
    assert csv_text == "\ufeff" + out.getvalue()


# --- keyset pagination -----------------------------------------------------------------------

async def test_paging_the_supporter_list_never_skips_or_repeats_while_people_join(
    db: Database,
) -> None:
    bot_id = await _bot(db)
    await _import(db, bot_id, 130)
    async with db.session() as s:
        everyone = {r.id for r in (await queries.supporters(s, bot_id, limit=1000)).rows}
    seen: list[int] = []
    before = None
    joined = 0
    while True:
        async with db.session() as s:
            page = await queries.supporters(s, bot_id, region="seoul", before=before, limit=20)
        seen.extend(r.id for r in page.rows)
        # Between pages people sign up (newest first: OFFSET would shift rows already
        # seen onto the next page) and one already listed erases themself (OFFSET
        # would then skip one never seen).
        await _import(db, bot_id, 7, first=6_000_000 + joined * 10)
        joined += 1
        if joined == 2:
            async with db.session() as s:
                for eraser in privacy.erasers():
                    await eraser(s, seen[0])
        if page.older is None:
            break
        before = page.older
    assert len(seen) == len(set(seen)) == 130
    assert set(seen) == everyone


async def test_api_people_next_links_page_by_id_without_skips_or_repeats(db: Database) -> None:
    bot_id = await _bot(db)
    await _import(db, bot_id, 60)
    clock = FixedClock(NOW)
    async with db.session() as s:
        new = await api_rules.create_token(s, name="t", scope="read", clock=clock, actor="cli")
    app = create_app(Settings(), db, clock=clock)
    seen: list[int] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        url: str | None = "/api/v1/people?per_page=25"
        first_ids: list[int] = []
        while url:
            body = (await client.get(url, headers={
                "Authorization": f"Bearer {new.secret}"})).json()
            ids = [p["id"] for p in body["_embedded"]["osdi:people"]]
            first_ids = first_ids or ids
            seen.extend(ids)
            if len(seen) == 25:  # someone listed already is erased between pages
                async with db.session() as s:
                    for eraser in privacy.erasers():
                        await eraser(s, first_ids[0])
            url = body["_links"].get("next", {}).get("href")
            if url:
                assert "after=" in url and "page=" in url  # still an OSDI next link
    assert len(seen) == len(set(seen)) == 60


# --- plans at scale (PostgreSQL) -------------------------------------------------------------

async def _plan(db: Database, query: Any) -> str:
    async with db.session() as s:
        compiled = query.compile(s.get_bind(), compile_kwargs={"literal_binds": True})
        return "\n".join(str(r[0]) for r in await s.execute(text(f"EXPLAIN {compiled}")))


@pytest.fixture
async def populated(db: Database) -> AsyncIterator[int]:
    if not db.is_postgres:
        pytest.skip("plans at scale are PostgreSQL's (SQLite is the small embedded store)")
    bot_id = await _bot(db)
    # Many regions, so one region is a small slice of the table, as it is nationally.
    for i, region in enumerate(("seoul", "busan", "gyeonggi", "jeju", "daejeon", "incheon",
                                "gwangju", "ulsan")):
        await _import(db, bot_id, 4000, first=10_000_000 + i * 100_000, region=region)
    yield bot_id


async def test_the_filtered_supporter_list_is_planned_on_an_index(
    db: Database, populated: int,
) -> None:
    query = (queries.supporter_list_query(populated, region="jeju", search="김")
             .where(text("supporter.id < 10350000")).order_by(text("supporter.id DESC"))
             .limit(51))
    plan = await _plan(db, query)
    assert "Seq Scan on supporter" not in plan, plan


async def test_the_audience_count_with_three_filters_is_planned_on_indexes(
    db: Database, populated: int,
) -> None:
    query = outbox.audience_count_query(populated, outbox.AudienceQuery(
        regions=("jeju",), tiers=("member",), tags=("volunteer",)), several_bots=False)
    plan = await _plan(db, query)
    assert "Seq Scan on supporter " not in plan + " ", plan
    assert "Seq Scan on channel_identity" not in plan, plan


# --- slow summaries ----------------------------------------------------------------------------

async def test_a_slow_summary_is_shared_for_a_while_and_a_quick_one_never(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastapi import FastAPI
    from starlette.requests import Request

    from web import pages

    request = Request({"type": "http", "app": FastAPI(), "headers": []})
    readings: list[int] = []

    async def quick() -> int:
        readings.append(len(readings))
        return len(readings)

    # On a small store every view reads afresh: figures are exact at once.
    assert [await pages.slow_summary(request, "k", quick) for _ in range(3)] == [1, 2, 3]
    # At a million people one reading takes seconds: views within the TTL share it.
    monkeypatch.setattr(pages, "SLOW_SUMMARY_S", -1.0)
    assert [await pages.slow_summary(request, "k", quick) for _ in range(3)] == [4, 4, 4]
    assert await pages.slow_summary(request, "k", quick, ttl=0.0) == 5


async def test_the_postgresql_copy_export_writes_the_csv_the_python_path_writes(
    db: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On PostgreSQL the server writes the CSV (COPY); it must be the same file, byte for
    # byte, as the row-by-row path SQLite uses: formula quoting, commas and quotes, empty
    # cells, stopped people, several or no identities, timestamps with and without
    # microseconds.
    if not db.is_postgres:
        pytest.skip("COPY is PostgreSQL's")
    bot_id = await _bot(db)
    csv_rows = (
        '101,"=SUM(A1)",ko,seoul,member,"-x;b,c",yes\n'
        '102,"Kim, ""the"" one",en,,,,yes\n'
        "103,,ko,busan,supporter,'@tag,yes\n"
        "104,+82 10,ko,jeju,member,volunteer;donor;간사,yes\n"
        "105,이서연,en,abroad,supporter,,yes\n"
        "106,@handle,ko,,,,yes\n"
    )
    async with db.session() as s:
        result = await importer.import_supporters(s, bot_id, HEADER + csv_rows, FixedClock(NOW))
        assert result.imported == 6, result.problems
        for status, name in (("stopped", "이서연"), ("erased", "@handle")):
            await s.execute(
                text("UPDATE supporter SET status = :status WHERE display_name = :name"),
                {"status": status, "name": name})
        await s.execute(text("UPDATE supporter SET created_at = created_at + interval '0.000123 s'"
                             " WHERE tier = 'member'"))
        await s.execute(text("DELETE FROM channel_identity WHERE external_user_id = '103'"))
        await s.execute(text(
            "INSERT INTO channel_identity (supporter_id, bot_id, channel, external_user_id,"
            " chat_id, reachable, created_at)"
            " SELECT supporter_id, bot_id, channel, '999', 999, true, created_at"
            " FROM channel_identity WHERE external_user_id = '104'"))
        await s.commit()

    async def export() -> tuple[str, int]:
        out = io.StringIO()
        async with db.session() as s:
            count = await importer.export_supporters(s, bot_id, out, FixedClock(NOW))
        return out.getvalue(), count

    copied, copied_count = await export()
    monkeypatch.setattr(import_store, "can_copy", lambda session: False)
    written, written_count = await export()
    assert copied == written
    assert copied_count == written_count == 6  # 104 twice, 103 without an id, no 106
    assert "101,'=SUM(A1),ko,seoul,member,'-x;b;c,yes," in copied
    # The last column, district, is empty.
    assert '102,"Kim, ""the"" one",en,,supporter,,yes,active,2026-12-02T09:00:00+00:00,\n' in copied


# --- the overview reads counters ---------------------------------------------------------------

async def test_the_overview_reads_no_supporter_rows_and_stays_exact(db: Database) -> None:
    """Its first view took 1.25 s at a million: it counted every supporter and identity.
    Now no statement it runs reads `supporter` or `channel_identity` (the counters only),
    so its cost does not grow with the supporters, and every view is exact at once."""
    from sqlalchemy import event

    from storage import stats

    bot_id = await _bot(db)
    await _import(db, bot_id, 300)
    await make_organiser(db, NOW, "ana")
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    app = create_app(Settings(secret_key="scale-test-secret"), db, clock=FixedClock(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        await sign_in(client, "ana")
        event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
        try:
            page = (await client.get("/")).text
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
        readers = [s for s in statements
                   if any(f"FROM {t}" in s or f"JOIN {t}" in s
                          for t in ("supporter ", "supporter\n", "channel_identity"))]
        assert statements and readers == [], readers
        assert "300" in page
        await _import(db, bot_id, 5, first=6_000_000, region="busan")  # shown at once
        async with db.session() as s:
            assert (await stats.active_by_region(s)) == {"seoul": 300, "busan": 5}
        assert "305" in (await client.get("/")).text
