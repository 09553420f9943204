"""Surveys on the dashboard: the list, a survey from pasted YAML/JSON (errors name the
line), its page with live per-question results (raw and weighted), open/close."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup

from campaigns import surveys
from campaigns.errors import NotFound
from campaigns.i18n import t_plain
from campaigns.polls import MIN_GROUP
from campaigns.regions import region_name
from storage import dashboard as queries
from storage import surveys as survey_store
from web import auth, charts
from web.pages import NO_REGION, RULE_ERRORS, back, database, error_text, language, live_html, page
from web.scope import national_only, scope_of

router = APIRouter(include_in_schema=False)
TEXTS_SHOWN = 50  # free-text answers listed on the page; the export has them all


async def _list_page(request: Request, *, error: str | None = None, source: str = "",
                     status_code: int = 200) -> Response:
    me = await auth.require(request)
    areas = (await scope_of(request, me)).region_filter  # a scoped organiser's respondents
    async with database(request).session() as s:
        rows = [(v, await survey_store.respondent_count(s, v.id, areas))
                for v in await survey_store.surveys(s)]
        campaign_rows = await queries.campaigns(s)
    return page(request, "surveys.html", {"surveys": rows, "campaigns": campaign_rows,
                                          "error": error, "source": source},
                status_code=status_code)


@router.get("/surveys", response_class=HTMLResponse)
async def survey_list(request: Request) -> Response:
    await auth.require(request)
    return await _list_page(request, error=request.query_params.get("error"))


@router.post("/surveys")
async def survey_create(request: Request) -> Response:
    form = await request.form()
    me = await auth.require_change(request, form)
    source = str(form.get("source") or "")
    try:
        await national_only(request, me, "survey.create")
        async with database(request).session() as s:
            created = await surveys.create_survey(
                s, campaign_slug=str(form.get("campaign") or ""), source=source,
                slug=str(form.get("slug") or "") or None,
                status="open" if form.get("open_now") else "draft",
                clock=request.app.state.clock, actor=me.actor)
    except RULE_ERRORS as exc:
        # The page comes back with the pasted text and the error (which names the line),
        # so nothing typed is lost.
        return await _list_page(request, error=error_text(exc, language(request)),
                                source=source, status_code=422)
    return RedirectResponse(f"/surveys/{created.slug}", 303)


def _chart(q: dict[str, Any], b: dict[str, Any], lang: str, chart_id: str,
           weighted: bool) -> Markup:
    items = []
    for option in b.get("options", []):
        label = str(option.get(f"label_{lang}") or option["value"])
        share = option["weighted_share"]
        if weighted:
            items.append((label, float(Fraction(option["weighted"])),
                          f"{float(Fraction(option['weighted'])):g} "
                          f"({float(Fraction(share or 0)) * 100:.0f}%)"))
        else:
            pct = option["count"] / b["respondents"] * 100 if b["respondents"] else 0.0
            items.append((label, float(option["count"]), f"{option['count']:,} ({pct:.0f}%)"))
    return charts.hbars(items, chart_id=chart_id, title=q[f"text_{lang}"],
                        color="#7a4fd6" if weighted else "#2d6cdf")


def _cross_table(result: dict[str, Any], lang: str) -> dict[str, Any] | None:
    """The cross-tab as rows of cells for the template: (label, respondents, cells or
    None when withheld); a cell is a column option's count and weighted share."""
    cross = result.get("crosstab")
    if not cross:
        return None
    by_key = {q["key"]: q for q in result["questions"]}
    rq, cq = by_key[cross["rows"]], by_key[cross["columns"]]
    columns = [o.get(f"label_{lang}", o["value"]) for o in cq["overall"].get("options", [])]
    rows = []
    for label in cross["row_labels"]:
        group = cross["groups"][label["value"]]
        cells = None
        if not group.get("withheld"):
            cells = [f"{o['count']:,} ({float(Fraction(o['weighted_share'])) * 100:.0f}%)"
                     if o["weighted_share"] is not None else f"{o['count']:,}"
                     for o in group.get("options", [])]
            if group.get("mean") is not None:
                cells.append(f"{float(Fraction(group['mean'])):.2f}")
        rows.append((label.get(f"label_{lang}", label["value"]), group["respondents"], cells))
    if cq["overall"].get("mean") is not None:
        columns.append(t_plain(lang, "Average"))
    return {"rows_text": rq[f"text_{lang}"], "columns_text": cq[f"text_{lang}"],
            "rows_key": cross["rows"], "columns_key": cross["columns"],
            "columns": columns, "rows": rows, "min": MIN_GROUP}


