"""Chapter scope on the CLI and the paths that were still national (issue 13): every
command with `--as` walked as a Seoul organiser shows no Busan person; broadcasts, event
check-in, CSV import, surveys and ideas keep to the chapter or refuse, each refusal
audited."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import click
import httpx
from click.testing import CliRunner
from sqlalchemy import select

from campaigns import events
from campaigns.clock import FixedClock
from campaigns.settings import Settings
from campaigns.x import accounts as x_accounts
from storage import events as event_store
from storage.db import Database
from storage.models import Broadcast, EventRsvp, Supporter
from tests.builders import plain_url
from tests.dashboard_helpers import cheap_password_hashes, sign_in
from tests.test_chapters_scope import BUSAN, BUSAN_CHATS, NOW, SEOUL, refusals, world
from web.app import create_app

_ = cheap_password_hashes  # the fixture, used by every test here

AS = ("--as", "seoul-org")


def runner(db: Database) -> Any:
    env = {"NALGAE_DATABASE_URL": plain_url(db), "NALGAE_TELEGRAM_TOKEN": ""}
    from cli import cli

    def run(*args: str, code: int | None = 0) -> str:
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        if code is not None:
            assert result.exit_code == code, result.output
        # Progress goes to stderr: what a script parses is stdout.
        return result.stdout if result.exit_code == 0 else result.output

    return run


def commands_with_as(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[str]:
    """Every `nalgae` command (through subgroups) that takes `--as`."""
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands_with_as(command, (*path, name))
        elif any("--as" in p.opts for p in command.params):
            yield " ".join((*path, name))


def walk_args(w: dict[str, Any], codes: dict[str, str], csv: str) -> dict[str, list[str]]:
    """The arguments each walked command runs with (a new command fails the walk until it
    is added here)."""
    b = str(w["broadcast"])
    event = ["--campaign", "air", "--slug", "x-rally", "--title-ko", "x",
             "--starts-at", "2026-12-21T14:00", "--ends-at", "2026-12-21T15:00", "--place", "p"]
    return {
        "petition create": ["--campaign", "air", "--slug", "x-new", "--title-ko", "x"],
        "petition open": ["clean-air"], "petition close": ["clean-air"],
        "petition show": ["clean-air", "--json"],
        "petition invalidate": ["clean-air", "--reason", "test", "--dry-run"],
        "petition reconcile": ["--json"],
        "campaign create": ["--slug", "x-campaign", "--title-ko", "x"],
        "members codes": ["--count", "2"],
        "x post": ["--text", "안녕", "--account", "busan-x"],
        "api-token create": ["--name", "seoul script 2", "--scope", "identities", "--json"],
        "poll create": ["--campaign", "air", "--slug", "x-poll", "--question-ko", "x"],
        "poll close": ["next-step"], "poll results": ["next-step", "--rows", "--json"],
        "supporters export": ["--format", "json"],
        "supporters import": [csv, "--skip-invalid", "--json"],
        "report sources": ["--json"], "report invites": ["--json"],
        "broadcast send": ["--text", "안녕", "--draft", "--json"],
        "broadcast preview": ["--json"], "broadcast status": [b, "--json"],
        "broadcast pause": [b], "broadcast resume": [b], "broadcast cancel": [b],
        "broadcast schedule": [b], "broadcast test": [b, "--chat-id", str(BUSAN_CHATS[0])],
        "event create": event, "event open": ["rally"], "event cancel": ["rally"],
        "event update": ["rally", "--place", "elsewhere"], "event show": ["rally", "--json"],
        "event attendees": ["rally", "--json"], "event export": ["rally"],
        "event checkin": ["rally", codes["busan"]],
        "survey create": ["--campaign", "air", "--from", "-"],
        "survey open": ["town-voice"], "survey close": ["town-voice"],
        "survey results": ["town-voice", "--json"], "survey export": ["town-voice"],
        "idea review": ["--campaign", "air"], "idea approve": ["1"],
        "idea reject": ["1", "--reason", "no thanks"],
        "idea answer": ["1", "--outcome", "accepted", "--text", "yes"],
        "idea threshold": ["--campaign", "air", "--backs", "3"],
    }


async def x_account(db: Database, name: str, chapter: str) -> int:
    """A chapter's X account (credentials sealed; nothing is sent in these tests)."""
    async with db.session() as s:
        added = await x_accounts.add(s, FixedClock(NOW), name=name, chapter=chapter,
                                     user_id="1800000000000000009", credentials={
                                         "api_key": "k", "api_secret": "s",
                                         "access_token": "t", "access_secret": "a"})
    return int(added.id)


