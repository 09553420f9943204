"""The dashboard's home page: the campaigns.dashboard overview with its charts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from campaigns import dashboard
from campaigns import home as open_now_rules
from campaigns.dashboard import Overview
from campaigns.i18n import _, t_plain
from campaigns.regions import region_name
from campaigns.times import local_display
from storage import dashboard as queries
from storage.home import OpenItem
from web import auth, charts
from web.pages import NO_REGION, database, language, render

router = APIRouter(include_in_schema=False)

_EXTRA = (_("supporter"), _("member"))
OPEN_NOW = 20
# Per kind: its name, what its live count counts, and its dashboard page.
KIND_LABELS = {
    "petition": (_("Petition"), _("Signatures"), "/petitions/"),
    "poll": (_("Poll"), _("Voters"), "/polls/"),
    "event": (_("Event"), _("Going"), "/events/"),
    "survey": (_("Survey"), _("Respondents"), "/surveys/"),
}


def open_now_rows(items: list[OpenItem], lang: str) -> list[dict[str, Any]]:
    """The "open now" table: what supporters can take part in, newest first."""
    rows = []
    for item in items:
        kind, counted, base = KIND_LABELS[item.kind]
        rows.append({
            "kind": item.kind, "kind_label": t_plain(lang, kind),
            "title": item.title_en if lang == "en" and item.title_en else item.title_ko,
            "href": base + item.slug, "count": f"{item.count:,}",
            "counted": t_plain(lang, counted),
            "closes": local_display(item.closes_at, lang) if item.closes_at else "",
        })
    return rows


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

    # Counters kept on write (storage/supporter_counts): a few rows to sum at any size,
    # so every view is exact and current (no cache).
    async with database(request).session() as session:
        overview = await dashboard.overview(session, request.app.state.clock)
        reach = await queries.reachability(session)
    extras = overview_extras(overview, reach, lang)
    # Not cached: one cheap statement (the home card's), and its counts are live.
    async with database(request).session() as session:
        open_now = await open_now_rules.open_items(session, request.app.state.clock, None,
                                                   limit=OPEN_NOW)
    return render(request, lang, "dashboard.html", {
        "overview": overview, "me": me, "csrf": me.csrf, **extras,
        "open_now": open_now_rows(open_now.items, lang), "open_more": open_now.more,
        "region_name": lambda code: region_name(code, lang) if code else t_plain(
            lang, NO_REGION),
    })
