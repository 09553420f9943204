"""The dashboard's home page: the campaigns.dashboard overview with its charts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from campaigns import dashboard
from campaigns.dashboard import Overview
from campaigns.i18n import _, t_plain
from campaigns.regions import region_name
from storage import dashboard as queries
from web import auth, charts
from web.pages import NO_REGION, database, language, render, slow_summary

router = APIRouter(include_in_schema=False)

_EXTRA = (_("supporter"), _("member"))


def overview_extras(overview: Overview, reach: dict[str, int], lang: str) -> dict[str, Any]:
    """What the overview adds to campaigns.dashboard: charts, tiers, reachable vs blocked."""
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


    async def counts() -> tuple[Overview, dict[str, int]]:
        async with database(request).session() as session:
            return (await dashboard.overview(session, request.app.state.clock),
                    await queries.reachability(session))

    # Every count here reads every supporter: about 4 s at a million. Organisers
    # opening the home page share one reading for a while (see slow_summary).
    overview, reach = await slow_summary(request, "overview", counts)
    extras = overview_extras(overview, reach, lang)
    return render(request, lang, "dashboard.html", {
        "overview": overview, "me": me, "csrf": me.csrf, **extras,
        "region_name": lambda code: region_name(code, lang) if code else t_plain(
            lang, NO_REGION),
    })
