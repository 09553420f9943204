"""/surveys (OSDI questions and answers): surveys, their questions, answers, results.

An anonymous survey's answers are listed too, but as OSDI answers without a person: the
rows carry no supporter (and were mixed in batches), so nothing here can name one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from campaigns import api as rules
from campaigns import surveys
from storage import surveys as store
from storage.models import Survey, SurveyAnswer
from web.api.routes.common import (
    PREFIX,
    PageNo,
    PerPage,
    Read,
    RowId,
    clock_of,
    database,
    get_row,
    here,
    href,
    iso,
    paged,
    scope_of,
)
from web.api.schemas import MAX_ID

router = APIRouter(prefix=PREFIX, tags=["api"])


def question_json(request: Request, s: Survey, position: int, q: dict[str, Any]) -> dict[str, Any]:
    """One survey question in the shape of an OSDI question."""
    out: dict[str, Any] = {
        "identifiers": [f"nalgae:{s.id}:{q['key']}"],
        "name": q["key"],
        "title": q["text"]["ko"],
        "title_en": q["text"]["en"],
        "question_type": q["kind"],
        "position": position,
        "required": q.get("required", True),
        "_links": {"nalgae:survey": href(request, f"/surveys/{s.id}")},
    }
    if q.get("options"):
        out["responses"] = [{"key": str(i), "name": o["value"], "title": o["ko"],
                             "title_en": o["en"]} for i, o in enumerate(q["options"])]
    for bound in ("min", "max"):
        if q.get(bound) is not None:
            out[bound] = q[bound]
    if q.get("when"):
        out["condition"] = q["when"]
    return out


def survey_json(request: Request, s: Survey) -> dict[str, Any]:
    questions = s.definition.get("questions", [])
    return {
        "identifiers": [f"nalgae:{s.id}"],
        "id": s.id,
        "name": s.slug,
        "title": s.title_ko,
        "title_en": s.title_en,
        "anonymous": s.anonymous,
        "locked": s.locked,
        "weights": s.weights,
        "status": s.status,
        "closes_at": iso(s.closes_at),
        "created_date": iso(s.created_at),
        "modified_date": iso(s.updated_at),
        "question_count": len(questions),
        "_links": {"self": href(request, f"/surveys/{s.id}"),
                   "osdi:questions": href(request, f"/surveys/{s.id}/questions"),
                   "osdi:answers": href(request, f"/surveys/{s.id}/answers"),
                   "nalgae:results": href(request, f"/surveys/{s.id}/results")},
    }


def answer_json(request: Request, a: SurveyAnswer, *, identities: bool = False,
                anonymous: bool = False) -> dict[str, Any]:
    """An answer; its person only for an identities token (as for polls), and never for an
    anonymous survey (its rows carry no supporter). An anonymous survey's answers leave
    out tier and weight too (the weight follows the tier): few members of one tier
    would point at who answered; the results still count them, in aggregate."""
    links: dict[str, Any] = {
        "osdi:question": href(request, f"/surveys/{a.survey_id}/questions")}
    if identities and a.supporter_id is not None:
        links["osdi:person"] = href(request, f"/people/{a.supporter_id}")
    out: dict[str, Any] = {
        "identifiers": [f"nalgae:{a.response_key}:{a.question}"],
        "response": a.response_key,
        "question": a.question,
        "value": a.value,
        "responses": a.value.split(",") if a.value else [],
    }
    if not anonymous:
        out.update(tier=a.tier, weight=a.weight)
    out["_links"] = links
    return out


@router.get("/surveys", summary="Surveys")
async def list_surveys(request: Request, token: Read, page: PageNo = 1, per_page: PerPage = 25,
                       campaign_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                       ) -> dict[str, Any]:
    return await paged(request, store.surveys_query(campaign_id), page, per_page,
                        "nalgae:surveys", lambda s: survey_json(request, s))


@router.get("/surveys/{survey_id}", summary="One survey")
async def get_survey(request: Request, token: Read, survey_id: RowId) -> dict[str, Any]:
    return survey_json(request, await get_row(request, Survey, survey_id, "survey"))


@router.get("/surveys/{survey_id}/questions", summary="A survey's questions (OSDI questions)")
async def list_questions(request: Request, token: Read, survey_id: RowId) -> dict[str, Any]:
    s = await get_row(request, Survey, survey_id, "survey")
    questions = [question_json(request, s, i, q)
                 for i, q in enumerate(s.definition.get("questions", []), 1)]
    return {"total_records": len(questions), "_links": {"self": {"href": here(request)}},
            "_embedded": {"osdi:questions": questions}}


@router.get("/surveys/{survey_id}/answers",
            summary="Answers (OSDI answers); an anonymous survey's name no person")
async def list_answers(request: Request, token: Read, survey_id: RowId, page: PageNo = 1,
                       per_page: PerPage = 25) -> dict[str, Any]:
    survey = await get_row(request, Survey, survey_id, "survey")
    identities = rules.sees_identities(token)

    async def audit(session: Any, rows: Any) -> None:
        named = [a.supporter_id for a in rows if a.supporter_id is not None]
        if identities and named:
            await rules.audit_identities(session, token, survey_id=survey_id,
                                         clock=clock_of(request),
                                         supporter_ids=sorted(set(named)))

    areas = (await scope_of(request, token)).region_filter  # a scoped token: its chapters
    return await paged(request, store.answers_query(survey_id, areas), page, per_page,
                        "osdi:answers",
                        lambda a: answer_json(request, a, identities=identities,
                                              anonymous=survey.anonymous), extra=audit)


@router.get("/surveys/{survey_id}/results",
            summary="Results per question, raw and weighted (exact, as strings)")
async def survey_results(request: Request, token: Read, survey_id: RowId) -> dict[str, Any]:
    s = await get_row(request, Survey, survey_id, "survey")
    areas = (await scope_of(request, token)).region_filter
    async with database(request).session() as session:
        return await surveys.results(session, s.slug, areas=areas)
