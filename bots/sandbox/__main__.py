"""Run the sandbox as its own process: ``python -m bots.sandbox --port 8081``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from .faults import Faults
from .server import DEFAULT_TOKEN, Sandbox


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bots.sandbox",
        description="Local Telegram Bot API server with simulated users.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="default bot token")
    parser.add_argument("--auto-create-chats", action="store_true",
                        help="every positive chat id is a private chat (counters only)")
    parser.add_argument("--no-duplicate-tracking", action="store_true",
                        help="skip duplicate detection (saves up to 32 text hashes per chat)")
    parser.add_argument("--max-rate", type=float, default=None,
                        help="messages per second per bot (Telegram: ~30)")
    parser.add_argument("--per-chat-rate", type=float, default=None,
                        help="messages per second per private chat (Telegram: ~1)")
    parser.add_argument("--per-group-per-minute", type=float, default=None,
                        help="messages per minute per group (Telegram: 20)")
    parser.add_argument("--fail-probability", type=float, default=0.0,
                        help="probability of an injected 5xx on sends")
    parser.add_argument("--fail-status", type=int, default=500, choices=(500, 502))
    parser.add_argument("--seed", type=int, default=None, help="seed for injected failures")
    parser.add_argument("--cors-origin", action="append", default=None,
                        help="allowed origin for /sandbox (repeatable; default *)")
    parser.add_argument("--no-uvloop", action="store_true", help="use the default event loop")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    faults = Faults(
        max_rate=args.max_rate,
        per_chat_rate=args.per_chat_rate,
        per_group_per_minute=args.per_group_per_minute,
        fail_probability=args.fail_probability,
        fail_status=args.fail_status,
        seed=args.seed,
    )
    sandbox = Sandbox(
        default_token=args.token,
        auto_create_private_chats=args.auto_create_chats,
        track_duplicates=not args.no_duplicate_tracking,
        faults=faults,
        cors_origins=tuple(args.cors_origin or ("*",)),
    )
    await sandbox.start(args.host, args.port)
    print(f"sandbox listening on {sandbox.url} (bot base_url {sandbox.base_url})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sandbox.stop()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            # uvloop roughly doubles the requests per second one process can answer.
            uvloop.run(_serve(args))
            return
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
