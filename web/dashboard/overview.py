"""The dashboard's home page: the campaigns.dashboard overview with its charts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from campaigns import dashboard
from campaigns import home as open_now_rules
from campaigns.dashboard import DistrictCounts, Overview, has_districts
from campaigns.i18n import _, t_plain
from campaigns.polls import MIN_GROUP
from campaigns.regions import district_name, region_name
from campaigns.times import local_display
from storage import dashboard as queries
from storage.home import OpenItem
from web import auth, charts
from web.pages import NO_REGION, database, language, render, slow_summary
from web.scope import scope_of

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


async def _districts(request: Request, province: str, lang: str) -> dict[str, Any]:
    async def fetch() -> DistrictCounts:
        async with database(request).session() as session:
            return await dashboard.supporters_by_district(session, province)

    counts = await slow_summary(request, f"districts:{province}", fetch)
    return district_chart(counts, lang, chart_id="chart-districts", title=t_plain(
        lang, _("Active supporters in {region} by city, county or district"),
        region=region_name(province, lang)))


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


NO_DISTRICT = _("No city, county or district given")


def drill_down(request: Request) -> str | None:
    """The province whose districts a chart should show (``?region=seoul``), if it has any."""
    code = request.query_params.get("region")
    return code if code and has_districts(code) else None


def district_chart(counts: DistrictCounts, lang: str, *, chart_id: str,
                   title: str) -> dict[str, Any]:
    """A province's districts as bars, for the templates' drill-down section."""
    chart = charts.hbars(
        [(district_name(counts.province, r.code, lang) if r.code else t_plain(lang, NO_DISTRICT),
          r.count, f"{r.count:,}") for r in counts.rows],
        chart_id=chart_id, title=title)
    return {"province": counts.province, "chart": chart, "withheld": counts.withheld,
            "min": MIN_GROUP, "total": counts.total, "title": title}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home(request: Request) -> Response:
    me = await auth.require(request)  # supporter counts are for organisers only
    lang = language(request)
    areas = (await scope_of(request, me)).region_filter  # a scoped organiser's chapters

    # Counters kept on write (storage/supporter_counts): a few rows to sum at any size,
    # so every view is exact and current (no cache). A chapter with districts among its
    # areas is counted from its own rows (the counters know provinces).
    async with database(request).session() as session:
        overview = await dashboard.overview(session, request.app.state.clock, areas=areas)
        reach = await queries.reachability(session, areas=areas)
    extras = overview_extras(overview, reach, lang)
    # Not cached: one cheap statement (the home card's), and its counts are live.
    async with database(request).session() as session:
        open_now = await open_now_rules.open_items(session, request.app.state.clock, None,
                                                   limit=OPEN_NOW)
    # A chapter organiser gets no drill-down: its counts are the whole province's (as on
    # the petition page; their own areas are already the chart above).
    province = drill_down(request) if areas is None else None
    if province is not None:
        extras["districts"] = await _districts(request, province, lang)
    return render(request, lang, "dashboard.html", {
        "overview": overview, "me": me, "csrf": me.csrf, **extras, "has_districts": has_districts,
        "open_now": open_now_rows(open_now.items, lang), "open_more": open_now.more,
        "region_name": lambda code: region_name(code, lang) if code else t_plain(
            lang, NO_REGION),
    })
