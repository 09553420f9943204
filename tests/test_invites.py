"""Issue 13: invite links through consent, ?src= from a poster into the report, /interests as
tags, the leaderboard opt-in and /forget, through the real PTB Application and sandbox."""

from __future__ import annotations

import re

from sqlalchemy import select

from campaigns import audience, chapters, intents, interests, invites, petitions, signup
from campaigns.clock import FixedClock, SystemClock
from campaigns.settings import Settings
from storage import supporters as supporter_store
from storage.db import Database
from storage.models import AuditLog, EventRsvp, Invite, Referral, Signature, Supporter
from tests.builders import dump_all, find_anywhere, make_bot, make_event, make_supporters
from tests.dashboard_helpers import (
    cheap_password_hashes,  # noqa: F401  (autouse)
    make_organiser,
    sign_in,
)
from tests.telegram_env import Dialog, press, telegram_env
from tests.test_dashboard import NOW, SECRET, client_for
from tests.test_petitions_cli import ok
from web.app import create_app


async def _join(d: Dialog, start: str, region: str = "서울") -> None:
    """The whole sign-up from a /start, keeping the name Telegram gave."""
    await d.run([(start, "동의하시겠습니까"), (press("✅ 동의합니다"), "어느 지역"),
                 (press(region), "사시나요"), (press("건너뛰기"), "이름"),
                 (press("이 이름으로 할게요"), "가입이 끝났습니다")])


async def _code(d: Dialog) -> str:
    card = await d.step("/invite", "이 링크로 가입한 사람")
    match = re.search(r"\?start=ref_([a-z0-9]{10})\b", card.text or "")
    assert match, card.text
    return match.group(1)


async def _supporter(db: Database, name: str) -> Supporter:
    async with db.session() as s:
        return (await s.execute(select(Supporter).where(Supporter.display_name == name))
                ).scalar_one()


async def test_invite_link_attribution_through_consent(db: Database) -> None:
    async with telegram_env(db) as env:
        inviter = env.dialog(7001, "하나")
        await _join(inviter, "/start")
        code = await _code(inviter)
        await inviter.step("/invite", "이 링크로 가입한 사람: 0명")

        # A new person opens the link and agrees: the inviter's count goes up.
        friend = env.dialog(7002, "두리")
        await _join(friend, f"/start ref_{code}")
        await inviter.step("/invite", "이 링크로 가입한 사람: 1명")

        # Someone who declines leaves no row at all, and counts for nobody.
        before = await dump_all(db)
        shy = env.dialog(7003, "세나", username="sena_7003")
        await shy.run([(f"/start ref_{code}", "동의하시겠습니까"),
                       (press("동의하지 않음"), "아무 정보도 저장하지 않았습니다")])
        assert await dump_all(db) == before
        assert await find_anywhere(db, ["7003", "세나", "sena_7003"]) == []

        # Someone already signed up who opens the link is nobody's invitee either.
        await friend.step(f"/start ref_{code}", "다시 오셨네요")
        await inviter.step("/invite", "이 링크로 가입한 사람: 1명")
        hana, duri = await _supporter(db, "하나"), await _supporter(db, "두리")
        async with db.session() as s:
            referrals = (await s.execute(select(Referral.supporter_id, Referral.referrer_id))
                         ).all()
        assert referrals == [(duri.id, hana.id)]
        assert (hana.source_ref, duri.source_ref) == (None, invites.INVITE_SOURCE)


async def test_leaderboard_names_only_who_opted_in_per_chapter(db: Database) -> None:
    clock = SystemClock()
    async with telegram_env(db) as env:
        inviter = env.dialog(7101, "하나")
        await _join(inviter, "/start")
        code = await _code(inviter)
        for n, user in enumerate((7102, 7103)):
            await _join(env.dialog(user, f"친구{n}"), f"/start ref_{code}", region="부산")
        async with db.session() as s:
            board = await invites.leaderboard(s, chapters.NATIONAL)
        assert [(r["name"], r["joined"]) for r in board["inviters"]] == [(None, 2)]

        await inviter.step(press("🏆 순위표에 내 이름 보이기"), "순위표에 내 이름: 보임")
        async with db.session() as s:
            await chapters.create(s, clock, name="seoul", regions=["서울"])
            await chapters.create(s, clock, name="busan", regions=["부산"])
        async with db.session() as s:
            national = await invites.leaderboard(s, chapters.NATIONAL)
            seoul = await invites.leaderboard(s, chapters.NATIONAL, "seoul")
            busan = await invites.leaderboard(s, chapters.NATIONAL, "busan")
        assert [(r["name"], r["joined"]) for r in national["inviters"]] == [("하나", 2)]
        assert [r["name"] for r in seoul["inviters"]] == ["하나"] and busan["inviters"] == []

        # A Busan organiser sees Busan's board only; Seoul's is refused.
        busan_scope = chapters.Scope(national=False, regions=frozenset({"busan"}),
                                     chapters=("busan",))
        async with db.session() as s:
            assert (await invites.leaderboard(s, busan_scope))["inviters"] == []
            try:
                await invites.leaderboard(s, busan_scope, "seoul")
                raise AssertionError("a scoped organiser saw another chapter's board")
            except chapters.OutOfScope:
                pass

        await inviter.step(press("🙈 순위표에서 내 이름 숨기기"), "순위표에 내 이름: 숨김")
        shown = await ok(db, "report", "invites")
        assert [(r["name"], r["joined"]) for r in shown["inviters"]] == [(None, 2)]


