"""Courier's classification of a send's result, on its own: what happens to the row next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bots.channel import Outcome, SendResult
from campaigns import broadcasts
from worker import WorkerOptions
from worker.outcomes import Action, Kind, Pause, classify

NOW = datetime(2026, 3, 1, 19, 0, tzinfo=UTC)
# Back-off 10 s, 40 s, 160 s, then at most 300 s; retried for an hour.
OPTIONS = WorkerOptions(backoff_base=10.0, backoff_max=300.0, retry_window=3600.0,
                        bot_error_pause=60.0)


def decide(result: SendResult, attempts: int = 0, *, first_tried_s_ago: float | None = None,
           jitter: float = 1.0, options: WorkerOptions = OPTIONS) -> Action:
    first = None if first_tried_s_ago is None else NOW - timedelta(seconds=first_tried_s_ago)
    return classify(result, attempts, first_attempt_at=first, now=NOW, options=options,
                    jitter=jitter)


def test_a_sent_message_counts_no_attempt() -> None:
    assert decide(SendResult(Outcome.SENT, message_id=5), attempts=2) == Action(Kind.SENT, 2)


def test_a_person_who_blocked_the_bot_is_never_retried() -> None:
    action = decide(SendResult(Outcome.BLOCKED, error="Forbidden: bot was blocked"))
    assert action.kind is Kind.BLOCKED and action.error == "Forbidden: bot was blocked"
    assert decide(SendResult(Outcome.BLOCKED)).error == "blocked"


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.MIGRATED])
def test_a_bad_request_fails_at_once(outcome: Outcome) -> None:
    action = decide(SendResult(outcome, error="Bad Request: chat not found"), attempts=1)
    assert action == Action(Kind.FAIL, 2, error="Bad Request: chat not found")


def test_a_429_pauses_the_bot_for_what_the_channel_asked_without_counting_a_try() -> None:
    action = decide(SendResult(Outcome.RATE_LIMITED, retry_after=7, error="flood"), attempts=1)
    assert action == Action(Kind.RETRY, 1, 7.0, "flood", Pause.RATE_LIMITED)
    # No (or a silly) retry_after still waits at least a second.
    assert decide(SendResult(Outcome.RATE_LIMITED, retry_after=0.1)).after == 1.0
    assert decide(SendResult(Outcome.RATE_LIMITED)).after == 1.0


def test_a_refused_bot_waits_for_a_fix() -> None:
    action = decide(SendResult(Outcome.BOT_ERROR, error="Unauthorized"), attempts=3)
    assert action == Action(Kind.RETRY, 3, 60.0, "Unauthorized", Pause.REFUSED)


def test_transient_errors_back_off_exponentially_up_to_a_cap() -> None:
    first = decide(SendResult(Outcome.RETRY, error="timeout"))
    assert first == Action(Kind.RETRY, 1, 10.0, "timeout")
    delays = [decide(SendResult(Outcome.RETRY), attempts=n, first_tried_s_ago=60).after
              for n in range(1, 7)]
    assert delays == [40.0, 160.0, 300.0, 300.0, 300.0, 300.0]
    # The jitter the sender draws scales the wait (capped waits too), so rows failed
    # together come back spread out.
    assert decide(SendResult(Outcome.RETRY), attempts=1, jitter=1.2).after == 48.0
    assert decide(SendResult(Outcome.RETRY), attempts=9, first_tried_s_ago=60,
                  jitter=0.8).after == 240.0
    assert all(1 - broadcasts.JITTER <= broadcasts.jitter_factor() <= 1 + broadcasts.JITTER
               for _ in range(200))


@pytest.mark.parametrize("error", ["Bad Gateway", "Internal Server Error", "timeout",
                                   "network error: ClientConnectorError"])
def test_transient_errors_are_retried_for_the_whole_window_not_a_fixed_count(
        error: str) -> None:
    # Many tries within the hour: still retried, however many.
    action = decide(SendResult(Outcome.RETRY, error=error), attempts=40,
                    first_tried_s_ago=3000)
    assert action == Action(Kind.RETRY, 41, 300.0, error)
    # Close to the end: the last try falls at the window's end, not after it.
    assert decide(SendResult(Outcome.RETRY, error=error), attempts=12,
                  first_tried_s_ago=3590).after == pytest.approx(10.0)
    # The window has passed since the first try: failed, with the reason.
    assert decide(SendResult(Outcome.RETRY, error=error), attempts=13,
                  first_tried_s_ago=3600) == Action(
        Kind.FAIL, 14, error=f"{error} (after 14 attempts in 3600 s)")


def test_the_window_is_an_option() -> None:
    short = WorkerOptions(backoff_base=1.0, retry_window=30.0)
    assert decide(SendResult(Outcome.RETRY, error="502"), attempts=3, first_tried_s_ago=31,
                  options=short).kind is Kind.FAIL
    # No window at all: a transient error fails at once.
    never = WorkerOptions(retry_window=0.0)
    assert decide(SendResult(Outcome.RETRY, error="502"), options=never) == Action(
        Kind.FAIL, 1, error="502 (after 1 attempt in 0 s)")
    assert WorkerOptions().retry_window == 3600.0


@pytest.mark.parametrize("result", [
    SendResult(Outcome.BLOCKED, error="Forbidden: bot was blocked by the user"),
    SendResult(Outcome.FAILED, error="Bad Request: chat not found"),
])
def test_permanent_outcomes_ignore_the_window(result: SendResult) -> None:
    # A 403 or a 400 on the first try is final; the window is for the road, not the message.
    action = decide(result, attempts=0)
    assert action.kind in (Kind.BLOCKED, Kind.FAIL) and action.after == 0.0


def test_rate_limits_do_not_use_up_the_window_count() -> None:
    action = decide(SendResult(Outcome.RATE_LIMITED, retry_after=5), attempts=2,
                    first_tried_s_ago=4000)
    assert action == Action(Kind.RETRY, 2, 5.0, None, Pause.RATE_LIMITED)
