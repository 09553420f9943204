"""Supporters on the dashboard: the filtered list, a CSV import, and the exports
(supporters, signatures, poll answers), which organisers who manage may download."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from campaigns import chapters, importer, inputs, polls
from campaigns.i18n import _, t_plain
from campaigns.organisers import MANAGE, allows
from storage import dashboard as queries
from storage import petitions as petition_store
from storage import supporters as supporter_store
from web import auth
from web.pages import (
    RULE_ERRORS,
    database,
    error_text,
    language,
    page,
    slow_summary,
    stream_download,
    table_chunks,
    table_download,
)

router = APIRouter(include_in_schema=False)
FORMATS = ("csv", "json")


@router.get("/supporters", response_class=HTMLResponse)
async def supporter_list(request: Request) -> Response:
    me = await auth.require(request)
    qp = request.query_params
    # Query strings go through the input gate: NUL and invisible characters dropped.
    filters = {k: inputs.search(qp.get(k)) for k in ("region", "tier", "status", "tag", "q")}
    cursors = {k: _cursor(qp.get(k)) for k in ("before", "after")}
    async with database(request).session() as s:
        scope = await chapters.scope_of(s, me.organiser.id)
    if filters["region"] and not scope.touches(filters["region"]):
        refused = await chapters.refuse(database(request), request.app.state.clock,
                                        actor=me.actor, what="supporters",
                                        details={"region": filters["region"]})
        raise HTTPException(403, refused.message(language(request)))
    async with database(request).session() as s:
        bot = await queries.default_telegram_bot(s)
        found = await queries.supporters(
            s, bot.id, region=filters["region"], tier=filters["tier"],
            status=filters["status"], tag=filters["tag"], search=filters["q"],
            before=cursors["before"], after=cursors["after"],
            regions=scope.region_filter) if bot else None
    # The tag list is cached per scope: a chapter organiser never sees another's counts.
    scope_key = ",".join(scope.region_filter) if scope.region_filter is not None else "*"
    tags = await slow_summary(
        request, f"tags:{bot.id}:{scope_key}",
        partial(_tag_counts, request, bot.id, scope.region_filter)) if bot else []
    return page(request, "supporters.html", {
        "supporters": found.rows if found else [], "total": found.total if found else 0,
        "total_capped": found.total_capped if found else False,
        "newer": found.newer if found else None, "older": found.older if found else None,
        "tags": tags, "filters": filters,
        "qs": urlencode({k: v for k, v in filters.items() if v})})


async def _tag_counts(request: Request, bot_id: int,
                      regions: list[str] | None) -> list[tuple[str, int]]:
    # The filter's tag list with counts reads every tag of every supporter.
    async with database(request).session() as s:
        return await queries.tag_counts(s, bot_id, regions)


def _cursor(value: str | None) -> int | None:
    """A page cursor (a supporter id) from the query string; anything else means none."""
    return int(value) if value and value.isdigit() and len(value) < 19 else None


@router.post("/supporters/import", response_class=HTMLResponse)
async def supporter_import(request: Request) -> Response:
    form = await request.form()
    me = await auth.require_change(request, form)
    lang = language(request)
    upload = form.get("file")
    data = await upload.read() if upload is not None and hasattr(upload, "read") else b""
    result: importer.ImportResult | None = None
    error = None
    try:
        text = importer.decode(data)
        async with database(request).session() as s:
            bot = await queries.default_telegram_bot(s)
            if bot is None:
                error = t_plain(lang, _("There is no bot to send with."))
            else:
                # A chapter organiser imports their chapters' people only.
                result = await importer.import_supporters(
                    s, bot.id, text, request.app.state.clock,
                    skip_invalid=bool(form.get("skip_invalid")),
                    dry_run=bool(form.get("dry_run")), actor=me.actor,
                    scope=await chapters.scope_of(s, me.organiser.id))
        if result is not None:
            await importer.after_import(database(request), result)
    except RULE_ERRORS as exc:  # an unreadable file, a huge cell (campaigns.inputs)
        error = error_text(exc, lang)
    return page(request, "import_result.html", {
        "result": result, "error": error,
        "problems": [(p.line, p.text(lang)) for p in (result.problems if result else [])]},
        status_code=422 if error else 200)


async def _require_export(request: Request, fmt: str) -> auth.Session:
    me = await auth.require(request)
    if not allows(me.role, MANAGE):
        raise HTTPException(403, "viewers cannot export personal data")
    if fmt not in FORMATS:
        raise HTTPException(404)
    return me


@router.get("/export/supporters.{fmt}")
async def export_supporters(request: Request, fmt: str) -> Response:
    me = await _require_export(request, fmt)
    db, clock = database(request), request.app.state.clock
    async with db.session() as s:
        scope = await chapters.scope_of(s, me.organiser.id)

    # Streamed: the session lives as long as the response body, one batch of rows at
    # a time (a million supporters used to be built as one string first).
    async def pieces() -> AsyncIterator[str]:
        async with db.session() as s:
            bot = await queries.default_telegram_bot(s)
            if bot is None:
                yield ",".join(importer.EXPORT_HEADER) + "\n" if fmt == "csv" else "[\n]\n"
                return
            async for piece in importer.export_chunks(s, bot.id, clock, fmt=fmt,
                                                      actor=me.actor,
                                                      regions=scope.region_filter):
                yield piece

    return stream_download(pieces(), f"supporters.{fmt}", fmt)


SIGNATURE_COLUMNS = ["petition", "signed_at", "name", "region", "valid"]


@router.get("/export/signatures.{fmt}")
async def export_signatures(request: Request, fmt: str) -> Response:
    me = await _require_export(request, fmt)
    slug = request.query_params.get("petition")
    db, clock = database(request), request.app.state.clock
    async with db.session() as s:
        areas = (await chapters.scope_of(s, me.organiser.id)).region_filter
    pid = None
    if slug:
        async with db.session() as s:
            p = await petition_store.petition_by_slug(s, slug)
        if p is None:
            raise HTTPException(404, "no such petition")
        pid = p.id

    async def pieces() -> AsyncIterator[str]:
        count = 0
        yield ",".join(SIGNATURE_COLUMNS) + "\n" if fmt == "csv" else "["
        async with db.session() as s:
            async for batch in queries.iter_signatures(s, pid, areas=areas):
                yield table_chunks(batch, SIGNATURE_COLUMNS, fmt, first=count == 0)
                count += len(batch)
            await supporter_store.audit(s, actor=me.actor, action="signatures.exported",
                                        target=f"petition:{pid}" if pid else None,
                                        now=clock.now(), details={"count": count, "format": fmt})
        if fmt == "json":
            yield "]"

    return stream_download(pieces(), f"signatures.{fmt}", fmt)


@router.get("/export/polls/{slug}.{fmt}")
async def export_poll(request: Request, slug: str, fmt: str) -> Response:
    me = await _require_export(request, fmt)
    async with database(request).session() as s:
        scope = await chapters.scope_of(s, me.organiser.id)
        try:
            # Stored answers and ballots without supporter ids: a secret ballot stays
            # secret, and anyone can recompute the published result from the file.
            # A scoped organiser gets their chapter's rows only.
            rows = await polls.stored_ballots(s, slug, areas=scope.region_filter)
        except RULE_ERRORS:
            raise HTTPException(404, "no such poll") from None
        await supporter_store.audit(s, actor=me.actor, action="poll.answers_exported",
                                    target=f"poll:{slug}", now=request.app.state.clock.now(),
                                    details={"count": len(rows), "format": fmt})
    return table_download(rows, ["choices", "tier", "region", "weight", "withheld"],
                          f"poll-{slug}.{fmt}", fmt)
