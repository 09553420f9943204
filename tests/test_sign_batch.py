"""Batched signing (the webhook hot path) answers each person as the single path would."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from campaigns import petitions
from campaigns.clock import FixedClock
from campaigns.people import Person
from campaigns.petitions import SignRequest
from storage.db import Database
from storage.models import Signature
from tests.builders import make_supporters, setup_petition


def person(bot_id: int, user_id: int) -> Person:
    return Person(bot_id=bot_id, channel="telegram", user_id=str(user_id), chat_id=user_id,
                  first_name="x", language_code="ko")


async def signature_rows(db: Database) -> int:
    async with db.session() as s:
        return int((await s.execute(select(func.count()).select_from(Signature))).scalar_one())


async def test_one_batch_mixes_new_repeat_unknown_and_strangers(db: Database) -> None:
    clock = FixedClock()
    bot_id, _petition = await setup_petition(db, clock)
    await make_supporters(db, bot_id, clock.now(), 3, first_user_id=700)
    async with db.session() as s:  # 701 signed earlier, through the single path
        known = await petitions.supporters.find(s, bot_id, "telegram", "701")
        assert known is not None
        await petitions.sign(s, known.supporter, "clean-air", clock)
    requests = [
        SignRequest(person(bot_id, 700), "clean-air"),     # new
        SignRequest(person(bot_id, 700), "clean-air"),     # the same again, same batch
        SignRequest(person(bot_id, 701), "clean-air"),     # signed before
        SignRequest(person(bot_id, 702), "no-such-thing"),  # unknown slug: single path
        SignRequest(person(bot_id, 999), "clean-air"),     # not signed up: consent first
        SignRequest(person(bot_id, 702), "CLEAN-AIR "),    # new, slug typed loosely
    ]
    async with db.session() as s:
        out = await petitions.sign_batch(s, requests, clock)
    assert out[0] is not None and "지금까지" in out[0][0].text
    assert out[1] is not None and "이미 서명" in out[1][0].text
    assert out[2] is not None and "이미 서명" in out[2][0].text
    assert out[3] is None and out[4] is None
    assert out[5] is not None and "지금까지" in out[5][0].text
    assert await signature_rows(db) == 3


async def test_concurrent_batches_of_the_same_people_store_each_signature_once(
    db: Database,
) -> None:
    clock = FixedClock()
    bot_id, _ = await setup_petition(db, clock)
    await make_supporters(db, bot_id, clock.now(), 50, first_user_id=9000)
    requests = [SignRequest(person(bot_id, 9000 + i), "clean-air") for i in range(50)]

    async def one_batch() -> list[list[object] | None]:
        async with db.session() as s:
            return await petitions.sign_batch(s, requests, clock)  # type: ignore[return-value]

    results = await asyncio.gather(*(one_batch() for _ in range(4)))
    thanks = sum(1 for batch in results for r in batch
                 if r is not None and "지금까지" in r[0].text)  # type: ignore[attr-defined]
    assert await signature_rows(db) == 50
    assert thanks == 50, "each person is thanked exactly once across concurrent batches"
    flushed = await petitions.flush(db, clock)
    assert flushed is not None
    async with db.session() as s:
        p = await petitions.store.petition_by_slug(s, "clean-air")
        assert p is not None and p.signature_count == 50


async def test_signing_limits_shared_through_redis_count_a_whole_batch(
    redis_url: str, redis_prefix: str,
) -> None:
    from storage.petitions import MemoryRateLimiter, RedisRateLimiter

    now = FixedClock().now()
    shared = RedisRateLimiter(redis_url, prefix=redis_prefix)
    try:
        keys = ["sign:1"] * 12 + ["sign:2"]
        first = await shared.hit_many(keys, 10, 60, now)
        assert first == [True] * 10 + [False, False] + [True]
        # A second process sees the same counts.
        other = RedisRateLimiter(redis_url, prefix=redis_prefix)
        assert await other.hit("sign:2", 1, 60, now) is False
        await other.close()
    finally:
        await shared.close()
    assert await MemoryRateLimiter().hit_many(keys, 10, 60, now) == first
