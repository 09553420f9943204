"""Poll rules on real stores (SQLite and PostgreSQL): weights, secrecy, changes, eligibility."""

from __future__ import annotations

import itertools
from collections import defaultdict
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from campaigns import petitions, polls
from campaigns.clock import FixedClock
from campaigns.errors import RuleError
from campaigns.people import Person
from campaigns.regions import REGION_CODES
from storage import polls as store
from storage import privacy
from storage.db import Database
from storage.models import (
    Bot,
    PollAnswer,
    PollBallot,
    PollBallotPending,
    PollVoter,
    Supporter,
)
from tests.builders import make_bot, make_supporters

_slugs = itertools.count()


async def setup(db: Database, clock: FixedClock) -> int:
    bot_id = await make_bot(db, clock.now())
    async with db.session() as s:
        await petitions.create_campaign(s, slug="party", title_ko="당 운영", clock=clock,
                                        actor="cli")
    return bot_id


async def new_poll(db: Database, clock: FixedClock, **kw: Any) -> int:
    args: dict[str, Any] = dict(campaign_slug="party", slug=f"poll-{next(_slugs)}",
                                question_ko="대표 선출 규칙을 바꿀까요?", kind="yes_no_abstain",
                                clock=clock, actor="cli")
    args.update(kw)
    async with db.session() as s:
        return (await polls.create_poll(s, **args)).id


async def vote(db: Database, clock: FixedClock, supporter_id: int, poll_id: int,
               choices: list[int]) -> polls.VoteOutcome:
    async with db.session() as s:
        sup = await s.get_one(Supporter, supporter_id)
        return await polls.vote(s, sup, poll_id, choices, clock)


async def summary(db: Database, poll_id: int) -> dict[str, Any]:
    async with db.session() as s:
        poll = await store.poll_by_id(s, poll_id)
        assert poll is not None
        return await polls.summary(s, poll.slug)


async def full_summary(db: Database, poll_id: int) -> dict[str, Any]:
    """The summary with every group, however small (no one is shown this: the arithmetic)."""
    async with db.session() as s:
        poll = await store.poll_by_id(s, poll_id)
        assert poll is not None
        out = await polls.summary(s, poll.slug)
        r = await polls.results(s, poll)
    if "by_tier" in out:
        out["by_tier"] = {k: polls.breakdown_json(b, poll) for k, b in r.by_tier.items()}
        out["by_region"] = {k: polls.breakdown_json(b, poll) for k, b in r.by_region.items()}
    return out


def test_exact_formats_and_weights() -> None:
    assert polls.exact(Fraction(7, 2)) == "3.5"
    assert polls.exact(Fraction(1, 3)) == "1/3"
    assert polls.exact(Fraction(3, 10) * 3) == "0.9"
    assert polls.exact(Fraction(-1, 8)) == "-0.125"
    assert polls.exact(Fraction(12)) == "12"
    assert polls.parse_weights("member=1,supporter=0.5") == {"member": "1", "supporter": "0.5"}
    assert polls.parse_weights("supporter=2/6") == {"member": "1", "supporter": "1/3"}
    assert polls.rounded(Fraction(2, 3) * 100) == "66.7"
    for bad in ("member=-1", "member=abc", "member=1e3", "boss=1", "member"):
        try:
            polls.parse_weights(bad)
        except RuleError:
            continue
        raise AssertionError(f"{bad!r} accepted")


