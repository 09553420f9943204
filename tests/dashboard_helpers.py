"""Organisers and signed-in clients for the dashboard tests (real store, real app)."""

from __future__ import annotations

import re
from datetime import datetime

import httpx
import pytest
from argon2 import PasswordHasher

from campaigns import signin
from campaigns.clock import FixedClock
from storage.db import Database

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with test-sized costs: the real ones take about half a second per hash here,
    on purpose. (Import this fixture into a test module to use it there.)"""
    monkeypatch.setattr(signin, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                          parallelism=1))


async def make_organiser(db: Database, now: datetime, login: str, role: str = "organiser",
                         telegram_user_id: str | None = None) -> int:
    async with db.session() as s:
        o = await signin.set_password(s, login, PASSWORD, FixedClock(now), by="cli", role=role,
                                      create=True, telegram_user_id=telegram_user_id)
        return o.id


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, login: str, password: str = PASSWORD) -> str:
    """Sign in with the password form; returns the session's CSRF token."""
    page = await client.get("/login")
    response = await client.post("/login", data={"csrf": csrf_of(page.text), "login": login,
                                                 "password": password, "next": "/"})
    assert response.status_code == 303 and response.headers["location"] == "/", response.text
    home = await client.get("/")
    assert home.status_code == 200
    return csrf_of(home.text)
