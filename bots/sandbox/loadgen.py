"""Measure how many sendMessage calls per second a sandbox answers.

``python -m bots.sandbox.loadgen --url http://127.0.0.1:8081 --requests 50000``
(the sandbox should run with ``--auto-create-chats``). Without ``--url`` it starts a sandbox
in a child process itself. Traffic goes to the given URL only; the loop is bounded by
``--requests`` and ``--max-seconds``.

One Python client process tops out near 3,000-4,000 requests/s on the 2-core box, below
what the sandbox serves (about 10,000-12,000/s measured with ``wrk``); run several clients
or ``wrk`` to find the sandbox's own limit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

import aiohttp
import orjson

from .server import DEFAULT_TOKEN


async def run_load(url: str, token: str, requests: int, concurrency: int, chats: int,
                   form: bool, max_seconds: float) -> dict[str, float]:
    endpoint = f"{url}/bot{token}/sendMessage"
    connector = aiohttp.TCPConnector(limit=concurrency)
    counter = iter(range(requests))
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + max_seconds

    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for i in counter:
                if time.monotonic() > deadline:
                    return
                chat_id = 1 + i % chats
                text = f"Campaign update #{i % 97}: please sign the petition"
                if form:
                    async with session.post(endpoint, data={"chat_id": str(chat_id),
                                                            "text": text}) as resp:
                        await resp.read()
                else:
                    async with session.post(
                        endpoint,
                        data=orjson.dumps({"chat_id": chat_id, "text": text}),
                        headers={"Content-Type": "application/json"},
                    ) as resp:
                        await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    done = sum(statuses.values())
    return {"requests": done, "seconds": round(elapsed, 3),
            "per_second": round(done / elapsed, 1),
            **{f"status_{k}": v for k, v in statuses.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bots.sandbox.loadgen")
    parser.add_argument("--url", default=None, help="sandbox root URL (default: start one)")
    parser.add_argument("--port", type=int, default=18081, help="port for a started sandbox")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--chats", type=int, default=100_000)
    parser.add_argument("--form", action="store_true", help="form-encoded like PTB")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args(argv)

    child: subprocess.Popen[bytes] | None = None
    url = args.url
    if url is None:
        url = f"http://127.0.0.1:{args.port}"
        cmd = [sys.executable, "-m", "bots.sandbox", "--port", str(args.port),
               "--auto-create-chats"]
        child = subprocess.Popen(cmd, env=dict(os.environ))
        time.sleep(1.5)
    try:
        coro = run_load(url, args.token, args.requests, args.concurrency, args.chats,
                        args.form, args.max_seconds)
        try:
            import uvloop
        except ImportError:
            uvloop = None  # type: ignore[assignment]
        if args.no_uvloop or uvloop is None:
            result = asyncio.run(coro)
        else:
            result = uvloop.run(coro)
        print(orjson.dumps(result).decode())
    finally:
        if child is not None:
            child.terminate()
            child.wait(timeout=10)


if __name__ == "__main__":
    main()