async def test_weighted_tally_exact_on_a_hand_computed_case(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    poll_id = await new_poll(db, clock, weights="member=1,supporter=1/3")
    members = await make_supporters(db, bot_id, clock.now(), 3, tier="member", region="seoul")
    backers = await make_supporters(db, bot_id, clock.now(), 6, region="busan",
                                    first_user_id=600_000)
    # members: yes, yes, no; supporters: yes, yes, yes, no, abstain, abstain
    for sid, choice in zip(members + backers, [0, 0, 1, 0, 0, 0, 1, 2, 2], strict=True):
        assert (await vote(db, clock, sid, poll_id, [choice])).status == "thanks"
    shown = await summary(db, poll_id)
    assert shown["by_tier"]["member"] == {"voters": 3, "withheld": True}
    assert shown["by_region"]["busan"]["voters"] == 6 and "options" in shown["by_region"]["busan"]
    r = await full_summary(db, poll_id)
    overall = r["overall"]
    assert [o["count"] for o in overall["options"]] == [5, 2, 2]
    # yes = 2·1 + 3·⅓ = 3; no = 1 + ⅓ = 4/3; abstain = 2·⅓ = 2/3; all = 3 + 6·⅓ = 5
    assert [o["weighted"] for o in overall["options"]] == ["3", "4/3", "2/3"]
    assert overall["weighted_voters"] == "5" and r["voters"] == 9
    assert [o["weighted_share"] for o in overall["options"]] == ["0.6", "4/15", "2/15"]
    assert [o["weighted"] for o in r["by_tier"]["member"]["options"]] == ["2", "1", "0"]
    assert [o["weighted"] for o in r["by_tier"]["supporter"]["options"]] == ["1", "1/3", "2/3"]
    assert [o["count"] for o in r["by_region"]["busan"]["options"]] == [3, 1, 2]
    assert r["by_region"]["seoul"]["weighted_voters"] == "3"


async def test_decimal_weights_do_not_drift_like_floats(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    poll_id = await new_poll(db, clock, weights="member=0.1,supporter=0.1")
    ids = await make_supporters(db, bot_id, clock.now(), 3)
    for sid in ids:
        await vote(db, clock, sid, poll_id, [0])
    assert 0.1 + 0.1 + 0.1 != 0.3  # what a float tally would get wrong
    assert (await summary(db, poll_id))["overall"]["options"][0]["weighted"] == "0.3"


async def test_scale_and_multiple_choice_tallies(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    scale = await new_poll(db, clock, kind="scale", weights="member=2,supporter=1")
    members = await make_supporters(db, bot_id, clock.now(), 1, tier="member")
    backers = await make_supporters(db, bot_id, clock.now(), 2, first_user_id=600_000)
    for sid, value in zip(members + backers, [5, 1, 2], strict=True):
        await vote(db, clock, sid, scale, [value - 1])
    r = await summary(db, scale)
    # raw mean (5+1+2)/3 = 8/3; weighted (2·5 + 1 + 2)/(2+1+1) = 13/4
    assert r["overall"]["mean"] == "8/3" and r["overall"]["weighted_mean"] == "3.25"
    multi = await new_poll(db, clock, kind="multiple",
                           options=[("교통", "Transport"), ("주거", "Housing"), ("환경", None)])
    await vote(db, clock, members[0], multi, [0, 2])
    await vote(db, clock, backers[0], multi, [2])
    r = await summary(db, multi)
    assert [o["count"] for o in r["overall"]["options"]] == [1, 0, 2]
    assert [o["weighted"] for o in r["overall"]["options"]] == ["1", "0", "2"]
    assert r["overall"]["options"][2]["label_en"] == "환경"  # no English label: Korean shown
    assert (await vote(db, clock, backers[1], multi, [])).status == "invalid"
    assert (await vote(db, clock, backers[1], multi, [7])).status == "invalid"


def naive_recount(rows: list[dict[str, Any]], n_options: int) -> dict[str, Any]:
    """An independent recount from the raw rows: the check anyone can run."""
    counts = [0] * n_options
    weights = [Fraction(0)] * n_options
    by_tier: dict[str, list[Fraction]] = defaultdict(lambda: [Fraction(0)] * n_options)
    by_region: dict[str, list[int]] = defaultdict(lambda: [0] * n_options)
    for row in rows:
        for c in (int(x) for x in row["choices"].split(",")):
            counts[c] += 1
            weights[c] += Fraction(row["weight"])
            by_tier[row["tier"]][c] += Fraction(row["weight"])
            by_region[row["region"] or ""][c] += 1
    return {"counts": counts, "weights": [polls.exact(w) for w in weights],
            "by_tier": {k: [polls.exact(w) for w in v] for k, v in by_tier.items()},
            "by_region": dict(by_region), "voters": len(rows)}


VOTER = st.tuples(st.sampled_from(["member", "supporter"]),
                  st.sampled_from(["seoul", "busan", "jeju", None]),
                  st.sets(st.integers(0, 3), min_size=1, max_size=4))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    voters=st.lists(VOTER, min_size=0, max_size=25),
    member_weight=st.sampled_from(["1", "2", "0.5", "1/3", "7/10"]),
    supporter_weight=st.sampled_from(["1", "0.25", "1/3", "2/7", "0"]),
    secret=st.booleans(),
)
async def test_tally_equals_a_recount_of_the_stored_rows(
    db: Database, voters: list[tuple[str, str | None, set[int]]], member_weight: str,
    supporter_weight: str, secret: bool,
) -> None:
    clock = FixedClock()
    async with db.session() as s:  # one store for every example: set up once
        existing = await s.scalar(select(Bot.id).limit(1))
    bot_id = existing if existing is not None else await make_bot(db, clock.now())
    async with db.session() as s:
        if await petitions.store.campaign_by_slug(s, "party") is None:
            await petitions.create_campaign(s, slug="party", title_ko="당", clock=clock,
                                            actor="cli")
    poll_id = await new_poll(db, clock, kind="multiple", secret=secret,
                             options=[("가", None), ("나", None), ("다", None), ("라", None)],
                             weights=f"member={member_weight},supporter={supporter_weight}")
    base = 1_000_000 + next(_slugs) * 100
    for i, (tier, region, choices) in enumerate(voters):
        [sid] = await make_supporters(db, bot_id, clock.now(), 1, tier=tier, region=region,
                                      first_user_id=base + i)
        assert (await vote(db, clock, sid, poll_id, sorted(choices))).status == "thanks"
    if secret:
        await polls.mix_ballots(db, min_batch=10)  # some mixed, some maybe still pending
        async with db.session() as s:
            poll = await store.poll_by_id(s, poll_id)
            assert poll is not None
            await polls.close_poll(s, poll.slug, actor="cli", clock=clock)
    r = await full_summary(db, poll_id)
    shown = await summary(db, poll_id)
    for key in ("by_tier", "by_region"):  # what anyone sees: only groups of five or more
        assert {k for k, v in shown[key].items() if "options" in v} == \
            {k for k, v in r[key].items() if v["voters"] >= polls.MIN_GROUP}
    async with db.session() as s:
        poll = await store.poll_by_id(s, poll_id)
        assert poll is not None
        rows = await store.stored_rows(s, poll)
        exported = await polls.stored_ballots(s, poll.slug)
    expected = naive_recount(rows, 4)
    # The rows that leave the system recount the same overall and tier totals, and never
    # place a voter in a (tier, region) group of fewer than five.
    published = naive_recount(exported, 4)
    for key in ("counts", "weights", "by_tier", "voters"):
        assert published[key] == expected[key]
    sizes = {(t, r): sum(1 for v in voters if (v[0], v[1]) == (t, r)) for t, r, _ in voters}
    for row in exported:
        if row["region"] is not None:
            assert sizes[(row["tier"], row["region"])] >= polls.MIN_GROUP
    assert sum(r["withheld"] for r in exported) == sum(
        n for (_, region), n in sizes.items() if region and n < polls.MIN_GROUP)
    assert r["voters"] == len(voters) == expected["voters"]
    assert [o["count"] for o in r["overall"]["options"]] == expected["counts"]
    assert [o["weighted"] for o in r["overall"]["options"]] == expected["weights"]
    assert {k: [o["weighted"] for o in v["options"]] for k, v in r["by_tier"].items()} == \
        expected["by_tier"]
    assert {k: [o["count"] for o in v["options"]] for k, v in r["by_region"].items()} == \
        expected["by_region"]


async def test_exported_rows_hide_a_lone_regional_voter_and_the_erased(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    poll_id = await new_poll(db, clock, weights="member=1,supporter=1/2")
    seoul = await make_supporters(db, bot_id, clock.now(), 6, region="seoul")
    [jeju] = await make_supporters(db, bot_id, clock.now(), 1, region="jeju",
                                   first_user_id=700_000)
    for sid in seoul:
        await vote(db, clock, sid, poll_id, [0])
    await vote(db, clock, jeju, poll_id, [1])  # the only voter from Jeju
    async with db.session() as s:
        for eraser in privacy.erasers():
            await eraser(s, seoul[0])  # one Seoul voter uses /forget
    async with db.session() as s:
        poll = await store.poll_by_id(s, poll_id)
        assert poll is not None
        rows = await polls.stored_ballots(s, poll.slug)
    assert not any(r["region"] == "jeju" for r in rows)
    # The erased voter's row counts but carries no region; five linked Seoul voters remain,
    # enough to be shown.
    assert sorted((r["choices"], r["region"] or "-", r["withheld"]) for r in rows) == (
        [("0", "-", True)] + [("0", "seoul", False)] * 5 + [("1", "-", True)])
    assert all(set(r) == {"choices", "tier", "region", "weight", "withheld"} for r in rows)
    shown = await summary(db, poll_id)
    recount = naive_recount(rows, 3)
    assert [o["count"] for o in shown["overall"]["options"]] == recount["counts"]
    assert [o["weighted"] for o in shown["overall"]["options"]] == recount["weights"]


async def test_secret_ballot_cannot_be_linked_to_the_voter(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    poll_id = await new_poll(db, clock, secret=True, kind="scale")
    regions = sorted(REGION_CODES)[:12]
    voters = []
    for i, region in enumerate(regions):  # each voter identifiable by region, for the test
        voters += await make_supporters(db, bot_id, clock.now(), 1, region=region,
                                        first_user_id=800_000 + i)
    for sid in voters:
        assert (await vote(db, clock, sid, poll_id, [sid % 5])).status == "thanks"
        clock.advance(seconds=30)
    # No column can hold a person or a time; the key is random text, not a sequence.
    for model in (PollBallot, PollBallotPending):
        columns = {c.name for c in model.__table__.columns}
        assert columns == {"poll_id", "id", "choices", "tier", "region", "weight"}
    moved = await polls.mix_ballots(db, min_batch=10)
    assert moved == 12
    vote_order = regions
    async with db.session() as s:
        natural = [str(r) for r in (await s.execute(select(PollBallot.region))).scalars()]
        by_key = [str(r) for r in (await s.execute(select(PollBallot.region)
                                                   .order_by(PollBallot.id))).scalars()]
        assert await s.scalar(select(func.count()).select_from(PollBallotPending)) == 0
        assert sorted(natural) == sorted(vote_order)
        # Shuffled: neither the storage order nor the key order replays the voting order
        # (a chance of 1 in 12! each).
        assert natural != vote_order and by_key != vote_order
        if db.is_postgres:
            # All mixed ballots share one inserting transaction, unlike the voters.
            xmins = set((await s.execute(text("SELECT xmin::text FROM poll_ballot"))).scalars())
            assert len(xmins) == 1
            voter_xmins = set((await s.execute(text("SELECT xmin::text FROM poll_voter")))
                              .scalars())
            assert not xmins & voter_xmins
    # "Has voted" still blocks a second vote, and nothing can be changed.
    again = await vote(db, clock, voters[0], poll_id, [4])
    assert again.status == "secret_locked" and "비밀투표" in again.replies[0].text
    async with db.session() as s:
        poll = await store.poll_by_id(s, poll_id)
        assert poll is not None
        await polls.close_poll(s, poll.slug, actor="cli", clock=clock)
    r = await summary(db, poll_id)
    assert r["voters"] == 12 and sum(o["count"] for o in r["overall"]["options"]) == 12


async def test_secret_ballots_below_the_batch_wait_but_are_counted(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    poll_id = await new_poll(db, clock, secret=True, allow_change=True)
    ids = await make_supporters(db, bot_id, clock.now(), 3)
    for sid in ids:
        await vote(db, clock, sid, poll_id, [1])
    assert await polls.mix_ballots(db) == 0  # fewer than MIX_BATCH: not mixed yet
    running = await summary(db, poll_id)
    assert running["hidden_until_close"] and running["voters"] == 3 and "overall" not in running
    async with db.session() as s:
        poll = await store.poll_by_id(s, poll_id)
        assert poll is not None and poll.allow_change is False  # secret forces no change
        await polls.close_poll(s, poll.slug, actor="cli", clock=clock)
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(PollBallot)) == 3
        assert await s.scalar(select(func.count()).select_from(PollBallotPending)) == 0
    assert [o["count"] for o in (await summary(db, poll_id))["overall"]["options"]] == [0, 3, 0]


async def test_answers_change_until_close_unless_forbidden(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    changeable = await new_poll(db, clock)
    fixed = await new_poll(db, clock, allow_change=False)
    [sid] = await make_supporters(db, bot_id, clock.now(), 1, language="en")
    first = await vote(db, clock, sid, changeable, [0])
    assert first.status == "thanks" and "Your answer: 찬성" not in first.replies[0].text
    assert "Your answer: Yes" in first.replies[0].text
    assert first.replies[0].buttons  # the keyboard stays, to change the answer
    assert (await vote(db, clock, sid, changeable, [0])).status == "unchanged"
    changed = await vote(db, clock, sid, changeable, [1])
    assert changed.status == "changed" and "changed to: No" in changed.replies[0].text
    assert (await vote(db, clock, sid, fixed, [2])).status == "thanks"
    locked = await vote(db, clock, sid, fixed, [0])
    assert locked.status == "locked" and "does not allow changes" in locked.replies[0].text
    async with db.session() as s:
        answers = {a.poll_id: a.choices for a in (await s.execute(select(PollAnswer))).scalars()}
        assert answers == {changeable: "1", fixed: "2"}
        assert await s.scalar(select(func.count()).select_from(PollVoter)) == 2
    async with db.session() as s:
        poll = await store.poll_by_id(s, changeable)
        assert poll is not None
        await polls.close_poll(s, poll.slug, actor="cli", clock=clock)
    closed = await vote(db, clock, sid, changeable, [0])
    assert closed.status == "closed" and "closed" in closed.replies[0].text


async def test_eligibility_members_only_and_region(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    members_only = await new_poll(db, clock, eligible_tier="member", secret=True)
    seoul_only = await new_poll(db, clock, eligible_region="seoul")
    [backer] = await make_supporters(db, bot_id, clock.now(), 1, region="busan")
    [member] = await make_supporters(db, bot_id, clock.now(), 1, tier="member", region="seoul",
                                     first_user_id=600_000)
    refused = await vote(db, clock, backer, members_only, [0])
    assert refused.status == "not_eligible" and "당원만" in refused.replies[0].text
    assert (await vote(db, clock, member, members_only, [0])).status == "thanks"
    wrong_region = await vote(db, clock, backer, seoul_only, [0])
    assert wrong_region.status == "not_eligible" and "서울" in wrong_region.replies[0].text
    assert (await vote(db, clock, member, seoul_only, [0])).status == "thanks"
    async with db.session() as s:  # a refused vote leaves no trace, not even "has voted"
        voters = (await s.execute(select(PollVoter.supporter_id))).scalars().all()
    assert voters == [member, member]


async def test_polls_close_at_their_time(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    from datetime import timedelta

    poll_id = await new_poll(db, clock, closes_at=clock.now() + timedelta(hours=1))
    [sid, late] = await make_supporters(db, bot_id, clock.now(), 2)
    assert (await vote(db, clock, sid, poll_id, [0])).status == "thanks"
    clock.advance(hours=1)
    assert (await vote(db, clock, late, poll_id, [0])).status == "closed"  # before the tick
    assert await polls.close_due(db, clock) == [poll_id]
    assert await polls.close_due(db, clock) == []


async def test_multiple_choice_keyboard_toggles_then_submits(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    poll_id = await new_poll(db, clock, kind="multiple",
                             options=[("교통", "Transport"), ("주거", "Housing")])
    await make_supporters(db, bot_id, clock.now(), 1, first_user_id=424242)
    p = Person(bot_id=bot_id, channel="telegram", user_id="424242", chat_id=424242)
    async with db.session() as s:
        poll = await store.poll_by_id(s, poll_id)
        assert poll is not None
        [question] = await polls.ask(s, poll.slug, "ko", clock)
    toggle = question.buttons[0][0].data
    assert toggle == f"vote:{poll_id}:t1" and len(question.buttons) == 2  # no submit yet
    async with db.session() as s:
        [shown] = await polls.vote_button(s, p, str(toggle), clock)
    assert shown.edit and shown.buttons[0][0].text.startswith("☑️")
    submit = shown.buttons[-1][0].data
    assert submit == f"vote:{poll_id}:s1"
    async with db.session() as s:
        [done] = await polls.vote_button(s, p, str(submit), clock)
    assert "교통" in done.text and done.toast
    async with db.session() as s:
        assert (await s.execute(select(PollAnswer.choices))).scalar_one() == "0"
    assert all(len((b.data or "").encode()) < 64 for row in question.buttons for b in row)


async def test_native_poll_answers_map_to_the_supporter_and_poll(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    poll_id = await new_poll(db, clock, native=True, kind="single",
                             options=[("예", "Yes"), ("아니오", "No")])
    [sid] = await make_supporters(db, bot_id, clock.now(), 1, first_user_id=515151)
    async with db.session() as s:
        poll = await store.poll_by_id(s, poll_id)
        assert poll is not None
        spec = polls.native_spec(poll, "en")
        await polls.record_native(s, bot_id=bot_id, telegram_poll_id="5001", poll_id=poll_id,
                                  supporter_id=sid, chat_id=515151, message_id=9, clock=clock)
    assert spec.options == ["Yes", "No"] and not spec.allows_multiple
    voter = Person(bot_id=bot_id, channel="telegram", user_id="515151", chat_id=None)
    stranger = Person(bot_id=bot_id, channel="telegram", user_id="999", chat_id=None)
    async with db.session() as s:
        assert await polls.native_answer(s, voter, "5001", [1], clock) == []
        assert await polls.native_answer(s, stranger, "5001", [0], clock) == []
        assert await polls.native_answer(s, voter, "unknown-poll", [0], clock) == []
    async with db.session() as s:
        answer = (await s.execute(select(PollAnswer))).scalar_one()
        assert (answer.poll_id, answer.supporter_id, answer.choices) == (poll_id, sid, "1")
    async with db.session() as s:  # changed in Telegram, then retracted
        await polls.native_answer(s, voter, "5001", [0], clock)
        assert (await s.execute(select(PollAnswer.choices))).scalar_one() == "0"
        await polls.native_answer(s, voter, "5001", [], clock)
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(PollAnswer)) == 0
        assert await s.scalar(select(func.count()).select_from(PollVoter)) == 0


async def test_voters_get_results_with_their_region_beside_the_nation(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    poll_id = await new_poll(db, clock)
    seoul = await make_supporters(db, bot_id, clock.now(), 2, region="seoul", first_user_id=10)
    busan = await make_supporters(db, bot_id, clock.now(), 3, region="busan", first_user_id=20)
    for sid in seoul:
        await vote(db, clock, sid, poll_id, [0])
    for sid in busan:
        await vote(db, clock, sid, poll_id, [1])
    me = Person(bot_id=bot_id, channel="telegram", user_id="10", chat_id=10)
    async with db.session() as s:
        poll = await store.poll_by_id(s, poll_id)
        assert poll is not None
        slug = poll.slug
        [early] = await polls.results_for(s, me, slug, clock)
    assert "투표가 끝난 뒤" in early.text
    async with db.session() as s:
        await polls.close_poll(s, slug, actor="cli", clock=clock)
    async with db.session() as s:
        [result] = await polls.results_for(s, me, str(poll_id), clock)
    assert "전국 (5명 투표)" in result.text
    assert "찬성: 2표 (40.0%)" in result.text and "반대: 3표 (60.0%)" in result.text
    # Two voters from Seoul: their region's figures would show both choices, so withheld.
    assert "서울 (2명 투표)" not in result.text and "찬성: 2표 (100.0%)" not in result.text
    assert "서울" in result.text


async def test_erasure_unlinks_answers_and_keeps_tallies(db: Database) -> None:
    clock = FixedClock()
    bot_id = await setup(db, clock)
    open_poll = await new_poll(db, clock)
    secret_poll = await new_poll(db, clock, secret=True)
    [sid] = await make_supporters(db, bot_id, clock.now(), 1)
    await vote(db, clock, sid, open_poll, [2])
    await vote(db, clock, sid, secret_poll, [0])
    async with db.session() as s:
        exported = await store.export_supporter(s, sid)
    assert exported["poll_answers"][0]["choices"] == [2]
    assert len(exported["secret_ballots_cast"]) == 1  # that they voted; the choice is unknown
    async with db.session() as s:
        for eraser in privacy.erasers():
            await eraser(s, sid)
    async with db.session() as s:
        assert (await s.execute(select(PollAnswer.supporter_id))).scalar_one() is None
        assert set((await s.execute(select(PollVoter.supporter_id))).scalars()) == {None}
        assert await store.export_supporter(s, sid) == {"poll_answers": [],
                                                        "secret_ballots_cast": []}
    assert [o["count"] for o in (await summary(db, open_poll))["overall"]["options"]] == [0, 0, 1]
    assert (await summary(db, secret_poll))["voters"] == 1  # (results hidden until close)