async def results_fragment(request: Request, slug: str, lang: str,
                           areas: list[str] | None = None) -> str:
    """The results block of one survey as HTML (also what the live stream sends); the
    cross-tab's questions come from `?rows=&columns=` (else the first two that can).
    ``areas``: a scoped organiser's chapters (their answers only)."""
    cross = (request.query_params.get("rows") or None,
             request.query_params.get("columns") or None)
    async with database(request).session() as s:
        try:
            result = await surveys.results(s, slug, cross=cross, areas=areas)
        except NotFound:
            raise HTTPException(404, "no such survey or question") from None
        except RULE_ERRORS:
            # A pair that cannot cross: the default.
            result = await surveys.results(s, slug, areas=areas)
    weighted = any(w != "1" for w in result["weights"].values())
    questions = []
    for n, q in enumerate(result["questions"], 1):
        entry: dict[str, Any] = {"n": n, "key": q["key"], "text": q[f"text_{lang}"],
                                 "kind": q["kind"]}
        overall = q.get("overall")
        if overall is not None:
            entry["respondents"] = overall["respondents"]
            entry["mean"] = overall.get("weighted_mean" if weighted else "mean")
            if overall.get("options"):
                entry["raw"] = _chart(q, overall, lang, f"chart-{q['key']}-raw", False)
                if weighted:
                    entry["weighted"] = _chart(q, overall, lang, f"chart-{q['key']}-weighted",
                                               True)
            entry["regions"] = [
                (region_name(code, lang) if code else t_plain(lang, NO_REGION), b["respondents"])
                for code, b in q.get("by_region", {}).items()]
        else:
            answers = q.get("answers", [])
            entry["texts"], entry["more"] = answers[:TEXTS_SHOWN], max(
                0, len(answers) - TEXTS_SHOWN)
        questions.append(entry)
    template = request.app.state.templates.env.get_template("survey_results.html")

    def translate(msgid: str, **params: Any) -> str:
        return t_plain(lang, msgid, **params)

    return str(template.render(_=translate, result=result, questions=questions,
                               weighted=weighted, cross=_cross_table(result, lang),
                               mean=lambda v: f"{float(Fraction(v)):.2f}" if v else "-"))


@router.get("/surveys/{slug}", response_class=HTMLResponse)
async def survey_page(request: Request, slug: str) -> Response:
    me = await auth.require(request)
    areas = (await scope_of(request, me)).region_filter
    lang = language(request)
    async with database(request).session() as s:
        found = await survey_store.survey_by_slug(s, slug)
    if found is None:
        raise HTTPException(404, "no such survey")
    return page(request, "survey.html", {
        "survey": found, "title": found.title_en if lang == "en" else found.title_ko,
        "results": Markup(await results_fragment(request, slug, lang, areas)),
        "error": request.query_params.get("error")})


@router.get("/surveys/{slug}/live")
async def survey_live(request: Request, slug: str) -> Response:
    me = await auth.require(request)
    areas = (await scope_of(request, me)).region_filter
    lang = language(request)
    return await live_html(request, lambda: results_fragment(request, slug, lang, areas))


@router.post("/surveys/{slug}/{action}")
async def survey_action(request: Request, slug: str, action: str) -> Response:
    form = await request.form()
    me = await auth.require_change(request, form)
    clock = request.app.state.clock
    change = {"open": surveys.open_survey, "close": surveys.close_survey}.get(action)
    if change is None:
        raise HTTPException(404)
    try:
        await national_only(request, me, f"survey.{action}:{slug}")
        async with database(request).session() as s:
            await change(s, slug, actor=me.actor, clock=clock)
    except RULE_ERRORS as exc:
        return back(f"/surveys/{slug}", error=error_text(exc, language(request)))
    return back(f"/surveys/{slug}")
