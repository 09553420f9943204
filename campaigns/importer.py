"""Importing an existing supporter list from CSV, and exporting one.

The CSV header is ``telegram_id,name,language,region,tier,tags,consent`` (in any
order; other columns are ignored, but for an optional ``district``). The region may
name the 시/군/구 too ("서울 마포구", "서울특별시 마포구", "경기도 고양"), or the
``district`` column does ("마포구", "mapo"); an unknown one is reported. A row is
imported only with ``consent=yes``;
a row with a bad id, an unknown region, language or tier, or a duplicate (in the
file, or already stored for this bot) is reported with its line number and
reason, and then nothing is imported unless ``skip_invalid`` is set. Importing
the same file again therefore never creates anyone twice.

Imported supporters are active, with a Telegram identity (chat id = user id, as
for private chats), a consent record (purpose campaign_updates, notice version
and channel "import") and their tags. An export writes the same columns (plus
status, joined_at and district), so it can be imported elsewhere; stopped supporters are
exported with consent "no" and erased ones not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import io
import re
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple, TextIO

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import inputs
from campaigns.chapters import Scope
from campaigns.clock import Clock
from campaigns.errors import RuleError
from campaigns.i18n import _, t_plain
from campaigns.regions import districts, parse_district, parse_region
from campaigns.text import (
    FORMULA_START,
    MAX_NAME,
    clean_name,
    quote_formula,
    strip_invisible,
    unquote_formula,
)
from storage import importer as store
from storage import supporters
from storage.db import Database

HEADER: tuple[str, ...] = ("telegram_id", "name", "language", "region", "tier", "tags", "consent")
# The optional column the district (시/군/구) may come in, beside the region.
DISTRICT = "district"
EXPORT_HEADER: tuple[str, ...] = (*HEADER, "status", "joined_at", DISTRICT)
CONSENT_YES = frozenset({"yes", "y", "true", "1", "예", "네"})
LANGUAGES = {"ko": "ko", "en": "en", "korean": "ko", "english": "en", "한국어": "ko", "영어": "en"}
TIERS = frozenset({"supporter", "member"})
CHANNEL = "telegram"
CONSENT = store.GrantedConsent(
    purpose="campaign_updates", notice_version="import", channel="import"
)
# Telegram user ids have at most 52 significant bits.
MAX_TELEGRAM_ID = 2**52 - 1
MAX_TAG = 64
_TAG_SPLIT = re.compile(r"[;,|]")

Progress = Callable[[int, int], None]  # (rows done, rows to do)


@dataclass(frozen=True)
class Problem:
    """Why one line of the file cannot be imported."""

    line: int
    code: str
    msgid: str
    params: dict[str, Any] = field(default_factory=dict)

    def text(self, lang: str = "en") -> str:
        return t_plain(lang, self.msgid, **self.params)

    def as_dict(self, lang: str = "en") -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "reason": self.text(lang)}


class Row(NamedTuple):  # a tuple: 100,000 of them are built per import
    line: int
    telegram_id: int
    name: str | None
    language: str
    region: str | None
    tier: str
    tags: tuple[str, ...]
    district: str | None = None


@dataclass
class Parsed:
    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # Lines that had at least one problem (a line may have several).
    bad_lines: set[int] = field(default_factory=set)
    # Set when the file as a whole cannot be read (no header, missing column).
    fatal: bool = False

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)
        self.bad_lines.add(problem.line)


@dataclass(frozen=True)
class ImportResult:
    rows: int  # data rows in the file
    imported: int
    skipped: int  # invalid rows left out (with --skip-invalid)
    problems: list[Problem]
    # Nothing was (or, in a dry run, would be) imported because of the problems.
    aborted: bool = False
    dry_run: bool = False

    def as_dict(self, lang: str = "en") -> dict[str, Any]:
        return {
            "rows": self.rows,
            "imported": self.imported,
            "skipped": self.skipped,
            "aborted": self.aborted,
            "dry_run": self.dry_run,
            "problems": [p.as_dict(lang) for p in self.problems],
        }


# Messages (catalog: campaigns/locale/*/LC_MESSAGES/importer.po).
M_UNREADABLE = _("The file is neither UTF-8 nor CP949 text.")
M_EMPTY = _("The file is empty: the first line must be the header {header}.")
M_MISSING_COLUMN = _("The header has no column “{column}” (expected {header}).")
M_FIELD_COUNT = _("The row has {found} fields but the header has {expected}.")
M_BAD_ID = _("Bad Telegram id “{value}”: expected a positive whole number.")
M_NO_CONSENT = _("No consent: the consent column says “{value}”, not “yes”.")
M_BAD_REGION = _("Unknown region “{value}”.")
M_OUTSIDE = _("This person is outside your chapters ({region}): a national organiser imports "
              "them.")
M_NO_REGION = _("No region: your chapters import people of their regions only.")
M_BAD_DISTRICT = _("Unknown city, county or district “{value}” in the region “{region}”.")
M_BAD_LANGUAGE = _("Unknown language “{value}”: expected ko or en.")
M_BAD_TIER = _("Unknown tier “{value}”: expected supporter or member.")
M_LONG_TAG = _("The tag “{value}” is longer than {max} characters.")
M_DUPLICATE = _("Duplicate of line {first}: the same Telegram id.")
M_STORED = _("Already stored for this bot: this Telegram id is already a supporter.")


class UnreadableFile(RuleError):
    """The uploaded file is not text in an encoding we read."""

    def __init__(self) -> None:
        super().__init__(M_UNREADABLE)


def decode(data: bytes) -> str:
    """A CSV file's text: UTF-8 (with or without BOM), else CP949 as Korean Excel saves it."""
    for encoding in ("utf-8-sig", "cp949"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnreadableFile


def _telegram_id(value: str) -> int | None:
    if not (value.isascii() and value.isdigit()):  # [0-9]+, not other scripts' digits
        return None
    number = int(value)
    return number if 0 < number <= MAX_TELEGRAM_ID else None


def _language(value: str) -> str | None:
    if not value:
        return "ko"
    if value in LANGUAGES:
        return LANGUAGES[value]
    value = value.lower()
    if value in LANGUAGES:
        return LANGUAGES[value]
    base = re.split(r"[-_]", value, maxsplit=1)[0]  # ko-KR, en_US
    return base if base in ("ko", "en") else None


def _tags(value: str) -> list[str]:
    if not value.isprintable():
        value = strip_invisible(value)
    seen: dict[str, None] = {}
    for raw in _TAG_SPLIT.split(value):
        tag = raw.strip()
        if tag:
            seen.setdefault(tag)
    return list(seen)


def parse(text: str) -> Parsed:
    """Read and check every row of the CSV text, without touching the store."""
    parsed = Parsed()
    rows: list[Row] = []
    for chunk in parse_chunks(text, parsed, size=1 << 62):
        rows.extend(chunk)
    parsed.rows = rows
    return parsed


def parse_chunks(text: str, parsed: Parsed, size: int) -> Iterator[list[Row]]:
    """`parse`, handing out the valid rows ``size`` at a time as it reads them.

    Problems (and a fatal one) go to ``parsed`` as they are found; ``parsed.rows``
    holds only the rows not yet handed out.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        header = []
    except csv.Error:
        raise _too_big(reader.line_num or 1) from None
    inputs.csv_cells(header, 1)
    columns = [h.strip().lower() for h in header]
    if not any(columns):
        parsed.add(Problem(1, "no_header", M_EMPTY, {"header": ",".join(HEADER)}))
        parsed.fatal = True
        return
    missing = [c for c in HEADER if c not in columns]
    for column in missing:
        parsed.add(Problem(1, "missing_column", M_MISSING_COLUMN,
                           {"column": column, "header": ",".join(HEADER)}))
    if missing:
        parsed.fatal = True
        return
    positions = [columns.index(name) for name in HEADER]
    if DISTRICT in columns:  # optional, after the contract's columns
        positions.append(columns.index(DISTRICT))
    pick = itemgetter(*positions)
    cells = _Cells()
    # The input gate per row, in its cheap form: one scan of the whole text for NUL,
    # then only a row with a NUL or a long cell goes through the full check (which
    # refuses it with its line).
    has_nul = "\x00" in text
    longest = inputs.CSV_CELL
    first_seen: dict[int, int] = {}
    line = reader.line_num  # the row about to be read starts on the next line
    rows = iter(reader)
    while True:
        try:
            fields = next(rows)
        except StopIteration:
            break
        except csv.Error:  # a cell beyond the csv module's limit (128 KiB), a broken quote
            raise _too_big(reader.line_num) from None
        start, line = line + 1, reader.line_num
        if has_nul or (fields and max(map(len, fields)) > longest):
            inputs.csv_cells(fields, start)  # the one input gate: a huge cell refuses the file
        if not fields or (not fields[0].strip() and not any(f.strip() for f in fields)):
            continue  # blank lines, and the empty rows spreadsheets leave at the end
        _check_row(parsed, start, fields, len(columns), pick, first_seen, cells)
        if len(parsed.rows) >= size:
            yield parsed.rows
            parsed.rows = []
    if parsed.rows:
        yield parsed.rows
        parsed.rows = []


def _too_big(line: int) -> RuleError:
    return RuleError(_("line {line}: a cell is longer than {limit} characters, or the CSV is "
                       "broken there"), line=line, limit=inputs.CSV_CELL)


def _clean_name(value: str) -> str | None:
    """`clean_name`, skipping its per-character scan for the usual, already clean name."""
    if (value.isprintable() and len(value) <= MAX_NAME and "  " not in value
            and value == value.strip()):
        return value or None
    return clean_name(value)


def _check_row(
    parsed: Parsed,
    line: int,
    fields: list[str],
    expected: int,
    pick: Callable[[list[str]], tuple[str, ...]],
    first_seen: dict[int, int],
    cells: _Cells,
) -> None:
    if len(fields) > expected and not any(f.strip() for f in fields[expected:]):
        fields = fields[:expected]  # trailing empty cells, as spreadsheets leave them
    if len(fields) != expected:
        parsed.add(Problem(line, "field_count", M_FIELD_COUNT,
                           {"found": len(fields), "expected": expected}))
        return
    # The order of HEADER.
    picked = tuple(map(str.strip, pick(fields)))
    id_text, name_text, language_text, region_text, tier_text, tags_text, consent_text = (
        picked[:7])
    district_text = picked[7] if len(picked) > 7 else ""
    before = len(parsed.problems)
    telegram_id = _telegram_id(id_text)
    if telegram_id is None:
        parsed.add(Problem(line, "bad_id", M_BAD_ID, {"value": id_text}))
    elif telegram_id in first_seen:
        parsed.add(Problem(line, "duplicate", M_DUPLICATE, {"first": first_seen[telegram_id]}))
    else:
        first_seen[telegram_id] = line
    if consent_text.lower() not in CONSENT_YES:
        parsed.add(Problem(line, "no_consent", M_NO_CONSENT, {"value": consent_text}))
    language = cells.language(language_text)
    if language is None:
        parsed.add(Problem(line, "bad_language", M_BAD_LANGUAGE, {"value": language_text}))
    region, district, unknown = cells.region(region_text, district_text)
    if region_text and region is None:
        parsed.add(Problem(line, "bad_region", M_BAD_REGION, {"value": region_text}))
    elif unknown:
        parsed.add(Problem(line, "bad_district", M_BAD_DISTRICT,
                           {"value": unknown, "region": (region_text if district_text else
                                                         region_text.partition(" ")[0]) or "-"}))
    tier = tier_text.lower() or "supporter"
    if tier not in TIERS:
        parsed.add(Problem(line, "bad_tier", M_BAD_TIER, {"value": tier_text}))
    tags = cells.tag_list(tags_text) if tags_text else ()
    for tag in tags:
        if len(tag) > MAX_TAG:
            parsed.add(Problem(line, "long_tag", M_LONG_TAG, {"value": tag[:20] + "…",
                                                               "max": MAX_TAG}))
    if len(parsed.problems) > before or telegram_id is None or language is None:
        return
    parsed.rows.append(Row(
        line, telegram_id, _clean_name(unquote_formula(name_text)), language, region, tier,
        tags, district,
    ))


class _Cells:
    """The readers of the cells a list repeats, each distinct cell read once per file.

    The language, region and tags columns of a million rows hold a handful of values
    each; reading each of them once took a quarter off parsing. Per file, not per
    process: the regions a deployment knows may change between two imports.
    """

    _LIMIT = 4096  # distinct cells kept per column; a column of free text stops caching

    def __init__(self) -> None:
        self.languages: dict[str, str | None] = {}
        self.regions: dict[tuple[str, str], tuple[str | None, str | None, str | None]] = {}
        self.tags: dict[str, tuple[str, ...]] = {}

    def language(self, text: str) -> str | None:
        found = self.languages.get(text, _MISSING)
        if found is _MISSING:
            found = _language(text)
            if len(self.languages) < self._LIMIT:
                self.languages[text] = found
        return found

    def region(self, text: str,
               district_text: str = "") -> tuple[str | None, str | None, str | None]:
        key = (text, district_text)
        found = self.regions.get(key)
        if found is None:
            found = _region_and_district(text, district_text)
            if len(self.regions) < self._LIMIT:
                self.regions[key] = found
        return found

    def tag_list(self, text: str) -> tuple[str, ...]:
        found = self.tags.get(text)
        if found is None:
            found = tuple(_tags(unquote_formula(text)))
            if len(self.tags) < self._LIMIT:
                self.tags[text] = found
        return found


_MISSING: Any = object()


def _region_and_district(text: str, district_text: str = "") -> tuple[
        str | None, str | None, str | None]:
    """(region, district, the district text not understood) from the region cell: a province
    ("경기"), or a province and its city, county or district ("경기 고양시", "서울특별시
    마포구"), and from the district column when the file has one ("마포구", "mapo").
    Region None with a non-empty cell: the region is not understood."""
    if not text:
        return None, None, district_text or None
    region = parse_region(text)
    named = ""
    if region is None:
        first, _, named = text.strip().partition(" ")
        region = parse_region(first)
        named = named.strip()
        if region is None:
            return None, None, None
    named = district_text or named
    if not named:
        return region, None, None
    district = parse_district(region, named) if districts(region) else None
    return (region, district, None) if district else (region, None, named)


def keep_to_scope(parsed: Parsed, scope: Scope) -> int:
    """A chapter organiser imports the people of their chapters' areas only: every other
    row is a line problem (like a bad region), and so is a row with no region (else an
    organiser could bring in people of anywhere). Returns how many rows were refused."""
    if scope.national:
        return 0
    keep: list[Row] = []
    refused = 0
    for row in parsed.rows:
        if scope.covers(row.region, row.district):
            keep.append(row)
            continue
        refused += 1
        if row.region is None:
            parsed.add(Problem(row.line, "no_region", M_NO_REGION))
        else:
            where = row.region + (f"/{row.district}" if row.district else "")
            parsed.add(Problem(row.line, "outside_chapters", M_OUTSIDE, {"region": where}))
    parsed.rows = keep
    parsed.problems.sort(key=lambda p: p.line)
    return refused


async def check_stored(session: AsyncSession, bot_id: int, parsed: Parsed) -> None:
    """Report rows whose Telegram id this bot already knows, and drop them from the rows."""
    parsed.rows = await _not_stored(session, bot_id, parsed, parsed.rows)
    parsed.problems.sort(key=lambda p: p.line)


async def _not_stored(session: AsyncSession, bot_id: int, parsed: Parsed,
                      rows: list[Row]) -> list[Row]:
    """``rows`` less those whose Telegram id this bot already knows (reported to parsed)."""
    known = await store.existing_external_ids(
        session, bot_id, CHANNEL, [str(r.telegram_id) for r in rows]
    )
    if not known:
        return rows
    keep: list[Row] = []
    for row in rows:
        if str(row.telegram_id) in known:
            parsed.add(Problem(row.line, "already_stored", M_STORED))
        else:
            keep.append(row)
    return keep


async def import_supporters(
    session: AsyncSession,
    bot_id: int,
    text: str,
    clock: Clock,
    *,
    skip_invalid: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    actor: str = "cli",
    scope: Scope | None = None,
) -> ImportResult:
    """Validate the whole file, then insert it in chunks within the caller's transaction.
    ``scope``: a chapter organiser's; rows outside their areas are line problems."""
    with _no_cyclic_gc():
        return await _import_supporters(session, bot_id, text, clock, skip_invalid=skip_invalid,
                                        dry_run=dry_run, progress=progress, actor=actor,
                                        scope=scope)


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for the length of an import.

    A million rows are a few million new tuples and strings, none in a reference
    cycle; the collector still walked them again and again as they piled up: 45 % of
    the Python side of a million-row import (parse and COPY records: 11.3 s -> 6.2 s).
    Reference counting frees everything as usual meanwhile; only cycles made
    elsewhere in the process wait until the import ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def _import_supporters(
    session: AsyncSession,
    bot_id: int,
    text: str,
    clock: Clock,
    *,
    skip_invalid: bool,
    dry_run: bool,
    progress: Progress | None,
    actor: str,
    scope: Scope | None = None,
) -> ImportResult:
    # A chapter organiser's list is checked against their areas as a whole first.
    scoped = scope is not None and not scope.national
    if dry_run or scoped or await store.any_identity(session, bot_id, CHANNEL):
        return await _import_parsed(session, bot_id, text, clock, skip_invalid=skip_invalid,
                                    dry_run=dry_run, progress=progress, actor=actor,
                                    scope=scope)
    now = clock.now()
    parsed = Parsed()
    # A list for a bot that knows no one on the channel yet (the first load of a
    # movement's list; nothing stored to compare with) is read in a thread while this
    # task inserts what has been read so far: reading (Python) and inserting (the
    # database) then take one core each instead of taking turns (a million rows: about
    # 4 s of reading no longer in front of the inserts). What is inserted before a
    # problem turns up later in the file is rolled back with the savepoint: as before,
    # nothing is imported unless skip_invalid.
    chunks = _read_in_thread(text, parsed)
    kept = done = 0
    savepoint = await session.begin_nested()
    try:
        async for rows in chunks:
            kept += len(rows)
            if parsed.problems and not skip_invalid:
                continue  # it will be aborted: read on, only to report every problem
            done += await _insert_rows(session, bot_id, rows, now)
            if progress:
                progress(done, kept)
    except BaseException:
        await chunks.aclose()
        raise
    parsed.problems.sort(key=lambda p: p.line)
    total_rows = 0 if parsed.fatal else kept + len(parsed.bad_lines)
    if parsed.fatal or (parsed.problems and not skip_invalid):
        await savepoint.rollback()
        return ImportResult(rows=total_rows, imported=0, skipped=0,
                            problems=parsed.problems, aborted=True)
    await savepoint.commit()
    if progress and not done:
        progress(0, 0)
    skipped = len(parsed.bad_lines)
    await supporters.audit(session, actor=actor, action="supporters.imported", now=now,
                           target=f"bot:{bot_id}",
                           details={"imported": done, "skipped": skipped})
    return ImportResult(rows=total_rows, imported=done, skipped=skipped, problems=parsed.problems)


async def _import_parsed(
    session: AsyncSession,
    bot_id: int,
    text: str,
    clock: Clock,
    *,
    skip_invalid: bool,
    dry_run: bool,
    progress: Progress | None,
    actor: str,
    scope: Scope | None = None,
) -> ImportResult:
    """The whole file read and checked against the store first, then inserted."""
    parsed = parse(text)
    if not parsed.fatal and scope is not None and (refused := keep_to_scope(parsed, scope)):
        # Audited in the caller's transaction, which commits whether or not rows go in.
        await supporters.audit(session, actor=actor, action="scope.refused", now=clock.now(),
                               target=f"import:bot:{bot_id}", details={"rows": refused})
    if not parsed.fatal:
        await check_stored(session, bot_id, parsed)
    total_rows = 0 if parsed.fatal else len(parsed.rows) + len(parsed.bad_lines)
    aborted = parsed.fatal or (bool(parsed.problems) and not skip_invalid)
    if aborted or dry_run:
        skipped = 0 if aborted else len(parsed.bad_lines)
        return ImportResult(rows=total_rows, imported=0, skipped=skipped,
                            problems=parsed.problems, aborted=aborted, dry_run=dry_run)
    now = clock.now()
    done = 0
    if progress:
        progress(0, len(parsed.rows))
    for start in range(0, len(parsed.rows), store.IMPORT_CHUNK):
        done += await _insert_rows(session, bot_id,
                                   parsed.rows[start : start + store.IMPORT_CHUNK], now)
        if progress:
            progress(done, len(parsed.rows))
    skipped = len(parsed.bad_lines)
    await supporters.audit(session, actor=actor, action="supporters.imported", now=now,
                           target=f"bot:{bot_id}",
                           details={"imported": done, "skipped": skipped})
    return ImportResult(rows=total_rows, imported=done, skipped=skipped, problems=parsed.problems)


async def _insert_rows(session: AsyncSession, bot_id: int, rows: list[Row], now: Any) -> int:
    return await store.insert_supporters(
        session,
        bot_id=bot_id,
        channel=CHANNEL,
        # Positional (a million of them): external id, chat id (in a private chat
        # Telegram's chat id is the user id), name, language, region, tier, tags,
        # district.
        rows=[store.NewSupporter(str(r.telegram_id), r.telegram_id, r.name, r.language,
                                 r.region, r.tier, r.tags, r.district) for r in rows],
        consent=CONSENT,
        now=now,
    )


async def _read_in_thread(text: str, parsed: Parsed) -> AsyncGenerator[list[Row], None]:
    """`parse_chunks` run in a thread, its chunks handed to this task as they are read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[list[Row] | BaseException | None] = asyncio.Queue()
    stop = threading.Event()

    def read() -> None:
        try:
            for chunk in parse_chunks(text, parsed, store.IMPORT_CHUNK):
                if stop.is_set():
                    return
                loop.call_soon_threadsafe(queue.put_nowait, chunk)
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except BaseException as exc:  # handed to the task, raised there
            loop.call_soon_threadsafe(queue.put_nowait, exc)

    reader = loop.run_in_executor(None, read)
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        await reader


async def after_import(db: Database, result: ImportResult) -> None:
    """Once the import's transaction has committed: let the planner see the new rows."""
    if result.imported:
        await store.refresh_statistics(db)


async def export_supporters(
    session: AsyncSession,
    bot_id: int,
    out: TextIO,
    clock: Clock,
    *,
    fmt: str = "csv",
    actor: str = "cli",
    progress: Progress | None = None,
    regions: list[str] | None = None,
) -> int:
    """Write every supporter of the bot but the erased ones as CSV or JSON; returns the count.

    ``regions`` (a scoped organiser's) keeps the export to those regions."""
    counter = ExportCount()
    async for piece in export_chunks(session, bot_id, clock, fmt=fmt, actor=actor,
                                     progress=progress, counter=counter, regions=regions):
        out.write(piece)
    return counter.rows


@dataclass
class ExportCount:
    rows: int = 0


async def export_chunks(
    session: AsyncSession,
    bot_id: int,
    clock: Clock,
    *,
    fmt: str = "csv",
    actor: str = "cli",
    progress: Progress | None = None,
    counter: ExportCount | None = None,
    regions: list[str] | None = None,
) -> AsyncIterator[str]:
    """The export as text pieces, one per batch of supporters read (keyset by id).

    Memory stays that of one batch however long the list: the CLI writes each piece
    to its file and the dashboard streams it to the browser as it comes. The audit
    row is written once the last piece has been produced.
    """
    if fmt not in ("csv", "json"):
        raise ValueError("format must be csv or json")
    total = 0
    if progress:
        by_status = await supporters.counts_by_status(session, bot_id)
        total = sum(n for status, n in by_status.items() if status != "erased")
        progress(0, total)
    count = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    yield (",".join(EXPORT_HEADER) + "\n") if fmt == "csv" else "["
    # A scoped organiser's export (regions) takes the row-by-row path below.
    if fmt == "csv" and regions is None and store.can_copy(session):
        # PostgreSQL writes the same CSV itself (COPY), 5-10 times faster than
        # formatting each row here; tests compare the two byte for byte.
        status = store.ExportStatus()
        async for piece in store.copy_export_csv(session, bot_id, CHANNEL, FORMULA_START,
                                                 status):
            yield piece
            if progress:
                count += piece.count("\n")  # lines, not rows: close enough for progress
                progress(min(count, total), max(total, count))
        count = status.rows
        if progress:
            progress(count, max(total, count))
        if counter is not None:
            counter.rows = count
        await supporters.audit(session, actor=actor, action="supporters.exported",
                               now=clock.now(), target=f"bot:{bot_id}",
                               details={"count": count, "format": fmt})
        return
    async for batch in store.iter_supporters(session, bot_id, CHANNEL, regions=regions):
        for s in batch:
            if fmt == "csv":
                writer.writerow([
                    s.external_user_id or "", quote_formula(s.display_name or ""), s.language,
                    s.region or "", s.tier, quote_formula(";".join(s.tags)),
                    # A stopped supporter withdrew consent: importing the export elsewhere
                    # must not sign them up again.
                    "yes" if s.status == "active" else "no",
                    s.status, s.created_at.isoformat(), s.district or "",
                ])
            else:
                telegram_id: str | int = s.external_user_id or ""
                if isinstance(telegram_id, str) and telegram_id.isdigit():
                    telegram_id = int(telegram_id)
                record = {
                    "telegram_id": telegram_id, "name": s.display_name or "",
                    "language": s.language, "region": s.region or "", "tier": s.tier,
                    "tags": list(s.tags), "consent": "yes" if s.status == "active" else "no",
                    "status": s.status, "joined_at": s.created_at.isoformat(),
                    "district": s.district or "",
                }
                buffer.write(("," if count else "") + "\n" + orjson.dumps(record).decode())
            count += 1
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if counter is not None:
            counter.rows = count
        if progress:
            progress(count, max(total, count))
    if fmt == "json":
        yield "\n]\n"
    if counter is not None:
        counter.rows = count
    await supporters.audit(session, actor=actor, action="supporters.exported", now=clock.now(),
                           target=f"bot:{bot_id}", details={"count": count, "format": fmt})
