"""Importing and exporting supporter lists (CSV), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from sqlalchemy import func, select, text

from campaigns import importer
from campaigns.clock import FixedClock
from storage import bots
from storage import supporters as store
from storage.db import Database
from storage.models import AuditLog, ChannelIdentity, Consent, Supporter, SupporterTag

HEADER = "telegram_id,name,language,region,tier,tags,consent\n"
GOOD = HEADER + (
    "1001,김민수,ko,서울,,volunteer;donor,yes\n"
    "1002,Jane Doe,en,Busan,member,,YES\n"
    "1003,박지영,,경기도,supporter,volunteer,예\n"
    "1004,,en-US,abroad,,,yes\n"
    "1005,No Region,ko,,,,yes\n"
)


async def _bot(db: Database, name: str = "default") -> int:
    async with db.session() as s:
        bot = await bots.ensure_bot(s, channel="telegram", name=name, now=FixedClock().now())
        return bot.id


async def _import(db: Database, bot_id: int, text: str, **kwargs: Any) -> importer.ImportResult:
    # As the CLI and the dashboard do it: the import's transaction, then the statistics.
    async with db.session() as s:
        result = await importer.import_supporters(s, bot_id, text, FixedClock(), **kwargs)
    await importer.after_import(db, result)
    return result


async def _count(db: Database, model: Any) -> int:
    async with db.session() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def test_a_valid_list_is_imported_with_identity_consent_and_tags(db: Database) -> None:
    bot_id = await _bot(db)
    seen: list[tuple[int, int]] = []
    result = await _import(db, bot_id, GOOD, progress=lambda d, n: seen.append((d, n)))
    assert (result.rows, result.imported, result.skipped, result.problems) == (5, 5, 0, [])
    assert seen[-1] == (5, 5)
    now = FixedClock().now()
    async with db.session() as s:
        rows = (await s.execute(
            select(Supporter, ChannelIdentity)
            .join(ChannelIdentity, ChannelIdentity.supporter_id == Supporter.id)
            .order_by(ChannelIdentity.external_user_id)
        )).all()
        consents = (await s.execute(select(Consent))).scalars().all()
        tags = (await s.execute(select(SupporterTag.supporter_id, SupporterTag.tag))).all()
        audit = (await s.execute(select(AuditLog))).scalar_one()
    people = [(i.external_user_id, s.display_name, s.language, s.region, s.tier)
              for s, i in rows]
    assert people == [
        ("1001", "김민수", "ko", "seoul", "supporter"),
        ("1002", "Jane Doe", "en", "busan", "member"),
        ("1003", "박지영", "ko", "gyeonggi", "supporter"),
        ("1004", None, "en", "abroad", "supporter"),
        ("1005", "No Region", "ko", None, "supporter"),
    ]
    for supporter, identity in rows:
        assert supporter.bot_id == bot_id and supporter.status == "active"
        assert supporter.consented_at == now and supporter.created_at == now
        assert identity.chat_id == int(identity.external_user_id)
        assert identity.channel == "telegram" and identity.reachable and identity.bot_id == bot_id
    assert {(c.purpose, c.notice_version, c.choice, c.channel) for c in consents} == {
        ("campaign_updates", "import", "granted", "import")
    }
    assert sorted(c.supporter_id for c in consents) == sorted(s.id for s, _ in rows)
    by_id = {s.id: i.external_user_id for s, i in rows}
    assert sorted((by_id[sid], tag) for sid, tag in tags) == [
        ("1001", "donor"), ("1001", "volunteer"), ("1003", "volunteer")
    ]
    assert (audit.action, audit.details) == ("supporters.imported",
                                              {"imported": 5, "skipped": 0})


BAD = HEADER + (
    "2001,Good One,ko,seoul,,,yes\n"         # line 2: fine
    "2002,No Consent,ko,seoul,,,no\n"        # 3
    "2003,Mars,ko,화성,,,yes\n"               # 4
    "abc,Bad Id,ko,seoul,,,yes\n"            # 5
    "-7,Negative,ko,seoul,,,yes\n"           # 6
    "2004,French,fr,seoul,,,yes\n"           # 7
    "2005,Boss,ko,seoul,boss,,yes\n"         # 8
    "2001,Again,ko,seoul,,,yes\n"            # 9: duplicate of line 2
    "2006,Short,ko\n"                        # 10
    "1.23E+09,Excel,ko,seoul,,,yes\n"        # 11
)


def _reasons(result: importer.ImportResult) -> list[tuple[int, str]]:
    return [(p.line, p.code) for p in result.problems]


async def test_every_invalid_row_is_reported_and_nothing_imported(db: Database) -> None:
    bot_id = await _bot(db)
    result = await _import(db, bot_id, BAD)
    assert result.aborted and result.imported == 0
    assert _reasons(result) == [
        (3, "no_consent"), (4, "bad_region"), (5, "bad_id"), (6, "bad_id"),
        (7, "bad_language"), (8, "bad_tier"), (9, "duplicate"), (10, "field_count"),
        (11, "bad_id"),
    ]
    texts = {p.line: p.text("en") for p in result.problems}
    assert texts[4] == "Unknown region “화성”."
    assert texts[9] == "Duplicate of line 2: the same Telegram id."
    assert "“no”" in texts[3]
    assert await _count(db, Supporter) == 0 and await _count(db, Consent) == 0


async def test_reasons_are_translated(sqlite_db: Database) -> None:
    bot_id = await _bot(sqlite_db)
    result = await _import(sqlite_db, bot_id, BAD)
    korean = {p.line: p.text("ko") for p in result.problems}
    assert korean[4] == "알 수 없는 지역 “화성”."
    assert korean[9] == "2번째 줄과 중복: 같은 텔레그램 ID입니다."


async def test_skip_invalid_imports_the_valid_rows(db: Database) -> None:
    bot_id = await _bot(db)
    result = await _import(db, bot_id, BAD, skip_invalid=True)
    assert (result.imported, result.skipped, result.aborted) == (1, 9, False)
    async with db.session() as s:
        ids = (await s.execute(select(ChannelIdentity.external_user_id))).scalars().all()
    assert ids == ["2001"]


async def test_reimporting_the_same_file_creates_nobody_twice(db: Database) -> None:
    bot_id = await _bot(db)
    assert (await _import(db, bot_id, GOOD)).imported == 5
    again = await _import(db, bot_id, GOOD)
    assert again.aborted and {p.code for p in again.problems} == {"already_stored"}
    assert [p.line for p in again.problems] == [2, 3, 4, 5, 6]
    skipping = await _import(db, bot_id, GOOD, skip_invalid=True)
    assert (skipping.imported, skipping.skipped) == (0, 5)
    assert await _count(db, Supporter) == 5 and await _count(db, ChannelIdentity) == 5


async def test_someone_who_signed_up_in_the_bot_is_not_imported_again(db: Database) -> None:
    bot_id = await _bot(db)
    other_bot = await _bot(db, "chapter")
    async with db.session() as s:
        await store.create(s, bot_id=bot_id, channel="telegram", external_user_id="1002",
                           chat_id=1002, username=None, display_name="Jane", language="en",
                           source_ref=None, pending_intent=None, now=FixedClock().now())
    result = await _import(db, bot_id, GOOD, skip_invalid=True)
    assert result.imported == 4 and _reasons(result) == [(3, "already_stored")]
    # Another bot has its own supporters: the same person can be imported there.
    assert (await _import(db, other_bot, GOOD)).imported == 5


async def test_a_file_without_the_columns_is_refused(sqlite_db: Database) -> None:
    bot_id = await _bot(sqlite_db)
    result = await _import(sqlite_db, bot_id, "id,name\n1,a\n", skip_invalid=True)
    assert result.aborted and {p.code for p in result.problems} == {"missing_column"}
    assert (await _import(sqlite_db, bot_id, "", skip_invalid=True)).problems[0].code == (
        "no_header")


async def test_columns_in_any_order_quoted_lines_and_spreadsheet_leftovers(
    sqlite_db: Database,
) -> None:
    bot_id = await _bot(sqlite_db)
    text = (
        "Consent,Tags,Tier,Region,Language,Name,Telegram_ID,notes\r\n"
        'yes,"a, b",,seoul,ko,"Kim\nSecond line",3001,anything\r\n'
        "\r\n"
        "yes,,,seoul,ko,Lee,3002,x,,\r\n"
        "no,,,seoul,ko,Park,3003,x\r\n"
    )
    result = await _import(sqlite_db, bot_id, text)
    # The quoted name spans lines 2-3, so the next rows are on lines 5 and 6.
    assert _reasons(result) == [(6, "no_consent")]
    result = await _import(sqlite_db, bot_id, text, skip_invalid=True)
    assert result.imported == 2
    async with sqlite_db.session() as s:
        names = (await s.execute(select(Supporter.display_name).order_by(Supporter.id))).all()
        tags = (await s.execute(select(SupporterTag.tag).order_by(SupporterTag.tag))).all()
    assert [n for (n,) in names] == ["Kim Second line", "Lee"]
    assert [t for (t,) in tags] == ["a", "b"]


def test_excel_files_in_cp949_and_with_a_bom_are_read() -> None:
    assert importer.decode(GOOD.encode("cp949")) == GOOD
    assert importer.decode(b"\xef\xbb\xbf" + GOOD.encode()) == GOOD
    with pytest.raises(importer.UnreadableFile):
        importer.decode(b"\xff\xfe\x00\xd8\xff")


async def test_dry_run_checks_without_importing(sqlite_db: Database) -> None:
    bot_id = await _bot(sqlite_db)
    result = await _import(sqlite_db, bot_id, GOOD, dry_run=True)
    assert (result.rows, result.imported, result.aborted) == (5, 0, False)
    assert await _count(sqlite_db, Supporter) == 0


async def _export(db: Database, bot_id: int, fmt: str) -> str:
    out = io.StringIO()
    async with db.session() as s:
        await importer.export_supporters(s, bot_id, out, FixedClock(), fmt=fmt)
    return out.getvalue()


async def test_export_leaves_out_erased_people_and_marks_stopped_ones(db: Database) -> None:
    bot_id = await _bot(db)
    await _import(db, bot_id, GOOD)
    async with db.session() as s:
        by_ext = dict((await s.execute(
            select(ChannelIdentity.external_user_id, ChannelIdentity.supporter_id))).all())
        await store.erase_core(s, by_ext["1001"])
        stopped = await s.get(Supporter, by_ext["1002"])
        assert stopped is not None
        stopped.status = "stopped"
    rows = list(csv.DictReader(io.StringIO(await _export(db, bot_id, "csv"))))
    assert [r["telegram_id"] for r in rows] == ["1002", "1003", "1004", "1005"]
    assert "김민수" not in await _export(db, bot_id, "csv")
    assert (rows[0]["consent"], rows[0]["status"]) == ("no", "stopped")
    assert (rows[1]["name"], rows[1]["region"], rows[1]["tags"], rows[1]["consent"]) == (
        "박지영", "gyeonggi", "volunteer", "yes")
    records = json.loads(await _export(db, bot_id, "json"))
    assert [r["telegram_id"] for r in records] == [1002, 1003, 1004, 1005]
    assert records[1]["tags"] == ["volunteer"]


async def test_an_export_imports_into_another_bot_as_it_was(db: Database) -> None:
    bot_id = await _bot(db)
    hostile = HEADER + '4001,"=HYPERLINK(""http://x"")",ko,seoul,,-tag;ok,yes\n'
    assert (await _import(db, bot_id, GOOD + hostile.removeprefix(HEADER))).imported == 6
    exported = await _export(db, bot_id, "csv")
    # A spreadsheet must not run a supporter's name as a formula.
    assert "'=HYPERLINK" in exported and ",'-tag;ok," in exported
    copy = await _bot(db, "copy")
    assert (await _import(db, copy, exported)).imported == 6
    assert await _export(db, copy, "csv") == exported


async def test_after_a_large_import_the_signing_lookup_uses_the_identity_index(
    db: Database,
) -> None:
    # An organiser imports a list and opens a petition to it at once: the per-message
    # identity lookup must not scan every identity of the bot because the planner still
    # believes the tables are empty (it did: 17 ms per batch at 80,000 supporters).
    bot_id = await _bot(db)
    rows = "".join(f"{7_000_000 + i},P{i},ko,seoul,,,yes\n" for i in range(5000))
    assert (await _import(db, bot_id, HEADER + rows)).imported == 5000
    wanted = ["7000001", "7000002", "7004999"]
    async with db.session() as s:
        found = await store.find_briefs(s, bot_id, "telegram", wanted)
        assert sorted(found) == wanted
        query = select(ChannelIdentity.supporter_id).where(
            ChannelIdentity.bot_id == bot_id, ChannelIdentity.channel == "telegram",
            ChannelIdentity.external_user_id.in_(wanted))
        compiled = query.compile(s.get_bind(), compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN" if db.is_postgres else "EXPLAIN QUERY PLAN"
        plan = "\n".join(str(r[-1]) for r in await s.execute(text(f"{explain} {compiled}")))
    if db.is_postgres:
        index_cond = [line for line in plan.splitlines() if "Index Cond" in line]
        assert index_cond and "external_user_id" in index_cond[0], plan
    else:
        assert "USING INDEX" in plan and "external_user_id" in plan, plan


def test_every_csv_we_write_quotes_formula_cells_alike() -> None:
    # One rule (OWASP's = + - @ tab CR) for the supporter export and the dashboard tables,
    # and an exported cell imports back unchanged.
    from campaigns.text import quote_formula, unquote_formula

    for cell in ("=1+1", "+82 10", "-tag", "@SUM(A1)", "\tx", "\rx"):
        assert quote_formula(cell) == "'" + cell
        assert unquote_formula(quote_formula(cell)) == cell
    assert quote_formula("민지") == "민지"


@pytest.mark.parametrize("skip_checks", [True, False])
async def test_the_copy_import_gives_the_same_rows_with_or_without_row_by_row_key_checks(
    db: Database, monkeypatch: pytest.MonkeyPatch, skip_checks: bool,
) -> None:
    # PostgreSQL's import skips the per-row foreign-key triggers only where the role
    # may; a role that may not (most hosted databases) takes the checked path. Both
    # write the same rows, and neither leaves the session's trigger mode changed.
    from storage import importer as import_store

    monkeypatch.setattr(import_store, "SKIP_FK_CHECKS", skip_checks)
    bot_id = await _bot(db)
    result = await _import(db, bot_id, GOOD)
    assert result.imported == 5
    assert [await _count(db, m) for m in (Supporter, ChannelIdentity, Consent, SupporterTag)] == [
        5, 5, 5, 3]
    if db.is_postgres:
        async with db.session() as s:
            result = await importer.import_supporters(
                s, bot_id, HEADER + "2001,Late,ko,,,press,yes\n", FixedClock())
            assert result.imported == 1
            mode = await s.scalar(text("SHOW session_replication_role"))
            assert mode == "origin"
            # A row pointing at no supporter is still refused afterwards in this transaction.
            with pytest.raises(Exception, match="foreign key"):
                await s.execute(text(
                    "INSERT INTO supporter_tag (supporter_id, tag) VALUES (999999, 'x')"))


def test_a_repeated_bad_cell_is_reported_on_every_line_it_is_on() -> None:
    # Each distinct region, language and tags cell is read once per file: a bad one
    # must still be reported on each line, and a good one give every line its value.
    rows = "".join(f"{2000 + i},사람 {i},{'xx' if i % 2 else 'ko'},"
                   f"{'화성' if i % 3 == 0 else '서울'},,{'a;b' if i % 2 else 'b;a'},yes\n"
                   for i in range(12))
    parsed = importer.parse(HEADER + rows)
    bad = sorted((p.line, p.code) for p in parsed.problems)
    assert [line for line, code in bad if code == "bad_language"] == [3, 5, 7, 9, 11, 13]
    assert [line for line, code in bad if code == "bad_region"] == [2, 5, 8, 11]
    assert [(r.line, r.region, r.tags) for r in parsed.rows] == [
        (4, "seoul", ("b", "a")), (6, "seoul", ("b", "a")), (10, "seoul", ("b", "a")),
        (12, "seoul", ("b", "a"))]


async def test_a_list_in_several_chunks_links_each_person_to_their_own_rows(
    db: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The rows go in chunks (a COPY each on PostgreSQL, the tuples as they are): each
    # supporter gets their own identity, district and tags, whatever chunk they are in.
    from storage import importer as import_store

    monkeypatch.setattr(import_store, "IMPORT_CHUNK", 2)
    bot_id = await _bot(db)
    result = await _import(db, bot_id, GOOD + "1006,고양 사람,ko,경기 고양시,member,press,yes\n")
    assert result.imported == 6
    async with db.session() as s:
        rows = (await s.execute(
            select(ChannelIdentity.external_user_id, ChannelIdentity.chat_id,
                   Supporter.display_name, Supporter.region, Supporter.district, Supporter.tier)
            .join(Supporter, Supporter.id == ChannelIdentity.supporter_id)
            .order_by(ChannelIdentity.external_user_id))).all()
        tags = {(sid, tag) for sid, tag in (await s.execute(
            select(ChannelIdentity.external_user_id, SupporterTag.tag)
            .join(SupporterTag, SupporterTag.supporter_id == ChannelIdentity.supporter_id)))}
        consents = (await s.execute(select(func.count(func.distinct(Consent.supporter_id))))
                    ).scalar_one()
    assert [tuple(r) for r in rows] == [
        ("1001", 1001, "김민수", "seoul", None, "supporter"),
        ("1002", 1002, "Jane Doe", "busan", None, "member"),
        ("1003", 1003, "박지영", "gyeonggi", None, "supporter"),
        ("1004", 1004, None, "abroad", None, "supporter"),
        ("1005", 1005, "No Region", None, None, "supporter"),
        ("1006", 1006, "고양 사람", "gyeonggi", "goyang", "member"),
    ]
    assert tags == {("1001", "volunteer"), ("1001", "donor"), ("1003", "volunteer"),
                    ("1006", "press")}
    assert consents == 6


async def test_a_problem_late_in_a_long_list_still_imports_nobody(
    db: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A first list is inserted while it is still being read; the chunks inserted before
    # the bad line turns up are taken back, and every problem is still reported.
    from storage import importer as import_store

    monkeypatch.setattr(import_store, "IMPORT_CHUNK", 2)
    bot_id = await _bot(db)
    seen: list[tuple[int, int]] = []
    text = GOOD + "1006,Late,ko,nowhere,,,yes\n1007,Dup,ko,,,,yes\n1007,Dup,ko,,,,yes\n"
    result = await _import(db, bot_id, text, progress=lambda d, n: seen.append((d, n)))
    assert (result.rows, result.imported, result.skipped, result.aborted) == (8, 0, 0, True)
    assert [(p.line, p.code) for p in result.problems] == [(7, "bad_region"), (9, "duplicate")]
    assert [await _count(db, m) for m in (Supporter, ChannelIdentity, Consent, SupporterTag)] == [
        0, 0, 0, 0]
    # With skip_invalid the good rows go in, each once.
    result = await _import(db, bot_id, text, skip_invalid=True)
    assert (result.rows, result.imported, result.skipped) == (8, 6, 2)
    assert await _count(db, Supporter) == 6
