"""Courier's classification of a send's result, on its own: what happens to the row next."""

from __future__ import annotations

import pytest

from bots.channel import Outcome, SendResult
from campaigns.broadcasts import MAX_ATTEMPTS
from worker.outcomes import Action, Kind, Pause, classify


def decide(result: SendResult, attempts: int = 0) -> Action:
    # Back-off of 10 s times the try number: fixed, so the delays can be compared.
    return classify(result, attempts, backoff=lambda n: 10.0 * n, bot_error_pause=60.0)


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


def test_transient_errors_back_off_then_give_up() -> None:
    first = decide(SendResult(Outcome.RETRY, error="timeout"))
    assert first == Action(Kind.RETRY, 1, 10.0, "timeout")
    assert decide(SendResult(Outcome.RETRY), attempts=1).after == 20.0
    last = decide(SendResult(Outcome.RETRY, error="502"), attempts=MAX_ATTEMPTS - 1)
    assert last == Action(Kind.FAIL, MAX_ATTEMPTS,
                          error=f"502 (after {MAX_ATTEMPTS} attempts)")
