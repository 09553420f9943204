"""A Hypothesis state machine over the outbox, on the real SQLite and PostgreSQL stores.

Two model workers claim, send, time out, record, crash and lose their leases while
supporters opt out or block the bot. The machine keeps what actually "arrived"
and checks the promises of the broadcast path:

* every recipient ends delivered or with a terminal reason (blocked, failed,
  skipped), once the remaining work is drained;
* a message arrives twice only if it was in flight when its worker crashed, its
  lease ran out before it was recorded, or a timed-out try had in fact arrived;
* nothing is claimed for a supporter after their opt-out (or block) is committed;
* a row is never held by two workers while both leases are valid.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, select, update

from storage import outbox
from storage.db import Database
from storage.models import Base, Broadcast, ChannelIdentity, OutboxMessage, Supporter
from tests.builders import T0, TOKEN, make_bot, seed

T = TypeVar("T")
LEASE = 30.0
MARGIN = 6.0  # a worker sends nothing in the last part of its lease (as worker.Worker)
SUPPORTERS = 4
Key = tuple[int, int]  # (broadcast id, supporter id)


@dataclass
class ModelWorker:
    """What one worker process holds in memory (lost when it crashes)."""

    held: dict[int, tuple[Key, Any, int]] = field(default_factory=dict)  # id -> key, lease, tries
    sent: list[tuple[int, Key]] = field(default_factory=list)  # delivered, not recorded
    other: outbox.Outcomes = field(default_factory=outbox.Outcomes.empty)


def make_machine(db: Database, loop: asyncio.AbstractEventLoop) -> type[RuleBasedStateMachine]:
    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

    async def reset() -> tuple[int, list[int]]:
        async with db.session() as s:
            for table in reversed(Base.metadata.sorted_tables):
                await s.execute(delete(table))
        bot = await make_bot(db, token=TOKEN, base_url="http://127.0.0.1:9/bot")
        return bot, await seed(db, SUPPORTERS, bot_id=bot)

    class OutboxMachine(RuleBasedStateMachine):
        @initialize()
        def setup(self) -> None:
            self.bot, self.supporters = run(reset())
            self.now = T0
            self.workers = {"w1": ModelWorker(), "w2": ModelWorker()}
            self.arrived: Counter[Key] = Counter()
            self.at_risk: set[Key] = set()
            self.gone: set[int] = set()  # opted out or blocked (committed)
            self.broadcasts: list[int] = []

        # --- actions ----------------------------------------------------------------------

        @rule()
        def enqueue(self) -> None:
            async def go() -> int:
                async with db.session() as s:
                    b = Broadcast(bot_id=self.bot, texts={"ko": "x"}, audience={},
                                  status="sending", send_at=self.now, created_by="test",
                                  created_at=self.now)
                    s.add(b)
                    await s.flush()
                    await outbox.materialise(s, broadcast_id=b.id, bot_id=self.bot,
                                             query=outbox.AudienceQuery(), send_at=self.now,
                                             window_end=None)
                    # Materialising again (a second scheduler) must add nothing.
                    again = await outbox.materialise(
                        s, broadcast_id=b.id, bot_id=self.bot, query=outbox.AudienceQuery(),
                        send_at=self.now, window_end=None)
                    assert again == 0
                    return b.id

            self.broadcasts.append(run(go()))

        @rule(name=st.sampled_from(["w1", "w2"]), limit=st.integers(1, 4))
        def claim(self, name: str, limit: int) -> None:
            async def go() -> list[outbox.ClaimedRow]:
                async with db.session() as s:
                    rows, _ = await outbox.claim(
                        s, bot_id=self.bot, owner=name, now=self.now,
                        until=self.now + timedelta(seconds=LEASE), limit=limit)
                    return rows

            rows = run(go())
            worker = self.workers[name]
            for row in rows:
                key = (row.broadcast_id, row.supporter_id)
                assert row.supporter_id not in self.gone, "claimed after a committed opt-out"
                for other_name, other in self.workers.items():
                    if other_name != name and row.id in other.held:
                        _, lease, _ = other.held[row.id]
                        assert lease <= self.now, "a row held by two workers at once"
                worker.held[row.id] = (key, self.now + timedelta(seconds=LEASE), row.attempts)

        def _pick(self, name: str, index: int) -> tuple[int, Key, int] | None:
            worker = self.workers[name]
            usable = sorted(i for i, (_, lease, _) in worker.held.items()
                            if self.now < lease - timedelta(seconds=MARGIN))
            if not usable:
                return None
            row_id = usable[index % len(usable)]
            key, _, attempts = worker.held.pop(row_id)
            return row_id, key, attempts

        @rule(name=st.sampled_from(["w1", "w2"]), index=st.integers(0, 10))
        def send_ok(self, name: str, index: int) -> None:
            picked = self._pick(name, index)
            if picked:
                row_id, key, _ = picked
                self.arrived[key] += 1
                self.workers[name].sent.append((row_id, key))

        @rule(name=st.sampled_from(["w1", "w2"]), index=st.integers(0, 10),
              arrived=st.booleans())
        def send_timeout(self, name: str, index: int, arrived: bool) -> None:
            picked = self._pick(name, index)
            if not picked:
                return
            row_id, key, attempts = picked
            if arrived:  # the answer was lost, the message was not: a retry repeats it
                self.arrived[key] += 1
                self.at_risk.add(key)
            tries = attempts + 1
            other = self.workers[name].other
            if tries >= 3:
                other.failed.append((row_id, tries, "timeout (after 3 attempts)"))
            else:
                other.retry.append((row_id, tries, self.now + timedelta(seconds=2), "timeout"))

        @rule(name=st.sampled_from(["w1", "w2"]), index=st.integers(0, 10))
        def send_blocked(self, name: str, index: int) -> None:
            picked = self._pick(name, index)
            if not picked:
                return
            row_id, key, _ = picked
            identity = run(self._identity(key[1]))
            self.workers[name].other.blocked.append((row_id, identity, "Forbidden"))

        async def _identity(self, supporter_id: int) -> int:
            async with db.session() as s:
                return int((await s.execute(select(ChannelIdentity.id).where(
                    ChannelIdentity.supporter_id == supporter_id))).scalar_one())

        @rule(name=st.sampled_from(["w1", "w2"]))
        def record(self, name: str) -> None:
            worker = self.workers[name]
            batch = worker.other
            batch.sent.extend((row_id, 1000 + row_id) for row_id, _ in worker.sent)
            blocked = {key for key in self._blocked_keys(batch)}

            async def go() -> None:
                async with db.session() as s:
                    await outbox.record(s, owner=name, now=self.now, batch=batch)

            run(go())
            self.gone |= blocked
            worker.sent, worker.other = [], outbox.Outcomes.empty()

        def _blocked_keys(self, batch: outbox.Outcomes) -> list[int]:
            async def go() -> list[int]:
                ids = [row_id for row_id, _, _ in batch.blocked]
                if not ids:
                    return []
                async with db.session() as s:
                    rows = await s.execute(select(OutboxMessage.supporter_id).where(
                        OutboxMessage.id.in_(ids), OutboxMessage.status == "inflight"))
                    return [int(r) for r in rows.scalars()]

            return run(go())

        @rule(name=st.sampled_from(["w1", "w2"]))
        def crash(self, name: str) -> None:
            worker = self.workers[name]
            # Delivered but never recorded: after the lease expires they are sent again.
            self.at_risk |= {key for _, key in worker.sent}
            self.workers[name] = ModelWorker()

        @rule(seconds=st.sampled_from([1.0, 5.0, 20.0, 40.0]))
        def advance(self, seconds: float) -> None:
            self.now += timedelta(seconds=seconds)

        @rule()
        def reclaim(self) -> None:
            for worker in self.workers.values():
                # A slow worker whose lease ran out before it recorded: the row goes back
                # to the queue, so what it delivered may be delivered again.
                self.at_risk |= {key for row_id, key in worker.sent
                                 if self._lease_over(row_id)}

            async def go() -> None:
                async with db.session() as s:
                    await outbox.reclaim_expired(s, now=self.now)

            run(go())

        def _lease_over(self, row_id: int) -> bool:
            async def go() -> bool:
                async with db.session() as s:
                    lease = (await s.execute(select(OutboxMessage.lease_until).where(
                        OutboxMessage.id == row_id))).scalar()
                    return lease is not None and lease < self.now

            return run(go())

        @rule(index=st.integers(0, SUPPORTERS - 1))
        def opt_out(self, index: int) -> None:
            supporter_id = self.supporters[index]

            async def go() -> None:
                async with db.session() as s:
                    await s.execute(update(Supporter).where(Supporter.id == supporter_id)
                                    .values(status="stopped"))

            run(go())
            self.gone.add(supporter_id)

        # --- invariants -------------------------------------------------------------------

        @invariant()
        def duplicates_only_for_in_flight_rows(self) -> None:
            if not hasattr(self, "arrived"):
                return
            twice = {key for key, n in self.arrived.items() if n > 1}
            assert twice <= self.at_risk, f"unexplained duplicates {twice - self.at_risk}"

        @precondition(lambda self: hasattr(self, "workers"))
        @rule()
        def nothing(self) -> None:
            """Lets Hypothesis end a run at any point (the teardown drains the rest)."""

        def teardown(self) -> None:
            if not hasattr(self, "workers"):
                return
            # Every worker crashes; a fresh one drains everything that is left.
            for name in list(self.workers):
                self.crash(name)
            for _ in range(50):
                self.now += timedelta(seconds=LEASE + 5)
                self.reclaim()
                self.claim("w1", 100)
                held = self.workers["w1"].held
                if not held:
                    break
                for _ in range(len(held)):
                    self.send_ok("w1", 0)
                self.record("w1")
            rows = run(self._rows())
            for row in rows:
                key = (row["broadcast_id"], row["supporter_id"])
                assert row["status"] in ("sent", "blocked", "failed", "skipped"), row
                if row["status"] == "sent":
                    assert self.arrived[key] >= 1, f"recorded sent, never arrived: {key}"
                if row["supporter_id"] not in self.gone:
                    assert row["status"] in ("sent", "failed"), row
            self.duplicates_only_for_in_flight_rows()

        async def _rows(self) -> list[dict[str, Any]]:
            async with db.session() as s:
                result = await s.execute(select(OutboxMessage.__table__))
                return [dict(r) for r in result.mappings()]

    return OutboxMachine


async def test_outbox_state_machine(db: Database) -> None:
    loop = asyncio.get_running_loop()
    machine = make_machine(db, loop)
    config = settings(max_examples=15, stateful_step_count=25, deadline=None,
                      suppress_health_check=list(HealthCheck))
    await asyncio.to_thread(run_state_machine_as_test, machine, settings=config)
