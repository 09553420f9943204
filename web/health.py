"""/healthz for load balancers, and an empty /favicon.ico."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from storage.db import Database
from web.pages import database

log = logging.getLogger(__name__)
HEALTH_TIMEOUT = 5.0

router = APIRouter(include_in_schema=False)


async def _ping(db: Database) -> None:
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


@router.get("/healthz", include_in_schema=False)
async def healthz(request: Request) -> JSONResponse:
    """200 when the database answers; 503 otherwise (load balancers take it out)."""
    try:
        await asyncio.wait_for(_ping(database(request)), HEALTH_TIMEOUT)
    except Exception as exc:
        # The exception text may contain the database URL; log its type only.
        log.warning("health check: database unreachable (%s)", type(exc).__name__)
        return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    return Response(status_code=204)
