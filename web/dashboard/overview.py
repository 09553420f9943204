"""The dashboard's home page: the campaigns.dashboard overview with its charts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import dashboard
from campaigns.dashboard import Overview
from campaigns.i18n import _, t_plain
from campaigns.regions import region_name
from storage import dashboard as queries
from web import auth, charts
from web.pages import NO_REGION, database, language, render

router = APIRouter(include_in_schema=False)

_EXTRA = (_("supporter"), _("member"))


async def overview_extras(session: AsyncSession, overview: Overview, lang: str
                          ) -> dict[str, Any]:
    """What the overview adds to campaigns.dashboard: charts, tiers, reachable vs blocked."""
    reach = await queries.reachability(session)
    regions = charts.hbars(
        [(region_name(r.code, lang) if r.code else t_plain(lang, NO_REGION), r.count,
          f"{r.count:,}") for r in overview.regions if r.count],
        chart_id="chart-regions", title=t_plain(lang, _("Active supporters by region")))
    days = charts.columns([(d.day.strftime("%m-%d"), d.count) for d in overview.days],
                          chart_id="chart-days", title=t_plain(lang, _("Sign-ups by day")))
    return {"reach": reach, "chart_regions": regions, "chart_days": days,
            "tiers": {"member": overview.members, "supporter": overview.active - overview.members}}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home(request: Request) -> Response:
    me = await auth.require(request)  # supporter counts are for organisers only
    lang = language(request)
    async with database(request).session() as session:
        overview = await dashboard.overview(session, request.app.state.clock)
        extras = await overview_extras(session, overview, lang)
    return render(request, lang, "dashboard.html", {
        "overview": overview, "me": me, "csrf": me.csrf, **extras,
        "region_name": lambda code: region_name(code, lang) if code else t_plain(
            lang, NO_REGION),
    })
