"""A Hypothesis state machine over RSVPs on the real SQLite and PostgreSQL stores.

People answer going / maybe / not going, the organiser changes the capacity, people
check in with their pass. After every step: nobody is going beyond the capacity, the
store's waitlist is the model's (arrival order, first in line promoted first), a free
seat never sits beside a waitlist, and a check-in succeeds exactly when the model says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete

from campaigns import events
from campaigns.clock import FixedClock
from campaigns.errors import RuleError
from storage import events as store
from storage.db import Database
from storage.models import Base
from tests.builders import answer, make_bot, make_event, make_supporters
from tests.test_signup_rules import person

T = TypeVar("T")
PEOPLE = 5
FIRST_USER = 900


def make_machine(db: Database, loop: asyncio.AbstractEventLoop) -> type[RuleBasedStateMachine]:
    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

    clock = FixedClock()

    async def reset() -> tuple[int, int, list[int]]:
        async with db.session() as s:
            for table in reversed(Base.metadata.sorted_tables):
                await s.execute(delete(table))
        bot = await make_bot(db, clock.now())
        event = await make_event(db, clock, capacity=2)
        ids = await make_supporters(db, bot, clock.now(), PEOPLE, first_user_id=FIRST_USER)
        return bot, event.id, ids

    class RsvpMachine(RuleBasedStateMachine):
        @initialize()
        def setup(self) -> None:
            self.bot, self.event_id, self.ids = run(reset())
            self.capacity: int | None = 2
            self.status: dict[int, str] = {}
            self.line: list[int] = []  # the waitlist, first in line first
            self.checked: set[int] = set()

        def _going(self) -> int:
            return sum(1 for s in self.status.values() if s == "going")

        def _promote(self) -> None:
            while self.line and (self.capacity is None or self._going() < self.capacity):
                self.status[self.line.pop(0)] = "going"

        @rule(who=st.integers(0, PEOPLE - 1), what=st.sampled_from(["going", "maybe",
                                                                    "not_going"]))
        def rsvp(self, who: int, what: str) -> None:
            sid = self.ids[who]
            run(answer(db, sid, "screening", what, clock))
            current = self.status.get(sid)
            if what == "going":
                if current == "going":
                    return
                if self.capacity is None or self._going() < self.capacity:
                    self.status[sid] = "going"
                elif current != "waitlisted":
                    self.status[sid] = "waitlisted"
                    self.line.append(sid)
                return
            if current == what:
                return
            if current == "waitlisted":
                self.line.remove(sid)
            self.status[sid] = what
            if current == "going":
                self._promote()

        @rule(capacity=st.one_of(st.none(), st.integers(1, PEOPLE)))
        def change_capacity(self, capacity: int | None) -> None:
            async def change() -> bool:
                try:
                    async with db.session() as s:
                        await events.update_event(s, "screening", capacity=capacity,
                                                  unlimited=capacity is None, actor="cli",
                                                  clock=clock)
                except RuleError:
                    return False
                return True

            accepted = run(change())
            assert accepted == (capacity is None or capacity >= self._going())
            if accepted:
                self.capacity = capacity
                self._promote()

        @rule(who=st.integers(0, PEOPLE - 1))
        def check_in(self, who: int) -> None:
            sid = self.ids[who]
            p = person(self.bot, user_id=str(FIRST_USER + who), chat_id=FIRST_USER + who)

            async def door() -> bool:
                async with db.session() as s:
                    [reply] = await events.check_in_pass(s, p, "screening", clock)
                if "<code>" not in reply.text:
                    return False
                code = reply.text.split("<code>")[1].split("</code>")[0]
                async with db.session() as s:
                    result = await events.check_in(s, "screening", code, actor="cli",
                                                   clock=clock)
                return result.ok

            expected = self.status.get(sid) == "going" and sid not in self.checked
            assert run(door()) == expected
            if expected:
                self.checked.add(sid)

        @invariant()
        def matches_the_store(self) -> None:
            if not hasattr(self, "ids"):
                return

            async def read() -> tuple[dict[str, int], list[int]]:
                async with db.session() as s:
                    return (await store.counts(s, self.event_id),
                            await store.waitlist(s, self.event_id))

            counts, line = run(read())
            assert self.capacity is None or counts["going"] <= self.capacity
            assert counts["going"] == self._going()
            assert line == self.line
            if self.capacity is None or counts["going"] < self.capacity:
                assert line == []
            assert counts["checked_in"] == len(self.checked)

    return RsvpMachine


async def test_rsvp_state_machine(db: Database) -> None:
    loop = asyncio.get_running_loop()
    machine = make_machine(db, loop)
    config = settings(max_examples=12, stateful_step_count=25, deadline=None,
                      suppress_health_check=list(HealthCheck))
    await asyncio.to_thread(run_state_machine_as_test, machine, settings=config)