async def test_src_from_a_poster_survives_into_the_deep_link_and_the_report(
    db: Database,
) -> None:
    clock = SystemClock()
    async with telegram_env(db) as env:
        async with db.session() as s:
            await petitions.create_campaign(s, slug="air", title_ko="맑은 공기", clock=clock,
                                            actor="cli")
            await petitions.create_petition(s, campaign_slug="air", slug="clean-air",
                                            title_ko="미세먼지 대책", clock=clock, actor="cli")
            await petitions.open_petition(s, "clean-air", actor="cli", clock=clock)
        app = create_app(Settings(secret_key=SECRET), db, clock=clock)
        async with client_for(app) as web:
            poster = await web.get("/p/clean-air/poster?src=Rally1203")
            page = await web.get("/p/clean-air?src=bad_src!")
        link = re.search(r"\?start=(sign_clean-air__src_rally1203)<", poster.text)
        assert link, poster.text
        assert "start=sign_clean-air\"" in page.text  # a bad source is ignored, not refused

        # A new person scans it: the source rides through consent into sign-up and signature.
        d = env.dialog(7201, "민수")
        await _join(d, f"/start {link.group(1)}")
        await d.expect("서명하셨습니다", 0)
        newcomer = await _supporter(db, "민수")
        assert newcomer.source_ref == "rally1203"

        # Five more came from the rally earlier and signed; one old supporter signs through
        # another poster, which is what their signature records.
        rally = await make_supporters(db, env.bot_id, clock.now(), 5, source_ref="rally1203")
        async with db.session() as s:
            for sid in rally:
                await petitions.sign(s, await s.get_one(Supporter, sid), "clean-air", clock)
        (old,) = await make_supporters(db, env.bot_id, clock.now(), 1, source_ref="flyer",
                                       first_user_id=7300)
        await env.dialog(7300, "s7300").step("/start sign_clean-air__src_poster2",
                                             "서명하셨습니다")
        async with db.session() as s:
            refs = {sid: ref for sid, ref in (await s.execute(
                select(Signature.supporter_id, Signature.source_ref))).all()}
        assert refs[newcomer.id] == "rally1203" and refs[old] == "poster2"
        # An event poster's link works the same way for an RSVP.
        await make_event(db, clock)  # type: ignore[arg-type]
        await env.dialog(7300, "s7300").step("/start event_screening__src_poster2",
                                             "참석 신청이 완료되었습니다")
        async with db.session() as s:
            assert (await s.execute(select(EventRsvp.source_ref))).scalar_one() == "poster2"

    report = await ok(db, "report", "sources", "--campaign", "air")
    totals = {r["source"]: r for r in report["sources"]}
    assert (totals["rally1203"]["signups"], totals["rally1203"]["signatures"]) == (6, 6)
    # One person is fewer than five: withheld, never shown as a number.
    assert totals["poster2"]["signatures"] is None and totals["flyer"]["signups"] is None
    assert totals["poster2"]["rsvps"] == 0  # the event is another campaign's
    everything = {r["source"]: r for r in (await ok(db, "report", "sources"))["sources"]}
    assert everything["poster2"]["rsvps"] is None  # one RSVP: withheld
    (day,) = [r for r in report["days"] if r["source"] == "rally1203"]
    assert day["signups"] == 6 and day["rsvps"] == 0


