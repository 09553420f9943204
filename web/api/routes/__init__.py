"""The JSON resources under /api/v1, named and shaped after OSDI where OSDI has a name.

Collections are HAL-ish as in OSDI: ``{"total_records", "total_pages", "page",
"per_page", "_links": {"self", "next", "prev"}, "_embedded": {"osdi:people": [...]}}``.
Handlers are thin: parse, call one rule in campaigns/, shape the answer. One module
per resource, each an APIRouter; `build_router` puts them under /api/v1.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from web.api.routes import broadcasts, campaigns, people, petitions, polls, signatures
from web.api.routes.common import PREFIX, Read, href

RESOURCES = (people, campaigns, petitions, signatures, polls, broadcasts)


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
            "nalgae:campaigns": href(request, "/campaigns"),
            "nalgae:broadcasts": href(request, "/broadcasts"),
            "docs": {"href": str(request.base_url).rstrip("/") + "/api/openapi.json"},
        },
    }


def build_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["api"])
    router.add_api_route("", entry, methods=["GET"], summary="Entry point (OSDI AEP)")
    for resource in RESOURCES:
        router.include_router(resource.router)
    return router
