from tests.test_dashboard import *
async def test_dbg(sqlite_db, clock):
    db = sqlite_db
    bot_id = await _world(db, clock)
    members = await make_supporters(db, bot_id, NOW, 2, region="daegu", tier="member", first_user_id=700_000)
    async with db.session() as s:
        poll = await polls.create_poll(s, campaign_slug="air", slug="rules", question_ko="규칙 변경?", kind="yes_no_abstain", weights="member=1,supporter=1/2", secret=True, clock=clock, actor="cli")
        for sid in members:
            o = await polls.vote(s, await s.get_one(Supporter, sid), poll.id, [0], clock)
            print(o.status)
    async with db.session() as s:
        p = await polls.store.poll_by_slug(s, "rules")
        r = await polls.results(s, p)
        print(r.overall, await polls.store.tally_groups(s, p))
    assert 0
