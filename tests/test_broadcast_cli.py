"""`nalgae broadcast ...` and `nalgae worker --burst` as a script runs them, against the sandbox."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bots.sandbox import Sandbox
from cli import cli
from storage.db import Database
from storage.ratelimit import LocalRateLimiter
from tests.builders import TOKEN
from worker import Worker, WorkerOptions

CSV = (
    "telegram_id,name,language,region,tier,tags,consent\n"
    "61001,김민수,ko,서울 마포구,,volunteer,yes\n"
    "61002,Jane,en,Busan,member,,yes\n"
)


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Sandbox]:
    async with Sandbox.serve(auto_create_private_chats=True) as sb:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("NALGAE_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
        monkeypatch.setenv("NALGAE_TELEGRAM_TOKEN", TOKEN)
        monkeypatch.setenv("NALGAE_TELEGRAM_BASE_URL", sb.base_url)
        monkeypatch.setenv("NALGAE_TELEGRAM_MAX_RATE", "0")
        monkeypatch.setenv("NALGAE_REDIS_URL", "")
        monkeypatch.setenv("LANG", "C.UTF-8")
        (tmp_path / "list.csv").write_text(CSV, encoding="utf-8")
        assert (await nalgae("db", "upgrade")).exit_code == 0
        assert (await nalgae("supporters", "import", "list.csv")).exit_code == 0
        yield sb


async def nalgae(*args: str) -> Result:
    """Run the command in a thread: it runs its own event loop, as from a shell."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), catch_exceptions=False)


def as_json(result: Result) -> dict[str, object]:
    assert result.exit_code == 0, result.output + result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


async def test_send_status_and_burst_worker(env: Sandbox) -> None:
    preview = as_json(await nalgae("broadcast", "preview", "--audience", "region=서울",
                                   "--json"))
    assert preview["audience"] == 1
    for audience, count in (("district=서울 마포구", 1), ("district=seoul:jung", 0)):
        preview = as_json(await nalgae("broadcast", "preview", "--audience", audience, "--json"))
        assert preview["audience"] == count, audience
    refused = await nalgae("broadcast", "preview", "--audience", "district=마포구")
    assert refused.exit_code != 0 and "district=seoul:mapo" in refused.output + refused.stderr
    sent = as_json(await nalgae("broadcast", "send", "--text", "{name}님, 오늘 7시 광장에서",
                                "--text-en", "{name}, 7pm at the square", "--json"))
    assert sent["status"] == "sending" and sent["audience"] == 2
    status = as_json(await nalgae("broadcast", "status", str(sent["id"]), "--json"))
    assert status == {"id": sent["id"], "status": "sending", "audience": 2, "sent": 0,
                      "blocked": 0, "failed": 0, "pending": 2}
    worked = as_json(await nalgae("worker", "--burst", "--json"))
    assert worked["sent"] == 2
    status = as_json(await nalgae("broadcast", "status", str(sent["id"]), "--json"))
    assert (status["status"], status["sent"], status["pending"]) == ("done", 2, 0)
    assert env.bot(TOKEN).counters.delivered == {61001: 1, 61002: 1}


async def test_each_language_gets_its_text(env: Sandbox) -> None:
    ko, en = env.user(61001, "민수", bot_token=TOKEN), env.user(61002, "Jane", bot_token=TOKEN)
    as_json(await nalgae("broadcast", "send", "--text", "{name}님, 서명해 주세요",
                         "--text-en", "{name}, please sign", "--json"))
    as_json(await nalgae("worker", "--burst", "--json"))
    assert (await ko.next_message(timeout=5)).text == "김민수님, 서명해 주세요"
    assert (await en.next_message(timeout=5)).text == "Jane, please sign"


async def test_errors_are_clear_and_translated(env: Sandbox, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    bad = await nalgae("broadcast", "send", "--text", "{이름}님 안녕하세요", "--json")
    assert bad.exit_code == 1
    assert "Unknown placeholder {이름} in the Korean text" in json.loads(bad.stderr)["error"]
    monkeypatch.setenv("LANG", "ko_KR.UTF-8")
    bad = await nalgae("broadcast", "send", "--text", "안녕", "--audience", "tier=gold")
    assert bad.exit_code == 1 and "“gold”은(는) tier 값으로 쓸 수 없습니다" in bad.stderr
    bad_time = await nalgae("broadcast", "send", "--text", "x", "--at", "tomorrow")
    assert bad_time.exit_code == 1 and "Traceback" not in bad_time.stderr
    assert bad_time.stderr.strip().count("\n") == 0 and "--at" in bad_time.stderr


async def test_a_time_without_zone_is_korean_time(env: Sandbox) -> None:
    """Organisers type Korean time: 09:00 without a zone is 00:00 UTC."""
    naive = as_json(await nalgae("broadcast", "send", "--text", "x", "--at",
                                 "2030-01-01T09:00", "--json"))
    assert naive["status"] == "scheduled"
    assert str(naive["details"]["send_at"]).startswith(("2030-01-01T00:00:00+00:00",
                                             "2030-01-01 00:00:00+00:00"))


async def test_schedule_then_cancel(env: Sandbox) -> None:
    later = as_json(await nalgae("broadcast", "send", "--text", "내일 집회",
                                 "--at", "2030-01-01T09:00:00+09:00", "--json"))
    assert later["status"] == "scheduled" and later["pending"] == 2
    assert as_json(await nalgae("worker", "--burst", "--json"))["sent"] == 0
    cancelled = as_json(await nalgae("broadcast", "cancel", str(later["id"]), "--json"))
    assert cancelled["status"] == "cancelled"
    again = await nalgae("broadcast", "pause", str(later["id"]))
    assert again.exit_code == 1 and "only a broadcast being sent can be paused" in again.stderr


async def test_wait_prints_progress_lines_without_a_terminal(env: Sandbox, tmp_path: Path
                                                             ) -> None:
    waiting = asyncio.create_task(nalgae("broadcast", "send", "--text", "곧 시작합니다",
                                         "--wait", "--json"))
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    try:
        from campaigns import broadcasts

        for _ in range(200):
            try:
                if (await broadcasts.status(db, 1))["status"] == "sending":
                    break
            except broadcasts.BroadcastError:
                pass
            await asyncio.sleep(0.05)
        options = WorkerOptions(idle_interval=0.05, tick_interval=0.05, flush_interval=0.01)
        await Worker(db, limiter=LocalRateLimiter(), options=options).run_burst()
    finally:
        await db.dispose()
    result = await waiting
    final = as_json(result)
    assert (final["status"], final["sent"]) == ("done", 2)
    assert "broadcast 1: done, audience 2, sent 2" in result.stderr


async def test_draft_test_send_then_schedule(env: Sandbox) -> None:
    me = env.user(424242, "Organiser", bot_token=TOKEN)
    draft = as_json(await nalgae("broadcast", "send", "--draft", "--text", "{name}님 확인용",
                                 "--button", "서명하기|https://example.org/s", "--json"))
    assert draft["status"] == "draft"
    tested = as_json(await nalgae("broadcast", "test", str(draft["id"]), "--chat-id", "424242",
                                  "--name", "나", "--json"))
    assert tested["ok"] is True
    message = await me.next_message(timeout=5)
    assert message.text == "나님 확인용"
    assert message.raw["reply_markup"]["inline_keyboard"][0][0]["text"] == "서명하기"
    assert env.bot(TOKEN).counters.delivered.get(61001) is None  # nobody else got it
    sent = as_json(await nalgae("broadcast", "schedule", str(draft["id"]), "--json"))
    assert sent["status"] == "sending" and sent["audience"] == 2
