"""What a scheduler tick gets: the one ``TickContext`` every tick is written against.

A tick is ``async def my_tick(ctx: TickContext) -> object`` next to its rules; the
scheduler (scheduler.py) builds one context per process and runs each tick on an
interval. Ticks claim their work in the database (several schedulers may run).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

from campaigns.clock import Clock
from campaigns.settings import Settings
from storage.db import Database


@dataclass(frozen=True)
class TickContext:
    """The database, the clock, the settings and a name for this process's claims."""

    db: Database
    clock: Clock
    settings: Settings
    owner: str


def process_owner(kind: str) -> str:
    """A name for this process in claim and lease columns (host, pid, random)."""
    return f"{kind}:{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(3)}"
