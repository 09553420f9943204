"""The HTTP API (/api/v1, OpenAPI at /api/openapi.json), its error format and /metrics.

`install(app)` is called by web.app.create_app, so every web process serves them.
"""

from __future__ import annotations

from fastapi import FastAPI

from web.api import errors, metrics
from web.api.routes import routers


def install(app: FastAPI) -> None:
    """Mount the API router, its error handlers, the latency middleware and /metrics."""
    errors.install(app)
    metrics.install(app)
    for router in routers():
        app.include_router(router)