async def passes(db: Database, w: dict[str, Any]) -> dict[str, str]:
    """A check-in pass for the first Seoul and the first Busan person."""
    codes = {}
    async with db.session() as s:
        for chapter in ("seoul", "busan"):
            code = events.new_code()
            assert await event_store.set_code(s, w["event"].id, w[chapter][0],
                                              events.hash_code(code))
            codes[chapter] = code
    return codes


def busan_in(text: str) -> list[str]:
    return [n for n in BUSAN if n in text] + [str(c) for c in BUSAN_CHATS if str(c) in text]


async def test_walk_every_cli_command_with_as_as_a_chapter_organiser(
        db: Database, tmp_path: Any) -> None:
    w = await world(db)
    codes = await passes(db, w)
    run = runner(db)
    from cli import cli

    await x_account(db, "busan-x", "busan")
    walked = sorted(commands_with_as(cli))
    (tmp_path / "people.csv").write_text(CSV, encoding="utf-8")
    args = walk_args(w, codes, str(tmp_path / "people.csv"))
    assert set(walked) <= set(args), f"add to walk_args: {set(walked) - set(args)}"
    outputs: dict[str, str] = {}
    for command in walked:
        result = await asyncio.to_thread(
            lambda c=command: CliRunner().invoke(
                cli, [*c.split(), *args[c], *AS], catch_exceptions=False,
                input="slug: x-survey\n", env={"NALGAE_DATABASE_URL": plain_url(db),
                                               "NALGAE_TELEGRAM_TOKEN": ""}))
        assert result.exit_code in (0, 1), f"{command}: {result.output}"
        assert result.exception is None or isinstance(result.exception, SystemExit), command
        assert busan_in(result.output) == [], f"`{command} --as` shows a Busan person"
        outputs[command] = result.output
    assert len(walked) >= 40
    # The walk is not vacuous: the lists of people show the chapter's.
    for command in ("event attendees", "event export", "supporters export"):
        assert all(n in outputs[command] for n in SEOUL), command
    assert "소원-서울사람0" in outputs["survey results"] + outputs["survey export"]
    # National objects and another chapter's people: refused, each refusal audited.
    refused = await refusals(db)
    refused |= {t.partition(":")[0] + ":" for t in refused if t.startswith("x.post:")}
    for target in ("petition.invalidate:clean-air", "petition.reconcile", "campaign.create",
                   "members.codes", "event.create", "x.post:", "event.open:rally",
                   "event.update:rally", "survey.create", "survey.close:town-voice",
                   "idea.review:air", "idea.moderate:1", "idea.answer:1", "idea.threshold:air",
                   f"broadcast:{w['broadcast']}", f"event.checkin:{w['event'].id}"):
        assert target in refused, target
    # Nothing national changed.
    shown = json.loads(await asyncio.to_thread(run, "event", "show", "rally", "--json"))
    assert shown["status"] == "open" and shown["place"] == "광장"
    async with db.session() as s:
        b = await s.get_one(Broadcast, w["broadcast"])
        assert b.status == "draft"


