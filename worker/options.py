"""The worker's knobs and its counters."""

from __future__ import annotations

from dataclasses import dataclass

from campaigns.broadcasts import BACKOFF_BASE_S, BACKOFF_MAX_S, RETRY_WINDOW_S


@dataclass
class WorkerOptions:
    """Knobs of the delivery loop; the defaults suit production."""

    batch_size: int = 1000  # rows per claim when unpaced
    concurrency: int = 96  # requests in flight per bot
    lease_seconds: float = 60.0
    flush_interval: float = 0.05  # seconds between outcome writes
    idle_interval: float = 0.2  # seconds between claims when there is nothing to do
    tick_interval: float = 1.0  # start due broadcasts, reclaim leases, finish broadcasts
    request_timeout: float = 10.0
    # 5xx, timeouts, lost connections: retried after ~2 s, ~8 s, ~32 s, ... at most ~5 min
    # apart, until retry_window seconds have passed since the row's first try; then failed.
    backoff_base: float = BACKOFF_BASE_S
    backoff_max: float = BACKOFF_MAX_S
    retry_window: float = RETRY_WINDOW_S
    burst_horizon: float = 60.0  # run_burst waits for retries due within this many seconds
    # Telegram counts arrivals, we schedule departures: a margin over "1 per second".
    chat_interval: float = 1.1
    group_interval: float = 3.0
    bot_error_pause: float = 60.0
    # How often a lane holding rows checks for a pause another worker shared (a 429):
    # Telegram tolerates requests already on the wire, not new ones for long.
    pause_poll_interval: float = 0.02


@dataclass
class DeliveryStats:
    sent: int = 0
    blocked: int = 0
    failed: int = 0
    retried: int = 0
    rate_limited: int = 0
    skipped: int = 0
    released: int = 0
    reclaimed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def describe(exc: BaseException) -> str:
    """An exception for the log: its class and first line, never a driver's full text."""
    # Exception texts from drivers can carry SQL parameters; the class and first line do not.
    first = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"