async def test_interests_become_tags_that_audiences_count(db: Database) -> None:
    clock = SystemClock()
    async with telegram_env(db) as env:
        shown = await ok(db, "chapter", "interests", "--set", "환경, 교육,환경")
        assert shown == {"chapter": None, "interests": ["환경", "교육"]}
        async with db.session() as s:
            await chapters.create(s, clock, name="busan", regions=["부산"])
            await interests.set_list(s, clock, chapter="busan", names=["해양"])
        d = env.dialog(7401, "하나")
        await _join(d, "/start")
        await d.step("/interests", "내 관심사")
        await d.step(press("▫️ 환경"), "내 관심사")
        with_tag = {"tags": ["환경"]}
        async with db.session() as s:
            assert await audience.size(s, env.bot_id, with_tag) == 1
            me = await _supporter(db, "하나")
            assert await supporter_store.tags(s, me.id) == ["환경"]
        # Busan's list is not offered in Seoul: its button is not there.
        labels = [b for m in d.user.chat.bot_messages[-1:] for b in m.button_texts]
        assert "▫️ 해양" not in labels and "✅ 환경" in labels
        await d.step(press("✅ 환경"), "내 관심사")
        async with db.session() as s:
            assert await audience.size(s, env.bot_id, with_tag) == 0
        await d.step("/help", "/interests")


async def test_forget_removes_codes_and_links_but_keeps_the_count(db: Database) -> None:
    async with telegram_env(db) as env:
        inviter = env.dialog(7501, "하나")
        await _join(inviter, "/start")
        code = await _code(inviter)
        friend = env.dialog(7502, "두리")
        await _join(friend, f"/start ref_{code}")
        await friend.run([("/forget", "삭제할까요"), (press("네, 삭제합니다"), "삭제했습니다")])
        async with db.session() as s:
            assert (await s.execute(select(Referral))).first() is None
        await inviter.step("/invite", "이 링크로 가입한 사람: 1명")  # the count stays

        await inviter.run([("/forget", "삭제할까요"), (press("네, 삭제합니다"), "삭제했습니다")])
        async with db.session() as s:
            assert (await s.execute(select(Invite))).first() is None
        # The erased person's old link still signs people up, and credits nobody.
        late = env.dialog(7503, "세나")
        await _join(late, f"/start ref_{code}")
        assert (await _supporter(db, "세나")).source_ref == invites.INVITE_SOURCE
        async with db.session() as s:
            assert (await s.execute(select(Referral))).first() is None
        assert await find_anywhere(db, [code]) == []


def test_payloads_keep_old_links_and_fit_the_consent_button() -> None:
    p = intents.parse_start_payload("sign_clean-air__src_Rally-1__ref_abcdefghjk")
    assert (p.intent, p.source_ref, p.invite) == ("sign:clean-air", "rally-1", "abcdefghjk")
    old = intents.parse_start_payload("ref_poster12")
    assert (old.intent, old.source_ref, old.invite) == (None, None, "poster12")
    assert intents.with_source("sign_clean-air", "rally") == "sign_clean-air__src_rally"
    assert intents.with_source("sign_" + "a" * 40, "a-long-rally-code") == "sign_" + "a" * 40
    long = intents.StartPayload(intent="sign:" + "b" * 40, source_ref="rally", invite="c" * 10)
    data = next(b.data for row in signup.consent_request("ko", long).buttons for b in row)
    # The invite does not fit beside the intent; the (shorter) source does.
    assert data == f"c:y:ko:sign_{'b' * 40}__src_rally" and len(data.encode()) <= 64


