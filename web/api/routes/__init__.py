"""The JSON resources under /api/v1, named and shaped after OSDI where OSDI has a name.

Collections are HAL-ish as in OSDI: ``{"total_records", "total_pages", "page",
"per_page", "_links": {"self", "next", "prev"}, "_embedded": {"osdi:people": [...]}}``.
Handlers are thin: parse, call one rule in campaigns/, shape the answer. One module
per resource, each an APIRouter under /api/v1; `routers()` lists them for the app.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from web.api.routes import (
    broadcasts,
    campaigns,
    events,
    ideas,
    people,
    petitions,
    polls,
    signatures,
    sources,
    surveys,
)
from web.api.routes.common import PREFIX, Read, href

RESOURCES = (people, campaigns, petitions, signatures, polls, events, surveys, ideas,
             broadcasts, sources)


async def entry(request: Request, token: Read) -> dict[str, Any]:
    return {
        "motd": "nalgae HTTP API",
        "vendor_name": "nalgae",
        "osdi_version": "1.1",
        "_links": {
            "self": href(request, ""),
            "osdi:people": href(request, "/people"),
            "osdi:petitions": href(request, "/petitions"),
            "osdi:questions": href(request, "/polls"),
            "osdi:events": href(request, "/events"),
            "nalgae:campaigns": href(request, "/campaigns"),
            "nalgae:broadcasts": href(request, "/broadcasts"),
            "nalgae:surveys": href(request, "/surveys"),
            "nalgae:ideas": href(request, "/ideas"),
            "nalgae:sources": href(request, "/sources"),
            "nalgae:inviters": href(request, "/inviters"),
            "docs": {"href": request.app.state.settings.base_url + "/api/openapi.json"},
        },
    }


def routers() -> list[APIRouter]:
    """The entry point and every resource, in order. Each is included in the app itself,
    not in a parent router: the latency metric names a request by its route's template,
    which is only the full path for a router included directly."""
    entry_router = APIRouter(prefix=PREFIX, tags=["api"])
    entry_router.add_api_route("", entry, methods=["GET"], summary="Entry point (OSDI AEP)")
    return [entry_router, *(resource.router for resource in RESOURCES)]
