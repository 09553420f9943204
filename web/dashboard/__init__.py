"""The organiser dashboard: one router per feature, included here in one.

Server-rendered pages; the live parts are Server-Sent Events that the small script
in web/static/live.js applies. Every change is a POST that `auth.require_change`
checks (session, CSRF token, role) before anything is touched; the rules it calls
in campaigns/ write the audit log. What the pages share is in web/pages.py.
"""

from __future__ import annotations

from fastapi import APIRouter

from web.dashboard import (
    broadcasts,
    chapters,
    events,
    ideas,
    login,
    overview,
    petitions,
    polls,
    sources,
    supporters,
    surveys,
)

FEATURES = (overview, login, petitions, polls, events, surveys, ideas, broadcasts, supporters,
            sources, chapters)


def dashboard_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    for feature in FEATURES:
        router.include_router(feature.router)
    return router