async def test_cli_broadcast_as_a_chapter_organiser(db: Database) -> None:
    w = await world(db)
    run = runner(db)
    preview = json.loads(await asyncio.to_thread(run, "broadcast", "preview", "--json", *AS))
    assert preview["audience"] == 5
    assert json.loads(await asyncio.to_thread(run, "broadcast", "preview", "--json"))[
        "audience"] == 10
    sent = json.loads(await asyncio.to_thread(run, "broadcast", "send", "--text", "안녕",
                                              "--draft", "--json", *AS))
    async with db.session() as s:
        b = await s.get_one(Broadcast, int(sent["id"]))
        assert b.audience["chapter_areas"] == ["seoul"] and b.created_by.startswith("organiser:")
    # Their own broadcast they follow and steer; a national one, or Busan, is refused.
    mine = json.loads(await asyncio.to_thread(run, "broadcast", "status", str(sent["id"]),
                                              "--json", *AS))
    assert mine["audience"] == 5
    await asyncio.to_thread(run, "broadcast", "cancel", str(sent["id"]), *AS)
    out = await asyncio.to_thread(run, "broadcast", "send", "--text", "x",
                                  "--audience", "region=부산", *AS, code=1)
    assert "outside your chapters" in out
    await asyncio.to_thread(run, "broadcast", "status", str(w["broadcast"]), *AS, code=1)
    await asyncio.to_thread(run, "broadcast", "preview", "--audience", "region=부산", *AS,
                            code=1)
    assert {"broadcast", "audience", f"broadcast:{w['broadcast']}"} <= await refusals(db)


