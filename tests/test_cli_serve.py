"""Starting the processes as a newcomer would: a fresh database, a port already taken.

Each case runs `python -m cli ...` as a subprocess, as the `nalgae` command runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL, run_sync

ROOT = Path(__file__).resolve().parent.parent


def nalgae(*args: str, env: dict[str, str], cwd: Path,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), "NALGAE_REDIS_URL": "",
                              "NALGAE_LOG_LEVEL": "WARNING", "LANG": "C.UTF-8", **env},
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else is already listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_run_names_the_taken_http_port(taken_port: int, tmp_path: Path) -> None:
    result = nalgae("run", cwd=tmp_path, env={
        "NALGAE_DATABASE_URL": f"sqlite:///{tmp_path}/n.db",
        "NALGAE_HTTP_PORT": str(taken_port), "NALGAE_SANDBOX_PORT": str(_free_port())})
    line = _one_clear_line(result)
    assert str(taken_port) in line and "NALGAE_HTTP_PORT" in line


def test_run_names_the_taken_sandbox_port(taken_port: int, tmp_path: Path) -> None:
    result = nalgae("run", cwd=tmp_path, env={
        "NALGAE_DATABASE_URL": f"sqlite:///{tmp_path}/n.db", "NALGAE_TELEGRAM_TOKEN": "",
        "NALGAE_HTTP_PORT": str(_free_port()), "NALGAE_SANDBOX_PORT": str(taken_port)})
    line = _one_clear_line(result)
    assert str(taken_port) in line and "NALGAE_SANDBOX_PORT" in line


def test_a_fresh_sqlite_database_is_migrated_by_itself(tmp_path: Path) -> None:
    env = {"NALGAE_DATABASE_URL": f"sqlite:///{tmp_path}/fresh.db"}
    worked = nalgae("worker", "--burst", "--json", cwd=tmp_path, env=env)
    assert worked.returncode == 0, worked.stderr
    assert "no such table" not in worked.stderr
    current = nalgae("db", "current", "--json", cwd=tmp_path, env=env)
    assert '"up_to_date": true' in current.stdout


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A PostgreSQL database with no tables at all."""
    try:
        import asyncpg
    except ImportError:
        pytest.skip("asyncpg missing")
    name = f"nalgae_fresh_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        run_sync(lambda: admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no server here: the SQLite cases still ran
        pytest.skip(f"PostgreSQL: {exc}")
    yield PG_ADMIN_URL.rpartition("/")[0] + "/" + name
    run_sync(lambda: admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_postgresql_behind_stops_with_one_line(empty_pg_url: str, tmp_path: Path) -> None:
    result = nalgae("worker", "--burst", cwd=tmp_path,
                    env={"NALGAE_DATABASE_URL": empty_pg_url})
    assert "nalgae db upgrade" in _one_clear_line(result)
