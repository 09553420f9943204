"""Nothing personal in logs: hostile inputs carrying a marker go through the dashboard, the API
and the CLI with every logger at DEBUG (SQLAlchemy's statement log included), and no captured
line holds the marker (the engines run with hide_parameters=True)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from campaigns import api as api_rules
from campaigns.clock import FixedClock
from campaigns.settings import Settings
from cli import cli
from storage.db import Database
from tests.builders import setup_petition
from tests.dashboard_helpers import cheap_password_hashes, make_organiser, sign_in  # noqa: F401
from web.app import create_app

NOW = FixedClock().now()
MARKER = "MARKERq7Zx"  # a search term or a title a person typed: personal, never logged


async def test_hostile_inputs_leave_no_trace_in_the_logs(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # statements + parameters
    clock = FixedClock(NOW)
    await setup_petition(db, clock)
    await make_organiser(db, NOW, "minji")
    async with db.session() as s:
        token = (await api_rules.create_token(s, name="w", scope="write", clock=clock,
                                              actor="cli")).secret
    app = create_app(Settings(secret_key="test-secret-key-for-sessions"), db, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        csrf = await sign_in(client, "minji")
        # Dashboard: searches (stored nowhere, but bound into SQL), a NUL title, a huge cell,
        # and a title that is accepted and stored.
        for url in (f"/petitions/clean-air?q={MARKER}", f"/supporters?q={MARKER}&tag={MARKER}"):
            assert (await client.get(url)).status_code == 200
        for title in (f"{MARKER}\x00", f"{MARKER} fine"):
            r = await client.post("/petitions", data={
                "csrf": csrf, "campaign": "air", "slug": "hostile", "title_ko": title})
            assert r.status_code == 303
        cell = MARKER * 120_000
        r = await client.post("/supporters/import", data={"csrf": csrf}, files={
            "file": ("s.csv", f"telegram_id,name,language,region,tier,tags,consent\n1,{cell},"
                              "ko,seoul,supporter,,granted\n".encode(), "text/csv")})
        assert r.status_code == 422
        # API: a NUL title, an accepted petition with the marker.
        headers = {"Authorization": f"Bearer {token}"}
        for title in (f"{MARKER}\x00", f"{MARKER} api"):
            r = await client.post("/api/v1/petitions", headers=headers, json={
                "campaign": "air", "slug": f"api-{len(title)}", "title_ko": title})
            assert r.status_code in (201, 422), r.text
    # CLI: a huge title and a huge cell, refused in one line each.
    path = tmp_path / "big.csv"
    path.write_text(f"telegram_id,name,language,region,tier,tags,consent\n1,{cell},ko,seoul,"
                    "supporter,,granted\n")
    env = {"NALGAE_DATABASE_URL": db.url, "NALGAE_LOG_LEVEL": "DEBUG"}
    for args in (["petition", "create", "--campaign", "air", "--slug", "cli-x",
                  "--title-ko", MARKER * 30_000],
                 ["petition", "create", "--campaign", "air", "--slug", "cli-y",
                  "--title-ko", f"{MARKER} cli"],
                 ["supporters", "import", str(path)]):
        result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert "Traceback" not in result.output
        if result.exit_code:
            assert MARKER not in result.output
    # The test's own HTTP client logs the URLs it requests: that is this test, not the product.
    lines = [r.getMessage() for r in caplog.records if r.name != "httpx"]
    assert any("SELECT" in line or "INSERT" in line for line in lines), "SQL was not logged"
    leaked = [line[:200] for line in lines if MARKER in line]
    assert leaked == []