async def test_an_api_token_created_as_a_chapter_organiser_sees_their_chapter(
        db: Database) -> None:
    await world(db)
    run = runner(db)
    token = json.loads(await asyncio.to_thread(
        run, "api-token", "create", "--name", "seoul sync", "--scope", "read", "--json", *AS))
    app = create_app(Settings(secret_key="s" * 32), db, clock=FixedClock(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        people = (await client.get("/api/v1/people", params={"per_page": 100}, headers={
            "Authorization": f"Bearer {token['token']}"})).text
    assert all(n in people for n in SEOUL) and busan_in(people) == []


async def test_cli_petition_invalidate_and_report_refusals_are_audited(db: Database) -> None:
    await world(db)
    run = runner(db)
    out = await asyncio.to_thread(run, "petition", "invalidate", "clean-air", "--reason", "x",
                                  *AS, code=1)
    assert "outside your chapters" in out
    shown = json.loads(await asyncio.to_thread(run, "petition", "show", "clean-air", "--json"))
    assert shown["signatures"] == 10
    await asyncio.to_thread(run, "report", "invites", "--chapter", "busan", *AS, code=1)
    assert {"petition.invalidate:clean-air", "report.invites:busan"} <= await refusals(db)


async def test_event_check_in_by_a_chapter_organiser(db: Database) -> None:
    w = await world(db)
    codes = await passes(db, w)
    run = runner(db)
    out = await asyncio.to_thread(run, "event", "checkin", "rally", codes["busan"], *AS, code=1)
    assert "outside your chapters" in out
    await asyncio.to_thread(run, "event", "checkin", "rally", codes["seoul"], *AS)
    async with db.session() as s:
        checked = dict((await s.execute(
            select(EventRsvp.supporter_id, EventRsvp.checked_in_at))).all())
    assert checked[w["seoul"][0]] is not None and checked[w["busan"][0]] is None
    assert f"event.checkin:{w['event'].id}" in await refusals(db)
    # The dashboard's door: the same answer, and a national organiser checks them in.
    app = create_app(Settings(secret_key="s" * 32), db, clock=FixedClock(NOW))
    for login, status in (("seoul-org", 409), ("national", 200)):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://127.0.0.1:8000") as client:
            csrf = await sign_in(client, login)
            response = await client.post("/events/rally/checkin", data={
                "code": codes["busan"], "csrf": csrf})
            assert response.status_code == status, response.text
    async with db.session() as s:
        busan_rsvp = (await s.execute(select(EventRsvp.checked_in_at).where(
            EventRsvp.supporter_id == w["busan"][0]))).scalar_one()
    assert busan_rsvp is not None


CSV = ("telegram_id,name,language,region,tier,tags,consent\n"
       "5550001,서울새사람,ko,서울,supporter,,yes\n"
       "5550002,부산새사람,ko,부산,supporter,,yes\n"
       "5550003,어디사람,ko,,supporter,,yes\n")


async def imported_names(db: Database) -> set[str]:
    async with db.session() as s:
        names = set((await s.execute(select(Supporter.display_name))).scalars())
    return names & {"서울새사람", "부산새사람", "어디사람"}


async def test_csv_import_by_a_chapter_organiser(db: Database, tmp_path: Any) -> None:
    await world(db)
    run = runner(db)
    path = tmp_path / "people.csv"
    path.write_text(CSV, encoding="utf-8")
    # Rows outside the chapter are line errors: the file is refused as a whole...
    aborted = json.loads((await asyncio.to_thread(run, "supporters", "import", str(path),
                                                  "--json", *AS, code=1)).splitlines()[-1])
    assert aborted["aborted"] and aborted["imported"] == 0
    assert [(p["line"], p["reason"]) for p in aborted["problems"]] == [
        (3, "This person is outside your chapters (busan): a national organiser imports "
            "them."),
        (4, "No region: your chapters import people of their regions only.")]
    # ...or, with --skip-invalid, the chapter's rows go in and the others are reported.
    done = json.loads(await asyncio.to_thread(run, "supporters", "import", str(path),
                                              "--skip-invalid", "--json", *AS))
    assert done["imported"] == 1 and done["skipped"] == 2
    assert await imported_names(db) == {"서울새사람"}
    assert any(t.startswith("import:bot:") for t in await refusals(db))


async def test_dashboard_csv_upload_by_a_chapter_organiser(db: Database) -> None:
    await world(db)
    app = create_app(Settings(secret_key="s" * 32), db, clock=FixedClock(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        csrf = await sign_in(client, "seoul-org")
        response = await client.post(
            "/supporters/import", data={"csrf": csrf, "skip_invalid": "1"},
            files={"file": ("people.csv", CSV.encode(), "text/csv")})
        assert response.status_code == 200, response.text
        assert "담당 지부 밖의 사람입니다" in response.text or "outside your chapters" in \
            response.text
    assert await imported_names(db) == {"서울새사람"}
    assert any(t.startswith("import:bot:") for t in await refusals(db))


async def test_a_national_broadcasts_counts_are_not_a_chapters(db: Database) -> None:
    w = await world(db)
    run = runner(db)
    mine = json.loads(await asyncio.to_thread(run, "broadcast", "send", "--text", "안녕",
                                              "--draft", "--json", *AS))["id"]
    app = create_app(Settings(secret_key="s" * 32), db, clock=FixedClock(NOW))
    auth = {"Authorization": f"Bearer {w['token']}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8000") as client:
        await sign_in(client, "seoul-org")
        national = f"/broadcasts/{w['broadcast']}"
        assert (await client.get(national)).status_code == 403
        assert (await client.get(f"/broadcasts/{mine}")).status_code == 200
        assert (await client.get("/api/v1" + national, headers=auth)).status_code == 403
        assert (await client.get(f"/api/v1/broadcasts/{mine}", headers=auth)).json()[
            "audience"] == 5
        listed = (await client.get("/api/v1/broadcasts", headers=auth)).json()
    sizes = {b["id"]: b["audience"] for b in listed["_embedded"]["nalgae:broadcasts"]}
    assert sizes[w["broadcast"]] is None
    assert f"broadcast:{w['broadcast']}" in await refusals(db)


async def test_x_post_as_a_chapter_organiser_goes_through_their_chapters_account(
        db: Database) -> None:
    await world(db)
    busan = await x_account(db, "busan-x", "busan")
    run = runner(db)
    for how in (("--account", "busan-x"), ("--chapter", "busan")):
        out = await asyncio.to_thread(run, "x", "post", "--text", "안녕", *how, *AS, code=1)
        assert "outside your chapters" in out
    assert f"x.post:{busan}" in await refusals(db)
