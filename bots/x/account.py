"""The X account as nalgae uses it: every post and reply passes the policy first.

``XAccount`` is the only way the rest of nalgae reaches X for writing. Each method
checks campaigns.x.policy before the request and paces itself on the account's
own post count (campaigns.x.posts.budget_wait), so a limit is respected before X
has to refuse; X's own 429 is the backstop and comes back as XApiError with the
reset time.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bots.channel import Outcome, SendResult
from campaigns.broadcasts import OutgoingMessage
from campaigns.clock import Clock
from campaigns.x import posts as x_posts
from campaigns.x.policy import (
    MentionFacts,
    PolicyViolation,
    check_broadcast_target,
    check_post,
    check_reply,
    record_refusal,
)
from campaigns.x.settings import XLimits
from storage import x as store
from storage.db import Database

from .client import XApi, XApiError

log = logging.getLogger("nalgae.x")


class XAccount:
    """One X account (one bot row): guarded writes, paced on its own post count."""

    def __init__(self, api: XApi, db: Database, clock: Clock, *, bot_id: int,
                 account_id: int | None, limits: XLimits) -> None:
        self.api = api
        self.db = db
        self.clock = clock
        self.bot_id = bot_id
        self.account_id = account_id
        self.limits = limits

    async def _refuse(self, violation: PolicyViolation) -> None:
        await record_refusal(self.db, violation, bot_id=self.bot_id, now=self.clock.now())

    async def _paced(self, needed: int = 1) -> None:
        wait = await x_posts.budget_wait(self.db, self.clock, bot_id=self.bot_id,
                                         limits=self.limits, needed=needed)
        if wait > 0:
            reset = self.clock.now() + timedelta(seconds=wait)
            raise XApiError("rate_limited", f"own post budget spent until {reset.isoformat()}",
                            reset_at=reset, limit="local")

    # --- replies ------------------------------------------------------------------------------

    async def reply(self, *, in_reply_to: int, to_user_id: int, text: str,
                    claimed: bool = False) -> int:
        """Reply to a mention; PolicyViolation unless that person mentioned us, once."""
        async with self.db.session() as s:
            found = await store.mention_facts(s, self.bot_id, in_reply_to)
        facts = None
        if found is not None:
            mention, status, replies = found
            facts = MentionFacts(mention.id, mention.tweet_id, mention.author_id,
                                 mention.reply_state, replies, mention.intent, status)
        try:
            check_reply(to_user_id=to_user_id, in_reply_to=in_reply_to, mention=facts,
                        claimed=claimed)
            check_post(text)
        except PolicyViolation as violation:
            await self._refuse(violation)
            raise
        assert facts is not None
        await self._paced()
        posted = await self.api.create_post(text, in_reply_to=in_reply_to)
        await x_posts.record_part(self.db, self.clock, bot_id=self.bot_id,
                                  key=store.reply_key(facts.mention_id), part=0, kind="reply",
                                  tweet_id=posted.id, in_reply_to=in_reply_to)
        return posted.id

    async def send_due_replies(self, limit: int = 50) -> dict[str, int]:
        """Send the replies the intake queued: each claimed once, sent at most once."""
        counts = {"sent": 0, "retry": 0, "failed": 0, "refused": 0}
        async with self.db.session() as s:
            due = await store.claim_replies(s, bot_id=self.bot_id, now=self.clock.now(),
                                            limit=limit)
        stop_after: XApiError | None = None
        for item in due:
            if stop_after is not None:
                # Rate limited or refused credentials: hand the rest back untouched.
                await self._settle_retry(item.mention_id, item.attempts, stop_after)
                counts["retry"] += 1
                continue
            try:
                tweet_id = await self.reply(in_reply_to=item.tweet_id,
                                            to_user_id=item.author_id or 0,
                                            text=item.text, claimed=True)
            except PolicyViolation as violation:
                await self._settle(item.mention_id, "refused", error=str(violation))
                counts["refused"] += 1
                continue
            except XApiError as err:
                if err.kind in ("rate_limited", "auth"):
                    stop_after = err
                    await self._settle_retry(item.mention_id, item.attempts, err)
                    counts["retry"] += 1
                elif err.kind in ("network", "server") and item.attempts < 2:
                    await self._settle_retry(item.mention_id, item.attempts + 1, err)
                    counts["retry"] += 1
                else:
                    # "unknown" (it may have been posted) is never retried: at most one reply.
                    await self._settle(item.mention_id, "failed", error=str(err))
                    counts["failed"] += 1
                continue
            await self._settle(item.mention_id, "sent", tweet_id=tweet_id)
            counts["sent"] += 1
        return counts

    async def _settle(self, mention_id: int, state: str, *, tweet_id: int | None = None,
                      error: str | None = None) -> None:
        async with self.db.session() as s:
            await store.finish_reply(s, mention_id, state=state, now=self.clock.now(),
                                     reply_tweet_id=tweet_id, error=error)

    async def _settle_retry(self, mention_id: int, attempts: int, err: XApiError) -> None:
        now = self.clock.now()
        at = err.reset_at if err.reset_at is not None else now + timedelta(seconds=60)
        async with self.db.session() as s:
            await store.retry_reply(s, mention_id, not_before=at, attempts=attempts,
                                    error=str(err))

    # --- broadcasts ---------------------------------------------------------------------------

    async def publish(self, *, chat_id: int, message: OutgoingMessage,
                      outbox_id: int | None) -> SendResult:
        """One outbox row as a post, a thread or a native poll; resumes a cut-short thread."""
        try:
            check_broadcast_target(chat_id=chat_id, account_id=self.account_id,
                                   outbox_id=outbox_id)
        except PolicyViolation as violation:
            await self._refuse(violation)
            return SendResult(Outcome.FAILED, error=str(violation)[:200])
        key = f"outbox:{outbox_id}" if outbox_id is not None else None
        state = await x_posts.post_state(self.db, self.clock, bot_id=self.bot_id,
                                         key=key or "", outbox_id=outbox_id)
        plan = await self.api.run(x_posts.plan_post, message, seconds_left=state.seconds_left)
        if plan.problem:
            return SendResult(Outcome.FAILED, error=f"cannot post on X: {plan.problem}"[:200])
        remaining = [i for i in range(len(plan.parts)) if i not in state.done]
        if not remaining:
            return SendResult(Outcome.SENT, message_id=state.done.get(0))
        try:
            await self._paced(len(remaining))
            previous = state.done.get(remaining[0] - 1)
            for index in remaining:
                posted = await self.api.create_post(
                    plan.parts[index], in_reply_to=previous,
                    poll_options=plan.poll_options, poll_minutes=plan.poll_minutes)
                poll = None
                if plan.poll_options is not None:
                    poll = (state.poll_id, plan.poll_options, plan.poll_minutes or 0)
                await x_posts.record_part(self.db, self.clock, bot_id=self.bot_id,
                                          key=key or f"direct:{posted.id}", part=index,
                                          kind=plan.kind, tweet_id=posted.id,
                                          in_reply_to=previous, poll=poll)
                state.done[index] = posted.id
                previous = posted.id
        except XApiError as err:
            return self._result(err)
        return SendResult(Outcome.SENT, message_id=state.done.get(0))

    def _result(self, err: XApiError) -> SendResult:
        if err.kind == "rate_limited":
            now = self.clock.now()
            wait = (err.reset_at - now).total_seconds() if err.reset_at else 60.0
            return SendResult(Outcome.RATE_LIMITED, error=str(err)[:200],
                              retry_after=max(1.0, wait))
        if err.kind == "auth":
            return SendResult(Outcome.BOT_ERROR, error=str(err)[:200])
        if err.kind in ("server", "network", "unknown"):
            # A repeat of a post that did go through is refused by X as a duplicate.
            return SendResult(Outcome.RETRY, error=str(err)[:200])
        return SendResult(Outcome.FAILED, error=str(err)[:200])
