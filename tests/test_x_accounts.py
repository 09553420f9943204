"""X accounts as rows, like bots: `nalgae x account ...`, credentials sealed at rest, and a
chapter's posts going out through its own account (the settings' one stays "default")."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from bots.x.channel import channel_factory
from bots.x.ticks import poll_results_tick
from campaigns import polls
from campaigns.clock import FixedClock, SystemClock
from campaigns.settings import Settings
from campaigns.ticks import TickContext
from campaigns.x import accounts as x_accounts
from campaigns.x import posts as x_posts
from cli import cli
from storage.db import Database
from storage.models import XAccount, XPoll
from storage.ratelimit import LocalRateLimiter
from storage.secrets import Keyring, SecretKeyError
from storage.x import reveal_credentials
from tests.builders import setup_petition
from tests.x_helpers import ACCOUNT_ID, fake_x, settings
from worker import Worker, WorkerOptions

KEY = "test-token-key-for-x-credentials"
SEOUL = ["--api-key", "seoul-consumer-key", "--api-secret", "seoul-consumer-secret",
         "--access-token", "1800-seoul-access", "--access-secret", "seoul-access-secret"]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    values = {"NALGAE_DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "NALGAE_TOKEN_KEY": KEY,
              "NALGAE_X_API_KEY": "test-consumer-key", "NALGAE_X_API_SECRET": "s",
              "NALGAE_X_ACCESS_TOKEN": "t", "NALGAE_X_ACCESS_SECRET": "a",
              "NALGAE_X_USER_ID": str(ACCOUNT_ID)}
    assert CliRunner().invoke(cli, ["db", "upgrade"], env=values).exit_code == 0
    return values


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def consumer_keys(headers: list[tuple[str, str]]) -> list[str]:
    """Which app signed each request (OAuth 1.0a's oauth_consumer_key)."""
    out = []
    for _what, header in headers:
        part = [p for p in header.split(",") if "oauth_consumer_key" in p]
        out.append(part[0].split("=", 1)[1].strip('" ') if part else header[:12])
    return out


def test_accounts_are_added_listed_and_their_keys_never_stored_or_shown_in_clear(
    env: dict[str, str], tmp_path: Path,
) -> None:
    partial = CliRunner().invoke(cli, ["x", "account", "add", "--name", "seoul", *SEOUL[:6]],
                                 env=env)
    assert partial.exit_code == 1 and "missing: --access-secret" in partial.output
    added = run(env, "x", "account", "add", "--name", "seoul", "--chapter", "Seoul", *SEOUL,
                "--json")
    assert added.exit_code == 0, added.output
    view = json.loads(added.output)
    assert view["chapter"] == "seoul" and view["auth"] == "oauth1"
    taken = CliRunner().invoke(cli, ["x", "account", "add", "--name", "busan", "--chapter",
                                     "seoul", *SEOUL], env=env)
    assert taken.exit_code == 1 and "chapter seoul already posts through X account seoul" \
        in taken.output
    listing = run(env, "x", "account", "list", "--json")
    rows = {r["name"]: r for r in json.loads(listing.output)}
    assert set(rows) == {"default", "seoul"} and rows["default"]["from_settings"]
    human = run(env, "x", "account", "list").output
    for secret in ("seoul-consumer-secret", "seoul-access-secret", "1800-seoul-access"):
        assert secret not in listing.output and secret not in human
    # At rest: one string encrypted as the bot tokens are (NALGAE_TOKEN_KEY), readable only
    # with the key.
    with sqlite3.connect(tmp_path / "x.db") as conn:
        [(sealed,)] = conn.execute("SELECT credentials FROM x_account").fetchall()
        dump = "\n".join(conn.iterdump())
    assert "seoul-consumer-secret" not in dump and "seoul-access-secret" not in dump
    assert sealed.startswith("enc1:")
    assert reveal_credentials(Keyring(KEY), sealed)["api_secret"] == "seoul-consumer-secret"
    with pytest.raises(SecretKeyError, match="NALGAE_TOKEN_KEY"):
        reveal_credentials(Keyring("another-token-key-0123456789"), sealed)


def test_a_chapters_post_goes_through_its_own_account(env: dict[str, str]) -> None:
    run(env, "x", "account", "add", "--name", "seoul", "--chapter", "seoul", *SEOUL,
        "--user-id", "1800000000000000002")
    with fake_x() as x:
        checked = run(env, "x", "account", "check", "seoul")
        assert checked.exit_code == 0 and "is @nalgae_bot" in checked.output
        for n, args in enumerate((["--chapter", "seoul"], ["--chapter", "busan"], [],
                                  ["--account", "seoul"])):
            out = run(env, "x", "post", "--text", f"오늘 저녁 {n + 6}시, 광화문에서", *args)
            assert out.exit_code == 0, out.output
        done = run(env, "worker", "--burst", "--json")
        assert done.exit_code == 0, done.output
    signed = dict(zip([p["text"] for p in x.posts],
                      consumer_keys([h for h in x.auth_headers if h[0] == "post"]),
                      strict=True))
    # Busan has no account of its own: the settings' account posts for it.
    assert signed == {"오늘 저녁 6시, 광화문에서": "seoul-consumer-key",
                      "오늘 저녁 7시, 광화문에서": "test-consumer-key",
                      "오늘 저녁 8시, 광화문에서": "test-consumer-key",
                      "오늘 저녁 9시, 광화문에서": "seoul-consumer-key"}
    assert consumer_keys([h for h in x.auth_headers if h[0] == "me"]) == ["seoul-consumer-key"]
    listed = {r["name"]: r for r in json.loads(run(env, "x", "account", "list",
                                                   "--json").output)}
    assert listed["seoul"]["username"] == "nalgae_bot"


def test_remove_disable_and_replace(env: dict[str, str]) -> None:
    run(env, "x", "account", "add", "--name", "seoul", "--chapter", "seoul", *SEOUL,
        "--user-id", "1800000000000000002")
    run(env, "x", "account", "add", "--name", "spare", *SEOUL)
    assert run(env, "x", "account", "remove", "spare").exit_code == 0
    default = CliRunner().invoke(cli, ["x", "account", "remove", "default"], env=env)
    assert default.exit_code == 1 and "NALGAE_X_*" in default.output
    with fake_x():
        run(env, "x", "post", "--text", "오늘 저녁 7시, 광화문에서 만나요.", "--chapter", "seoul")
    used = CliRunner().invoke(cli, ["x", "account", "remove", "seoul"], env=env)
    assert used.exit_code == 1 and "disable it instead" in used.output
    ids = {r["name"]: r["id"] for r in json.loads(run(env, "x", "account", "list",
                                                      "--json").output)}
    assert run(env, "x", "account", "disable", "seoul").exit_code == 0
    # Disabled: the chapter's posts go through the default account meanwhile.
    with fake_x():
        meanwhile = run(env, "x", "post", "--text", "내일도 함께해요", "--chapter", "seoul",
                        "--json")
    assert json.loads(meanwhile.output)["details"]["bot_id"] == ids["default"] != ids["seoul"]
    off = CliRunner().invoke(cli, ["x", "post", "--text", "안녕", "--account", "seoul"],
                             env=env)
    assert off.exit_code == 1 and "disabled" in off.output
    again = CliRunner().invoke(cli, ["x", "account", "add", "--name", "seoul", *SEOUL],
                               env=env)
    assert again.exit_code == 1 and "--replace" in again.output
    oauth2 = run(env, "x", "account", "add", "--name", "seoul", "--replace", "--client-id",
                 "c", "--refresh-token", "r", "--json")
    assert oauth2.exit_code == 0 and json.loads(oauth2.output)["auth"] == "oauth2-refresh"
    assert json.loads(oauth2.output)["chapter"] == "seoul"  # kept


def test_an_oauth2_account_added_as_a_row_refreshes_and_checks(env: dict[str, str],
                                                               tmp_path: Path) -> None:
    run(env, "x", "account", "add", "--name", "busan", "--client-id", "public-client",
        "--refresh-token", "refresh-0")
    with fake_x() as x:
        x.refresh_tokens = {"refresh-0"}
        checked = run(env, "x", "account", "check", "busan", "--json")
        assert checked.exit_code == 0, checked.output
        assert json.loads(checked.output)["user_id"] == str(ACCOUNT_ID)
        # A public client: its id in the body, no HTTP Basic.
        [request] = x.token_requests
        assert request["client_id"] == "public-client" and request["authorization"] == ""
        assert x.auth_headers == [("me", "Bearer access-1")]
        listed = {r["name"]: r for r in json.loads(run(env, "x", "account", "list",
                                                       "--json").output)}
        assert listed["busan"]["token_expires_at"] and listed["busan"]["refresh_error"] is None
        # Revoked at X meanwhile, and the token is due: refused, and said plainly.
        x.refresh_tokens.clear()
        with sqlite3.connect(tmp_path / "x.db") as conn:
            conn.execute("UPDATE x_account SET expires_at = NULL")
        refused = CliRunner().invoke(cli, ["x", "account", "check", "busan"], env=env)
    assert refused.exit_code == 1 and "could not be refreshed" in refused.output
    assert "--replace" in refused.output and "refresh-1" not in refused.output
    human = run(env, "x", "account", "list").output
    assert "busan" in human and "STOPPED" in human


async def test_each_accounts_poll_is_read_back_with_its_own_keys(db: Database) -> None:
    """The poll read-back tick reads a chapter account's native poll with that account."""
    clock = FixedClock(datetime.now(UTC) - timedelta(minutes=1))
    await setup_petition(db, clock)
    async with db.session() as s:
        await polls.create_poll(s, campaign_slug="air", slug="next-step",
                                question_ko="다음 행동으로 무엇을 할까요?", kind="yes_no_abstain",
                                clock=clock, actor="cli",
                                closes_at=clock.now() + timedelta(days=1, minutes=1))
        seoul = await x_accounts.add(s, clock, name="seoul", chapter="seoul",
                                     user_id="1800000000000000002", credentials=dict(
                                         zip(["api_key", "api_secret", "access_token",
                                              "access_secret"], SEOUL[1::2], strict=True)))
    xs = settings()
    with fake_x() as x:
        await x_posts.compose_post(db, SystemClock(), bot_id=seoul.id,
                                   account_id=1800000000000000002, created_by="cli",
                                   poll="next-step")
        stats = await Worker(db, limiter=LocalRateLimiter(), options=WorkerOptions(
            idle_interval=0.05, tick_interval=0.05, flush_interval=0.01, burst_horizon=10.0),
            channels={"x": channel_factory(xs, db)}).run_burst()
        assert stats.sent == 1 and x.posts[0]["poll"]["options"] == ["찬성", "반대", "기권"]
        async with db.session() as s:
            await s.execute(update(XPoll).values(tweet_id=1861432987654320777))
        later = FixedClock(datetime.now(UTC) + timedelta(days=2))
        ctx = TickContext(db=db, clock=later, settings=Settings(x=xs),
                          owner="sched")
        assert await poll_results_tick(ctx) == 1
    assert consumer_keys([h for h in x.auth_headers if h[0] in ("post", "lookup")]) == [
        "seoul-consumer-key", "seoul-consumer-key"]
    async with db.session() as s:
        summary = await polls.summary(s, "next-step")
    assert summary["channels"]["x"]["voters"] == 172


KEY_A = "first-token-key-0123456789"
KEY_B = "second-token-key-9876543210"


def stored_credentials(tmp_path: Path) -> dict[str, str]:
    with sqlite3.connect(tmp_path / "x.db") as conn:
        return dict(conn.execute("SELECT b.name, a.credentials FROM x_account a "
                                 "JOIN bot b ON b.id = a.bot_id").fetchall())


def test_an_accounts_keys_need_the_token_key_and_rekey_rotates_them(
    env: dict[str, str], tmp_path: Path,
) -> None:
    """One key for every stored credential: NALGAE_TOKEN_KEY opens X accounts as it opens
    bot tokens, and `nalgae bot rekey` re-encrypts both."""
    with_a, with_b = {**env, "NALGAE_TOKEN_KEY": KEY_A}, {**env, "NALGAE_TOKEN_KEY": KEY_B}
    added = run(with_a, "x", "account", "add", "--name", "seoul", "--chapter", "seoul", *SEOUL,
                "--user-id", "1800000000000000002")
    assert added.exit_code == 0, added.output
    before = stored_credentials(tmp_path)["seoul"]
    with pytest.raises(SecretKeyError):
        reveal_credentials(Keyring(KEY_B), before)
    # Another key: every command that needs the keys says so in one line, shows no key, and
    # nothing is posted.
    with fake_x() as x:
        for args in (("x", "account", "check", "seoul"), ("worker", "--burst"),
                     ("bot", "rekey"), ("x", "post", "--text", "안녕", "--account", "seoul")):
            wrong = CliRunner().invoke(cli, list(args), env=with_b)
            assert wrong.exit_code == 1, (args, wrong.output)
            assert wrong.output.count("\n") == 1 and "NALGAE_TOKEN_KEY" in wrong.output, (
                args, wrong.output)
            assert "X account seoul: X account" not in wrong.output
            assert "Traceback" not in wrong.output and "seoul-consumer" not in wrong.output
    assert x.posts == [] and x.auth_headers == []
    # Rotation, as for bot tokens: the new key first, the old one after it; rekey.
    rekeyed = run({**env, "NALGAE_TOKEN_KEY": f"{KEY_B},{KEY_A}"}, "bot", "rekey", "--json")
    assert rekeyed.exit_code == 0 and json.loads(rekeyed.output) == {"rekeyed": 1}
    after = stored_credentials(tmp_path)["seoul"]
    assert after.startswith("enc1:") and after != before
    assert reveal_credentials(Keyring(KEY_B), after)["api_key"] == "seoul-consumer-key"
    with pytest.raises(SecretKeyError):
        reveal_credentials(Keyring(KEY_A), after)
    with fake_x() as x:
        assert run(with_b, "x", "account", "check", "seoul").exit_code == 0
        old = CliRunner().invoke(cli, ["x", "account", "check", "seoul"], env=with_a)
    assert old.exit_code == 1 and "NALGAE_TOKEN_KEY" in old.output
    assert consumer_keys(x.auth_headers) == ["seoul-consumer-key"]


def legacy_seal(secret_key: str, values: dict[str, str]) -> str:
    """What the earlier version stored: Fernet under a key derived from NALGAE_SECRET_KEY."""
    import base64

    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"nalgae x credentials v1").derive(secret_key.encode())
    text = json.dumps(values, separators=(",", ":"), sort_keys=True).encode()
    return "v1:" + Fernet(base64.urlsafe_b64encode(key)).encrypt(text).decode()


