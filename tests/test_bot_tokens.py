"""Bot tokens at rest: encrypted in the database, never printed, readable only with the key.

Issue 13: "Tokens are stored encrypted or at least never printed, logged or exported."
"""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bots.sandbox import Sandbox
from campaigns import bots as bot_rules
from runtime import seal_tokens
from storage.db import Database
from storage.models import Bot
from tests.builders import T0, find_anywhere, plain_url

SEOUL = "700001:SEOUL-chapter-token"
SECRET_PART = "SEOUL-chapter-token"
KEY_A = "first-token-key-0123456789"
KEY_B = "second-token-key-9876543210"


def run_cli(db: Database, *args: str, key: str | None = None) -> Any:
    from cli import cli

    env = {"NALGAE_DATABASE_URL": plain_url(db), "NALGAE_TELEGRAM_TOKEN": "",
           "NALGAE_TOKEN_KEY": key or ""}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def stored_bytes(db: Database) -> bytes:
    """Every byte of the SQLite database as it lies on disk (with its WAL)."""
    path = Path(db.url.split("///", 1)[1])
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


async def test_a_token_is_stored_encrypted_and_never_printed(
        db: Database, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with Sandbox.serve() as sb:
        def steps() -> list[str]:
            added = run_cli(db, "bot", "add", "--name", "seoul", "--token", SEOUL,
                            "--base-url", sb.base_url, "--json")
            assert added.exit_code == 0, added.output
            listed = run_cli(db, "bot", "list")
            assert "700001:…en" in listed.output  # the masked form, from the stored hint
            checked = run_cli(db, "bot", "check", "seoul", "--json")
            assert json.loads(checked.output)["ok"] is True  # the token still works
            exported = run_cli(db, "supporters", "export", "--format", "json")
            assert exported.exit_code == 0, exported.output
            return [added.output, listed.output, checked.output, exported.output]

        outputs = await asyncio.to_thread(steps)
    assert not any(SECRET_PART in out for out in outputs)
    assert SECRET_PART not in caplog.text
    async with db.session() as s:
        token, hint = (await s.execute(select(Bot.token, Bot.token_hint)
                                       .where(Bot.name == "seoul"))).one()
    assert token.startswith("enc1:") and SECRET_PART not in token and hint == "700001:…en"
    assert await find_anywhere(db, [SECRET_PART]) == []  # no table, no column
    if not db.is_postgres:
        assert SECRET_PART.encode() not in stored_bytes(db)


async def test_plain_tokens_from_before_are_encrypted_once_at_start(sqlite_db: Database) -> None:
    db = sqlite_db
    async with db.session() as s:  # a row written before tokens were encrypted
        s.add(Bot(channel="telegram", name="old", token=SEOUL, created_at=T0))
    await seal_tokens(db)  # what `nalgae run|web|worker` and `db upgrade` do first
    async with db.session() as s:
        first = (await s.execute(select(Bot.token, Bot.token_hint))).one()
    await seal_tokens(db)  # idempotent: nothing rewritten
    async with db.session() as s:
        bot = (await s.execute(select(Bot))).scalar_one()
        assert (bot.token, bot.token_hint) == first
        assert await bot_rules.token(s, bot) == SEOUL
    assert first[0].startswith("enc1:") and first[1] == "700001:…en"
    assert SECRET_PART.encode() not in stored_bytes(db)
    # Without NALGAE_TOKEN_KEY the key was generated once, beside the database, owner-only.
    key_file = Path(db.url.split("///", 1)[1]).parent / "token.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_a_wrong_key_is_one_clear_line_and_rekey_rotates(sqlite_db: Database) -> None:
    db = sqlite_db

    def steps() -> None:
        added = run_cli(db, "bot", "add", "--name", "seoul", "--token", SEOUL, key=KEY_A)
        assert added.exit_code == 0, added.output

        for args in (("bot", "check", "seoul"), ("worker", "--burst"), ("bot", "rekey")):
            wrong = run_cli(db, *args, key=KEY_B)
            assert wrong.exit_code == 1, (args, wrong.output)
            assert wrong.output.count("\n") == 1 and "NALGAE_TOKEN_KEY" in wrong.output, (
                args, wrong.output)
            assert "Traceback" not in wrong.output and SECRET_PART not in wrong.output
        # Listing needs no key: the masked form is stored beside the token.
        listed = run_cli(db, "bot", "list", key=KEY_B)
        assert listed.exit_code == 0 and "700001:…en" in listed.output

        # Rotation: the new key first, the old one after it; rekey; then the new one alone.
        rekeyed = run_cli(db, "bot", "rekey", "--json", key=f"{KEY_B},{KEY_A}")
        assert rekeyed.exit_code == 0, rekeyed.output
        assert json.loads(rekeyed.output) == {"rekeyed": 1}
        old = run_cli(db, "worker", "--burst", key=KEY_A)
        assert old.exit_code == 1 and "NALGAE_TOKEN_KEY" in old.output

    await asyncio.to_thread(steps)
    keyed = Database(db.url, token_key=KEY_B)
    try:
        async with keyed.session() as s:
            bot = (await s.execute(select(Bot))).scalar_one()
            assert await bot_rules.token(s, bot) == SEOUL
    finally:
        await keyed.dispose()


def test_a_short_token_key_is_refused_at_start() -> None:
    from cli import cli

    result = CliRunner().invoke(cli, ["bot", "list"], env={"NALGAE_TOKEN_KEY": "short"})
    assert result.exit_code != 0 and "at least 16 characters" in result.output
