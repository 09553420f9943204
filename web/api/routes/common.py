"""What every resource under /api/v1 shares: token dependencies, paths, paging, links."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from sqlalchemy import Select
from starlette.datastructures import URL

from campaigns import api as rules
from campaigns import chapters
from campaigns.chapters import Scope
from campaigns.clock import Clock
from storage import api as store
from storage.db import Database
from storage.models import ApiToken
from web.api import auth
from web.api.schemas import MAX_ID
from web.pages import absolute

PREFIX = "/api/v1"
Read = Annotated[ApiToken, Depends(auth.read)]
Write = Annotated[ApiToken, Depends(auth.write)]
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
PageNo = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number.")]
After = Annotated[int | None, Query(ge=0, le=MAX_ID, description=(
    "Keyset cursor: list from after this id (the `next` link sets it)."))]
PerPage = Annotated[int, Query(ge=1, le=100, description="Items per page (at most 100).")]


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def clock_of(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at else None


def href(request: Request, path: str) -> dict[str, str]:
    return {"href": request.app.state.settings.base_url + PREFIX + path}


async def paged(
    request: Request, stmt: Select[Any], page: int, per_page: int, key: str,
    shape: Callable[[Any], dict[str, Any]],
    extra: Callable[[Any, Sequence[Any]], Any] | None = None,
    *, after: int | None = None, keyset: Any = None,
) -> dict[str, Any]:
    """One OSDI page. With `keyset` (an ascending id column the statement is ordered by),
    the `next` link carries `after=<last id>` as well as the page number, and a request
    with `after` reads from there instead of skipping (page - 1) * per_page rows: a deep
    page costs what the first does, and rows added meanwhile never shift one twice."""
    async with database(request).session() as session:
        if keyset is not None and after is not None:
            total, rows = await store.page(session, stmt, offset=0, limit=per_page,
                                           keyset=(keyset, after))
        else:
            total, rows = await store.page(session, stmt, offset=(page - 1) * per_page,
                                           limit=per_page)
        if extra is not None:
            await extra(session, rows)
    more = ({"after": getattr(rows[-1], keyset.key)} if keyset is not None and rows
            else {})
    return page_of(request, [shape(r) for r in rows], total, page, per_page, key,
                   next_ok=keyset is None or bool(rows), **more)


def page_of(request: Request, items: list[dict[str, Any]], total: int, page: int,
            per_page: int, key: str, *, next_ok: bool = True,
            **more: Any) -> dict[str, Any]:
    """The OSDI page around `items` (already this page's): counts and links; `more` is
    added to the `next` link's query (a keyset cursor)."""
    total_pages = max(1, -(-total // per_page))
    links: dict[str, Any] = {"self": {"href": here(request, request.url)}}
    if page < total_pages and next_ok:
        links["next"] = {"href": here(request, request.url.include_query_params(
            page=page + 1, per_page=per_page, **more))}
    if page > 1:
        links["prev"] = {"href": here(request, request.url.include_query_params(
            page=min(page - 1, total_pages), per_page=per_page))}
    return {
        "total_records": total,
        "total_pages": total_pages,
        "page": page,
        "per_page": per_page,
        "_links": links,
        "_embedded": {key: items},
    }


async def scope_of(request: Request, token: ApiToken) -> Scope:
    """The token's scope: that of the organiser who created it (campaigns.chapters)."""
    async with database(request).session() as session:
        return await chapters.scope_of_actor(session, rules.actor(token))


async def national_only(request: Request, token: ApiToken, what: str) -> None:
    """Creating, opening and closing national objects: refused (audited) for a token of
    a scoped organiser."""
    await chapters.require_national(database(request), clock_of(request),
                                    actor=rules.actor(token), what=what)


async def out_of_scope(request: Request, token: ApiToken, what: str) -> chapters.OutOfScope:
    """The error for one row outside the token's chapters, the refusal audited."""
    return await chapters.refuse(database(request), clock_of(request),
                                 actor=rules.actor(token), what=what)


async def in_scope(request: Request, token: ApiToken, region: str | None,
                   supporter_id: int | None, what: str) -> None:
    """Refuse (audited) one row of a person outside the token's chapters: the row's
    region, the person's district now."""
    scope = await scope_of(request, token)
    if scope.national:
        return
    person = None
    if supporter_id is not None:
        async with database(request).session() as session:
            person = await store.person(session, supporter_id)
    if not scope.covers(region, person.district if person is not None else None):
        raise await out_of_scope(request, token, what)


async def person_in_scope(request: Request, token: ApiToken, person_id: int) -> None:
    """Acting for one person (a signature, an RSVP): they must be in the token's chapters."""
    scope = await scope_of(request, token)
    if scope.national:
        return
    async with database(request).session() as session:
        person = await store.person(session, person_id)
    if person is not None and not scope.covers(person.region, person.district):
        raise await out_of_scope(request, token, f"supporter:{person_id}")


async def get_row(request: Request, model: Any, row_id: int, what: str) -> Any:
    async with database(request).session() as session:
        row = await store.get(session, model, row_id)
    if row is None:
        raise rules.NotFound(f"no {what} {row_id}")
    return row


def here(request: Request, url: URL | None = None) -> str:
    """A link to `url` (the request's own by default) on NALGAE_PUBLIC_URL: the path and
    query asked for, never the Host the client sent."""
    url = url or request.url
    return absolute(request, url.path + (f"?{url.query}" if url.query else ""))