def test_plain_and_earlier_credentials_are_encrypted_at_upgrade(
    env: dict[str, str], tmp_path: Path,
) -> None:
    for name in ("seoul", "busan"):
        assert run(env, "x", "account", "add", "--name", name, *SEOUL).exit_code == 0
    seoul = dict(zip(["api_key", "api_secret", "access_token", "access_secret"], SEOUL[1::2],
                     strict=True))
    busan = {"client_id": "busan-client", "refresh_token": "busan-refresh-token"}
    with sqlite3.connect(tmp_path / "x.db") as conn:  # rows as older versions left them
        conn.execute("UPDATE x_account SET credentials = ? WHERE bot_id = (SELECT id FROM bot "
                     "WHERE name = 'seoul')", (json.dumps(seoul),))
        conn.execute("UPDATE x_account SET credentials = ? WHERE bot_id = (SELECT id FROM bot "
                     "WHERE name = 'busan')", (legacy_seal("the-old-secret-key", busan),))
    # The earlier form needs the NALGAE_SECRET_KEY it was made with: one line says so.
    refused = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
    assert refused.exit_code == 1 and refused.output.count("\n") == 1
    assert "busan" in refused.output and "NALGAE_SECRET_KEY" in refused.output
    upgraded = run({**env, "NALGAE_SECRET_KEY": "the-old-secret-key"}, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    first = stored_credentials(tmp_path)
    assert all(v.startswith("enc1:") for v in first.values())
    assert reveal_credentials(Keyring(KEY), first["seoul"]) == seoul
    assert reveal_credentials(Keyring(KEY), first["busan"]) == busan
    assert "seoul-consumer-secret" not in "\n".join(
        sqlite3.connect(tmp_path / "x.db").iterdump())
    assert run(env, "db", "upgrade").exit_code == 0  # idempotent: nothing rewritten
    assert stored_credentials(tmp_path) == first


async def test_plain_credentials_are_encrypted_at_start_on_both_databases(db: Database) -> None:
    from runtime import seal_tokens

    clock = FixedClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    plain = {"client_id": "gyeonggi-client", "refresh_token": "gyeonggi-refresh-token"}
    async with db.session() as s:
        added = await x_accounts.add(s, clock, name="gyeonggi", credentials=plain)
        await s.execute(update(XAccount).where(XAccount.bot_id == added.id)
                        .values(credentials=json.dumps(plain)))  # as if from before
    await seal_tokens(db)  # what `nalgae run|web|worker` and `db upgrade` do first
    async with db.session() as s:
        first = (await s.get(XAccount, added.id)).credentials  # type: ignore[union-attr]
    assert first.startswith("enc1:") and "gyeonggi-refresh-token" not in first
    assert reveal_credentials(db.keyring, first) == plain
    await seal_tokens(db)  # idempotent
    async with db.session() as s:
        assert (await s.get(XAccount, added.id)).credentials == first  # type: ignore[union-attr]
