"""Supporters on the dashboard: the filtered list, a CSV import, and the exports
(supporters, signatures, poll answers), which organisers who manage may download."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from campaigns import chapters, importer, polls
from campaigns.i18n import _, t_plain
from campaigns.organisers import MANAGE, allows
from storage import dashboard as queries
from storage import petitions as petition_store
from storage import supporters as supporter_store
from web import auth
from web.pages import RULE_ERRORS, database, download, language, page, table_download

router = APIRouter(include_in_schema=False)
FORMATS = ("csv", "json")


@router.get("/supporters", response_class=HTMLResponse)
async def supporter_list(request: Request) -> Response:
    me = await auth.require(request)
    qp = request.query_params
    filters = {k: qp.get(k) or None for k in ("region", "tier", "status", "tag", "q")}
    try:
        offset = max(0, int(qp.get("offset") or 0))
    except ValueError:
        offset = 0
    async with database(request).session() as s:
        scope = await chapters.scope_of(s, me.organiser.id)
    if filters["region"] and not scope.covers(filters["region"]):
        refused = await chapters.refuse(database(request), request.app.state.clock,
                                        actor=me.actor, what="supporters",
                                        details={"region": filters["region"]})
        raise HTTPException(403, refused.message(language(request)))
    async with database(request).session() as s:
        bot = await queries.default_telegram_bot(s)
        rows, total = await queries.supporters(
            s, bot.id, region=filters["region"], tier=filters["tier"],
            status=filters["status"], tag=filters["tag"], search=filters["q"],
            offset=offset, regions=scope.region_filter) if bot else ([], 0)
        tags = await queries.tag_counts(s, bot.id, scope.region_filter) if bot else []
    return page(request, "supporters.html", {
        "supporters": rows, "total": total, "tags": tags, "filters": filters,
        "qs": urlencode({k: v for k, v in filters.items() if v}),
        "offset": offset, "page": queries.PAGE})


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
                result = await importer.import_supporters(
                    s, bot.id, text, request.app.state.clock,
                    skip_invalid=bool(form.get("skip_invalid")),
                    dry_run=bool(form.get("dry_run")), actor=me.actor)
        if result is not None:
            await importer.after_import(database(request), result)
    except importer.UnreadableFile:
        error = t_plain(lang, importer.M_UNREADABLE)
    return page(request, "import_result.html", {
        "result": result, "error": error,
        "problems": [(p.line, p.text(lang)) for p in (result.problems if result else [])]})


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
    out = io.StringIO()
    async with database(request).session() as s:
        scope = await chapters.scope_of(s, me.organiser.id)
        bot = await queries.default_telegram_bot(s)
        if bot is not None:
            await importer.export_supporters(s, bot.id, out, request.app.state.clock,
                                             fmt=fmt, actor=me.actor,
                                             regions=scope.region_filter)
    return download(out.getvalue(), f"supporters.{fmt}", fmt)


@router.get("/export/signatures.{fmt}")
async def export_signatures(request: Request, fmt: str) -> Response:
    me = await _require_export(request, fmt)
    slug = request.query_params.get("petition")
    rows: list[dict[str, Any]] = []
    async with database(request).session() as s:
        pid = None
        if slug:
            p = await petition_store.petition_by_slug(s, slug)
            if p is None:
                raise HTTPException(404, "no such petition")
            pid = p.id
        async for batch in queries.iter_signatures(s, pid):
            rows.extend(batch)
        await supporter_store.audit(s, actor=me.actor, action="signatures.exported",
                                    target=f"petition:{pid}" if pid else None,
                                    now=request.app.state.clock.now(),
                                    details={"count": len(rows), "format": fmt})
    return table_download(rows, ["petition", "signed_at", "name", "region", "valid"],
                          f"signatures.{fmt}", fmt)


@router.get("/export/polls/{slug}.{fmt}")
async def export_poll(request: Request, slug: str, fmt: str) -> Response:
    me = await _require_export(request, fmt)
    async with database(request).session() as s:
        try:
            # Stored answers and ballots without supporter ids: a secret ballot stays
            # secret, and anyone can recompute the published result from the file.
            rows = await polls.stored_ballots(s, slug)
        except RULE_ERRORS:
            raise HTTPException(404, "no such poll") from None
        await supporter_store.audit(s, actor=me.actor, action="poll.answers_exported",
                                    target=f"poll:{slug}", now=request.app.state.clock.now(),
                                    details={"count": len(rows), "format": fmt})
    return table_download(rows, ["choices", "tier", "region", "weight"],
                          f"poll-{slug}.{fmt}", fmt)