async def test_dashboard_sources_page_and_interest_lists(db: Database) -> None:
    clock = FixedClock(NOW)
    bot_id = await make_bot(db, NOW)
    await make_supporters(db, bot_id, NOW, 5, source_ref="rally1203")
    await make_supporters(db, bot_id, NOW, 2, source_ref="flyer", first_user_id=600_000)
    await make_organiser(db, NOW, "minji")
    busan_organiser = await make_organiser(db, NOW, "busan-lead")
    async with db.session() as s:
        await chapters.create(s, clock, name="busan", regions=["부산"])
        await chapters.assign(s, clock, chapter="busan", organiser=str(busan_organiser))
    async with client_for(create_app(Settings(secret_key=SECRET), db, clock=clock)) as web:
        csrf = await sign_in(web, "minji")
        page = await web.get("/sources")
        assert page.status_code == 200
        totals = page.text.split('id="source-totals"')[1].split("</table>")[0]
        assert "rally1203</td><td class=\"num\">5<" in totals
        assert "flyer</td><td class=\"num\">&lt;5<" in totals  # 2 people: withheld
        saved = await web.post("/sources/interests", data={
            "csrf": csrf, "chapter": "busan", "interests": "해양, 어업"})
        assert saved.status_code == 303
        refused = await web.post("/sources/interests", data={
            "csrf": csrf, "chapter": "busan", "interests": "a=b"})
        assert "error=" in refused.headers["location"]

    async with client_for(create_app(Settings(secret_key=SECRET), db, clock=clock)) as web:
        csrf = await sign_in(web, "busan-lead")
        # Busan's organiser counts Busan only (the seeded people live in Seoul) ...
        page = await web.get("/sources")
        assert "rally1203</td>" not in page.text and "해양, 어업" in page.text
        # ... may not see Seoul's leaderboard (refused and audited) ...
        async with db.session() as s:
            await chapters.create(s, clock, name="seoul", regions=["서울"])
        assert (await web.get("/sources?chapter=seoul")).status_code == 403
        async with db.session() as s:
            audited = (await s.execute(select(AuditLog.target).where(
                AuditLog.action == "scope.refused"))).scalars().all()
        assert audited == ["leaderboard"]
        # ... and may not change everyone's list.
        other = await web.post("/sources/interests", data={
            "csrf": csrf, "chapter": "", "interests": "환경"})
        assert other.status_code == 403
    async with db.session() as s:
        assert (await interests.show(s, "busan"))["interests"] == ["해양", "어업"]
        assert (await interests.show(s, None))["interests"] == []


async def test_a_poster_link_opened_mid_sign_up_counts_for_what_it_brought(
    db: Database,
) -> None:
    clock = SystemClock()
    async with telegram_env(db) as env:
        async with db.session() as s:
            await petitions.create_campaign(s, slug="air", title_ko="맑은 공기", clock=clock,
                                            actor="cli")
            await petitions.create_petition(s, campaign_slug="air", slug="clean-air",
                                            title_ko="미세먼지 대책", clock=clock, actor="cli")
            await petitions.open_petition(s, "clean-air", actor="cli", clock=clock)
        # Came through a flyer, agreed, and stopped at the region question ...
        d = env.dialog(7601, "유나")
        await d.run([("/start src_flyer", "동의하시겠습니까"),
                     (press("✅ 동의합니다"), "어느 지역")])
        # ... then scanned a rally poster: the sign-up goes on, and the signature made at
        # its end is the poster's, while the person's first source stays the flyer.
        await d.step("/start sign_clean-air__src_rally1203", "어느 지역")
        await d.run([(press("서울"), "사시나요"), (press("건너뛰기"), "이름"),
                     (press("이 이름으로 할게요"), "가입이 끝났습니다")])
        await d.expect("서명하셨습니다", 0)
    yuna = await _supporter(db, "유나")
    async with db.session() as s:
        signed = (await s.execute(select(Signature.source_ref)
                                  .where(Signature.supporter_id == yuna.id))).scalar_one()
    assert (yuna.source_ref, signed, yuna.pending_intent) == ("flyer", "rally1203", None)


async def test_an_interest_taken_off_the_list_can_still_be_dropped(db: Database) -> None:
    clock = SystemClock()
    async with telegram_env(db) as env:
        async with db.session() as s:
            await interests.set_list(s, clock, chapter=None, names=["환경", "교육"])
        d = env.dialog(7701, "하나")
        await _join(d, "/start")
        await d.step("/interests", "내 관심사")
        await d.step(press("▫️ 교육"), "내 관심사")
        me = await _supporter(db, "하나")
        async with db.session() as s:
            # Taken off the list, 교육 stays on them (an import may have set it too).
            await interests.set_list(s, clock, chapter=None, names=["환경"])
            assert await supporter_store.tags(s, me.id) == ["교육"]
            assert (await interests.show(s, None))["interests"] == ["환경"]
        menu = await d.step("/interests", "내 관심사")
        assert menu.button_texts == ["▫️ 환경", "✅ 교육 (이제 목록에 없음)"]
        dropped = await d.step(press("✅ 교육 (이제 목록에 없음)"), "내 관심사")
        assert dropped.button_texts == ["▫️ 환경"]
        async with db.session() as s:
            assert await supporter_store.tags(s, me.id) == []
            # Listed again, it is offered again (and choosing it works as before).
            await interests.set_list(s, clock, chapter=None, names=["환경", "교육"])
        await d.step("/interests", "내 관심사")
        again = await d.step(press("▫️ 교육"), "내 관심사")
        assert again.button_texts == ["▫️ 환경", "✅ 교육"]
