"""X's automation rules, enforced in code (rules, no network I/O).

X's automation rules (https://help.x.com/en/rules-and-policies/x-automation) allow
automated replies and direct messages only where the person asked for them. The
X adapter (bots/x) calls these checks before every reply and post (it sends no DMs),
and there is no other way to reach X from nalgae; an attempt that breaks a rule is
refused (``PolicyViolation``) and written to the audit log, with internal ids only.

- Reply only to someone who engaged first: a reply must answer a mention of the
  account, by the person it is addressed to, that nalgae read from X.
- At most one reply per mention.
- Someone who said "stop" gets no further replies (only the confirmation of the stop).
- Never bulk direct messages: a broadcast is one public post, never a message per
  supporter.
- No unsolicited @mentions in posts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from campaigns.x.text import handles
from storage import supporters
from storage.db import Database

log = logging.getLogger("nalgae.x.policy")

class Rule(StrEnum):
    ENGAGED_FIRST = "reply_only_after_engagement"
    ONE_REPLY = "one_reply_per_mention"
    STOPPED = "no_reply_after_stop"
    NO_BULK_DM = "no_bulk_dm"
    NO_MENTIONS = "no_unsolicited_mentions"


@dataclass
class PolicyViolation(Exception):
    """An attempt X's automation rules forbid. ``target`` is an internal id, e.g. x_mention:3."""

    rule: Rule
    reason: str
    target: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"refused by X policy ({self.rule}): {self.reason}"


@dataclass(frozen=True)
class MentionFacts:
    """What the ledger knows about a mention a reply would answer."""

    mention_id: int
    tweet_id: int
    author_id: int | None
    reply_state: str
    replies_sent: int
    intent: str | None
    supporter_status: str | None


def check_reply(*, to_user_id: int, in_reply_to: int, mention: MentionFacts | None,
                claimed: bool = False) -> None:
    """Raise PolicyViolation unless this reply answers a mention of ``to_user_id``, once.

    ``claimed`` is True when the caller holds the mention's reply claim (reply_state
    "sending"): the claim is the one allowed reply, so "sending" is not a repeat.
    """
    if mention is None or mention.tweet_id != in_reply_to:
        raise PolicyViolation(Rule.ENGAGED_FIRST,
                              "the post replied to is not a mention the account received")
    target = f"x_mention:{mention.mention_id}"
    settled = ("sent", "refused", "failed")
    if (mention.replies_sent > 0 or mention.reply_state in settled
            or (mention.reply_state == "sending" and not claimed)):
        raise PolicyViolation(Rule.ONE_REPLY, "this mention was answered already", target)
    if mention.author_id is None or mention.author_id != to_user_id:
        # No author kept: the mention asked for nothing an automated reply may answer.
        raise PolicyViolation(Rule.ENGAGED_FIRST,
                              "the reply is not addressed to the author of the mention", target)
    if mention.supporter_status == "stopped" and mention.intent != "stop":
        raise PolicyViolation(Rule.STOPPED, "the person asked us to stop", target)


def check_broadcast_target(*, chat_id: int, account_id: int | None,
                           outbox_id: int | None) -> None:
    """A broadcast reaches X as one public post of the account, never a message per person."""
    if account_id is None or chat_id != account_id:
        raise PolicyViolation(
            Rule.NO_BULK_DM, "a broadcast message addressed to a person on X (bulk DM)",
            f"outbox:{outbox_id}" if outbox_id is not None else None)


def check_post(text: str) -> None:
    """Raise PolicyViolation if a post would @mention people (unsolicited mentions)."""
    found = handles(text)
    if found:
        raise PolicyViolation(Rule.NO_MENTIONS, "a post that @mentions accounts",
                              details={"mentions": len(found)})


async def record_refusal(db: Database, violation: PolicyViolation, *, bot_id: int,
                         now: datetime) -> None:
    """Audit a refused attempt in its own transaction (the caller's may roll back)."""
    log.warning("X bot %d: %s", bot_id, violation)
    details = {"rule": str(violation.rule), "reason": violation.reason, **violation.details}
    try:
        async with db.session() as s:
            await supporters.audit(s, actor=f"x:bot:{bot_id}", action="x.policy_refused",
                                   target=violation.target, now=now, details=details)
    except Exception as exc:  # the refusal stands even if the audit cannot be written
        log.error("could not audit an X policy refusal: %s", type(exc).__name__)
