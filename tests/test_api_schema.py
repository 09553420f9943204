"""Schemathesis against the OpenAPI document, in-process (ASGI), with a write token:
whatever it sends, the API answers without a server error.

Bounded (a few examples per operation) so that it runs in seconds, on SQLite: the
per-backend behaviour is covered by tests/test_api.py.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from campaigns import api as api_rules
from campaigns.clock import FixedClock, SystemClock
from campaigns.settings import Settings, database_url_for_driver
from storage.db import Database
from tests.builders import make_event, make_supporters, setup_petition
from tests.conftest import run_sync
from web.app import create_app

MAX_EXAMPLES = 8
TOKEN: dict[str, str] = {}


async def _prepare(url: str) -> str:
    """Tables, a petition with people, and a write token; then the engine is let go, so
    that the app's own engine connects on the event loop schemathesis runs it on."""
    db = Database(url)
    try:
        await db.create_all()
        clock = SystemClock()
        bot_id, _petition = await setup_petition(db, clock)  # type: ignore[arg-type]
        await make_supporters(db, bot_id, datetime.now(UTC), 3)
        await make_event(db, FixedClock(datetime.now(UTC)), capacity=2)  # events, attendances
        async with db.session() as s:
            new = await api_rules.create_token(s, name="schemathesis", scope="write",
                                               clock=clock, actor="cli")
        return new.secret
    finally:
        await db.dispose()


# Built at import, as schemathesis needs the schema to generate the tests; the app's
# engine does not connect before the first request, after `prepared_store` ran.
_DIR = Path(tempfile.mkdtemp(prefix="nalgae-schemathesis-"))
_URL = database_url_for_driver(f"sqlite:///{_DIR / 'nalgae.db'}")
schema = schemathesis.openapi.from_asgi(
    # schemathesis calls the app as http://testserver: that is its public URL here.
    "/api/openapi.json", create_app(Settings(public_url="http://testserver"), Database(_URL))
).include(path_regex=r"^/api/v1")


@pytest.fixture(scope="module", autouse=True)
def prepared_store() -> Iterator[None]:
    TOKEN["Authorization"] = "Bearer " + run_sync(lambda: _prepare(_URL))
    yield
    shutil.rmtree(_DIR, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_fail(case: Any) -> None:
    case.call_and_validate(headers=dict(TOKEN), checks=[not_a_server_error])
