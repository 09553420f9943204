"""The sandbox with several bots: `nalgae run` names each bot's chat page, and each page talks
to its own bot (issue 13: "The sandbox simulates several bots (several tokens, one page per
bot) so that `make run` can show it").

`nalgae run` runs as a subprocess, as `make run` starts it; the pages are then used over HTTP
the way web/static/sandbox.js uses them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_cli_serve import ROOT, _free_port, nalgae

SEOUL = "700001:SEOUL-chapter-token"


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[str, str, list[str]]]:
    """`nalgae run` in the sandbox with a second bot added before it started: (dashboard
    URL, sandbox URL, what it printed)."""
    http_port, sandbox_port = _free_port(), _free_port()
    env = {"NALGAE_DATABASE_URL": f"sqlite:///{tmp_path}/n.db", "NALGAE_TELEGRAM_TOKEN": "",
           "NALGAE_HTTP_PORT": str(http_port), "NALGAE_SANDBOX_PORT": str(sandbox_port)}
    assert nalgae("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    added = nalgae("bot", "add", "--name", "seoul", "--token", SEOUL, cwd=tmp_path, env=env)
    assert added.returncode == 0, added.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "run"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
             "NALGAE_REDIS_URL": "", "NALGAE_LOG_LEVEL": "WARNING", "LANG": "C.UTF-8", **env})
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if any("seoul:" in a for a in lines) and any("default:" in a for a in lines):
                break
        web = f"http://127.0.0.1:{http_port}"
        while time.monotonic() < deadline:  # the lines come just before it listens
            try:
                if httpx.get(f"{web}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield web, f"http://127.0.0.1:{sandbox_port}", lines
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def page_config(html: str) -> dict[str, Any]:
    found = re.search(r'<script id="sandbox-config" type="application/json">(.*?)</script>',
                      html, re.S)
    assert found, html
    config: dict[str, Any] = json.loads(found.group(1))
    return config


def chat_as_the_page_does(sandbox: str, selector: dict[str, str], user_id: int,
                          text: str) -> list[str]:
    """What sandbox.js does: create the person, send, read the bot's answers."""
    with httpx.Client(base_url=f"{sandbox}/sandbox", timeout=15) as http:
        created = http.post("/users", json={"user_id": user_id, "first_name": "민지",
                                            "language_code": "ko", **selector})
        assert created.status_code == 200, created.text
        sent = http.post(f"/users/{user_id}/messages", json={"text": text, **selector})
        assert sent.status_code == 200, sent.text
        for _ in range(20):
            got = http.get(f"/chats/{user_id}/messages", params={"wait": 1, **selector}).json()
            answers = [m["message"].get("text", "") for m in got["messages"] if m["from_bot"]]
            if answers:
                return answers
        return []


def test_run_names_a_page_per_bot_and_each_page_talks_to_its_bot(
        running: tuple[str, str, list[str]]) -> None:
    web, sandbox, lines = running
    printed = "\n".join(lines)
    assert f"default: {web}/sandbox\n" in printed + "\n", printed
    assert f"seoul: {web}/sandbox/seoul" in printed, printed
    assert SEOUL not in printed

    with httpx.Client(base_url=web, timeout=15) as http:
        first = http.get("/sandbox?lang=ko")
        seoul = http.get("/sandbox/seoul?lang=ko")
        missing = http.get("/sandbox/busan?lang=ko")
    assert first.status_code == 200 and seoul.status_code == 200
    assert missing.status_code == 404 and "busan" in missing.text
    config = page_config(seoul.text)
    # The page names its bot by the numeric id only: no token in the HTML.
    assert (config["bot"], config["botName"]) == ("700001", "seoul")
    assert "SEOUL-chapter-token" not in seoul.text
    for page in (first.text, seoul.text):  # each page links to both
        assert 'href="/sandbox"' in page and 'href="/sandbox/seoul"' in page

    # The seoul page's chat reaches the seoul bot (served by `nalgae run`), which answers;
    # the first bot never heard from this person.
    answers = chat_as_the_page_does(sandbox, {"bot": config["bot"]}, 5151, "/start")
    assert any("동의" in a for a in answers), answers
    with httpx.Client(base_url=f"{sandbox}/sandbox", timeout=15) as http:
        default_chat = http.get("/users/5151")
    assert default_chat.status_code == 404  # not a user of the default bot
