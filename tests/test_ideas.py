"""Ideas on real stores: Korean-aware similarity, moderation, backing once, the threshold."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from campaigns import ideas, petitions
from campaigns.clock import FixedClock
from storage import ideas as store
from storage import privacy
from storage.db import Database
from storage.models import Idea, IdeaBacking, OrganiserNotice, Supporter
from tests.builders import make_bot, make_supporters


def test_similar_ideas_match_across_particles_and_spacing() -> None:
    existing = [(1, "청년 대중교통 요금을 무료로", "청년들의 버스와 지하철 요금을 없애자"),
                (2, "공공 도서관 운영 시간 연장", "밤 10시까지 열자"),
                (3, "반려동물 놀이터 설치", "구마다 하나씩")]
    found = ideas.most_similar("청년대중교통 요금 무료", "버스 지하철 무료로 하자", existing)
    assert [i for i, _ in found] == [1]
    found = ideas.most_similar("공공도서관의 운영시간을 연장", "밤늦게까지 열자", existing)
    assert [i for i, _ in found] == [2]
    assert ideas.most_similar("최저임금 인상", "시급을 올리자", existing) == []


async def setup(db: Database, clock: FixedClock) -> tuple[int, int]:
    bot_id = await make_bot(db, clock.now())
    async with db.session() as s:
        await petitions.create_campaign(s, slug="open-day", title_ko="열린 아이디어의 날",
                                        clock=clock, actor="cli")
        await ideas.set_threshold(s, "open-day", threshold=3)
    [proposer] = await make_supporters(db, bot_id, clock.now(), 1)
    async with db.session() as s:
        sup = await s.get_one(Supporter, proposer)
        await ideas.propose(s, sup, "open-day", clock)
        assert await ideas.typed(s, sup, "청년 대중교통 무료", clock) is not None
        replies = await ideas.typed(s, sup, "청년들의 버스와 지하철 요금을 없애자", clock)
        assert replies is not None and "접수되었습니다" in replies[0].text
        idea_id = int(await s.scalar(select(Idea.id)) or 0)
    return bot_id, idea_id


async def test_idea_texts_pass_the_input_gate(db: Database) -> None:
    clock = FixedClock()
    bot_id = await make_bot(db, clock.now())
    async with db.session() as s:
        await petitions.create_campaign(s, slug="open-day", title_ko="열린 아이디어의 날",
                                        clock=clock, actor="cli")
    [proposer] = await make_supporters(db, bot_id, clock.now(), 1)
    async with db.session() as s:
        sup = await s.get_one(Supporter, proposer)
        await ideas.propose(s, sup, "open-day", clock)
        refused = await ideas.typed(s, sup, "청년\x00 대중교통", clock)
        assert refused is not None and "NUL" in refused[0].text
        # A right-to-left override is dropped, as in petition titles.
        await ideas.typed(s, sup, "청년 \u202e대중교통 무료", clock)
        await ideas.typed(s, sup, "청년들의 버스와 지하철 요금을 없애자", clock)
        assert await s.scalar(select(Idea.title)) == "청년 대중교통 무료"


async def test_moderation_backing_once_and_threshold(db: Database) -> None:
    clock = FixedClock()
    bot_id, idea_id = await setup(db, clock)
    async with db.session() as s:
        assert [i.id for i in await ideas.review_queue(s, "open-day")] == [idea_id]
        told = await ideas.approve(s, idea_id, actor="cli", clock=clock)
    assert len(told) == 1 and "공개되었습니다" in told[0].reply.text
    backers = await make_supporters(db, bot_id, clock.now(), 3, first_user_id=600_000)

    async def tap(sid: int) -> None:
        async with db.session() as s:
            await ideas.back(s, await s.get_one(Supporter, sid), idea_id, clock)

    # Twenty concurrent taps by one person count once.
    await asyncio.gather(*(tap(backers[0]) for _ in range(20)), return_exceptions=True)
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(IdeaBacking)) == 1
        assert (await s.get_one(Idea, idea_id)).back_count == 1
    for sid in backers[1:]:
        await tap(sid)
        await tap(sid)
    async with db.session() as s:
        idea = await s.get_one(Idea, idea_id)
        assert idea.back_count == 3 and idea.threshold_reached_at is not None
        alerts = (await s.execute(select(OrganiserNotice.kind))).scalars().all()
        assert alerts.count("idea_threshold") == 1
        await ideas.answer(s, idea_id, outcome="studying", text="예산을 검토하고 있습니다.",
                           actor="cli", clock=clock)
    sent = await ideas.deliver_answers(db, clock)
    assert sorted(o.supporter_id for o in sent) == sorted(backers)
    assert all("검토 중" in o.reply.text for o in sent)
    assert await ideas.deliver_answers(db, clock) == []


async def test_concurrent_backs_never_exceed_the_per_supporter_limit(db: Database) -> None:
    clock = FixedClock()
    bot_id, first = await setup(db, clock)
    async with db.session() as s:
        await ideas.set_threshold(s, "open-day", threshold=None, backs_per_supporter=3)
        campaign_id = (await s.get_one(Idea, first)).campaign_id
        now = clock.now()
        for n in range(20):
            await store.insert_idea(s, campaign_id=campaign_id, proposer_id=None,
                                    title=f"아이디어 {n}", body="본문", status="approved",
                                    created_at=now, updated_at=now)
        targets = list((await s.execute(
            select(Idea.id).where(Idea.status == "approved"))).scalars())
    [backer] = await make_supporters(db, bot_id, clock.now(), 1, first_user_id=600_000)

    async def tap(idea_id: int) -> None:
        async with db.session() as s:
            await ideas.back(s, await s.get_one(Supporter, backer), idea_id, clock)

    # Twenty taps at once, each on a different idea: exactly the three allowed count.
    outcomes = await asyncio.gather(*(tap(i) for i in targets), return_exceptions=True)
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    async with db.session() as s:
        assert await store.backs_by(s, campaign_id, backer) == 3
        assert await s.scalar(select(func.sum(Idea.back_count))) == 3


async def test_forget_removes_authorship_and_keeps_counts(db: Database) -> None:
    clock = FixedClock()
    _bot_id, idea_id = await setup(db, clock)
    async with db.session() as s:
        await ideas.approve(s, idea_id, actor="cli", clock=clock)
        proposer = (await s.get_one(Idea, idea_id)).proposer_id
        assert proposer is not None
        await ideas.back(s, await s.get_one(Supporter, proposer), idea_id, clock)
        for eraser in privacy.erasers():
            await eraser(s, proposer)
    async with db.session() as s:
        idea = await s.get_one(Idea, idea_id)
        assert idea.proposer_id is None and idea.back_count == 1
        assert (await s.execute(select(IdeaBacking.supporter_id))).scalars().all() == [None]
        assert await store.draft_of(s, proposer) is None


async def test_an_idea_pending_review_is_never_shown_to_another_supporter(db: Database) -> None:
    """Similar ideas shown while writing are public ones only: a pending idea (not yet
    reviewed, perhaps never published) stays with its author and the organisers."""
    clock = FixedClock()
    bot_id, _pending = await setup(db, clock)
    [other] = await make_supporters(db, bot_id, clock.now(), 1, first_user_id=700_000)
    async with db.session() as s:
        sup = await s.get_one(Supporter, other)
        await ideas.propose(s, sup, "open-day", clock)
        await ideas.typed(s, sup, "청년대중교통 요금 무료", clock)
        replies = await ideas.typed(s, sup, "버스와 지하철 요금을 없애자", clock)
    assert replies is not None and "접수되었습니다" in replies[0].text
    assert not any("청년 대중교통 무료" in r.text for r in replies)
