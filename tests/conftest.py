"""Shared fixtures: real SQLite and PostgreSQL stores, real Redis.

PostgreSQL and Redis tests skip with a printed reason when the server is absent;
with NALGAE_REQUIRE_SERVICES=1 (CI) a missing service fails the run instead.
Each test process gets its own PostgreSQL database and Redis key prefix, so
several test runs on one machine do not disturb each other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import ipaddress
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from storage.db import Database

PG_ADMIN_URL = os.environ.get("NALGAE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("NALGAE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
T = TypeVar("T")
REQUIRE = os.environ.get("NALGAE_REQUIRE_SERVICES") == "1"


# --- offline guard ---------------------------------------------------------------------------
# PTB's OfflineRequest idea: a test that reaches beyond this machine fails loudly, even
# when the code under test swallows the error (the attempt is remembered and the test
# fails at teardown). Loopback (the sandbox, PostgreSQL, Redis) and Unix sockets pass.


class UnexpectedNetworkCall(RuntimeError):
    pass


_OFFENCES: list[str] = []


def _is_local(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    text = str(host).split("%", 1)[0]  # IPv6 zone
    if text.lower() in ("localhost", "localhost.localdomain", ""):
        return True
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False  # a host name other than localhost
    return address.is_loopback or address.is_unspecified


def _refuse(what: str) -> UnexpectedNetworkCall:
    _OFFENCES.append(what)
    return UnexpectedNetworkCall(f"test tried to reach the network: {what}")


def _install_offline_guard() -> None:
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def remote(sock: socket.socket, address: Any) -> bool:
        inet = sock.family in (socket.AF_INET, socket.AF_INET6)
        return inet and isinstance(address, tuple) and not _is_local(address[0])

    def connect(self: socket.socket, address: Any) -> None:
        if remote(self, address):
            raise _refuse(f"connect {address!r}")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if remote(self, address):
            raise _refuse(f"connect {address!r}")
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_local(host):
            raise _refuse(f"resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo


_install_offline_guard()


@pytest.fixture(autouse=True)
def _offline() -> Iterator[None]:
    """Fail the test that tried to reach beyond loopback (see _install_offline_guard)."""
    _OFFENCES.clear()
    yield
    if _OFFENCES:
        found = list(_OFFENCES)
        _OFFENCES.clear()
        pytest.fail(f"unexpected network calls: {found}", pytrace=False)


@pytest.fixture(autouse=True)
def _freeze_survivors() -> Iterator[None]:
    """After each test, move what is still alive out of the collector's full passes.

    Hundreds of tests leave modules, apps and caches behind; without this the test
    process's full collections grew to 300-900 ms pauses, long enough to make the
    timing tests (pacing against the sandbox's flood limits) fail by chance. The
    production processes do the same once after startup (runtime.serve).
    """
    yield
    gc.collect()
    gc.freeze()


def run_sync(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_factory())).result()


def service_missing(name: str, reason: str) -> None:
    """Skip (locally) or fail (CI) when a required service is unreachable."""
    message = f"{name} unavailable: {reason}"
    if REQUIRE:
        pytest.fail(message + " (NALGAE_REQUIRE_SERVICES=1)")
    print(f"\nSKIP: {message}")
    pytest.skip(message)


def _pg_server_error() -> str | None:
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
        await conn.close()

    try:
        run_sync(probe)
    except Exception as exc:  # any failure means "not usable here"
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A private PostgreSQL database for this test process, with every table."""
    error = _pg_server_error()
    if error:
        service_missing("PostgreSQL", error)
    import asyncpg

    name = f"nalgae_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    base, _, _ = PG_ADMIN_URL.rpartition("/")

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_sync(lambda: admin(f'CREATE DATABASE "{name}"'))
    url = f"{base}/{name}"

    async def create() -> None:
        db = Database(_driver(url))
        await db.create_all()
        await db.dispose()

    run_sync(create)
    yield url
    run_sync(lambda: admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _driver(url: str) -> str:
    from campaigns.settings import database_url_for_driver

    return database_url_for_driver(url)


async def _truncate_pg(db: Database) -> None:
    from sqlalchemy import text

    from storage.models import Base

    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty store with every table, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        database = Database(_driver(f"sqlite:///{tmp_path}/nalgae.db"))
        await database.create_all()
    else:
        url = request.getfixturevalue("pg_database_url")
        database = Database(_driver(url))
        await _truncate_pg(database)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """SQLite only, for tests whose subject is not the backend."""
    database = Database(_driver(f"sqlite:///{tmp_path}/nalgae.db"))
    await database.create_all()
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The real Redis; tests isolate themselves with `redis_prefix`."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        service_missing("Redis", f"{type(exc).__name__}: {exc}")
    finally:
        await client.aclose()
    yield REDIS_URL


@pytest.fixture
def redis_prefix() -> str:
    return f"nalgae-test:{uuid.uuid4().hex[:10]}:"


@dataclass
class RawServer:
    """A loopback server that answers each request with the next scripted item.

    bytes: the answer; None: read the request, then drop the connection; (answer,
    later): the answer, then 50 ms later `later`, unasked, on the same connection.
    """

    url: str
    script: list[bytes | tuple[bytes, bytes] | None]
    received: list[bytes] = field(default_factory=list)


@pytest.fixture
async def raw() -> AsyncIterator[RawServer]:
    state = RawServer(url="", script=[])

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while state.script:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                state.received.append(await reader.readexactly(length))
                item = state.script.pop(0)
                if item is None:
                    break
                answer, later = item if isinstance(item, tuple) else (item, b"")
                writer.write(answer)
                await writer.drain()
                if later:
                    await asyncio.sleep(0.05)
                    writer.write(later)
                    await writer.drain()
                if b"connection: close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield state
    server.close()
    await server.wait_closed()
