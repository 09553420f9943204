"""Surveys: definitions from YAML/JSON, the question flow, typed answers, weighted results.

A survey is an ordered list of questions (single / multiple choice, scale, number,
short / long text), each required or skippable and optionally shown only when an
earlier answer matches (equals / not_equals / any_of / answered). Every text has
Korean and English.

The flow is driven by the stored `survey_progress` row, never by memory or by
`supporter.pending_input`: the person can leave, run /sign, come back tomorrow, and
carry on where they were. `path` is the stack of questions shown (Back pops it);
answers of questions that a changed earlier answer hides are dropped before the
summary, so a submitted response is always consistent with the conditions.

Anonymous surveys work like secret ballots: on submission the progress row is
deleted, "has answered" is recorded apart, and the answers are written under a
random key with no supporter id, first into `survey_answer_pending` and then, by the
mixing tick, into `survey_answer` in shuffled batches (as poll ballots are mixed), so
no insert order links a response to its submitter. Such a response cannot be edited.
Results are exact, raw and weighted by tier with the poll weights.
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import partial
from random import Random
from typing import Any, Protocol

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import inputs
from campaigns import webhook_events as events
from campaigns.clock import Clock
from campaigns.errors import Conflict, NotFound, RuleError
from campaigns.i18n import LANGUAGES, _, normalise_language, t, t_plain
from campaigns.people import ONBOARDING_STEPS, REDISTRICT, Person
from campaigns.polls import TIERS, exact, groups_json, parse_weights, rounded
from campaigns.regions import REGION_CODES, region_name
from campaigns.replies import Button, Outgoing, Reply
from campaigns.signup import is_stop_word
from campaigns.ticks import TickContext
from campaigns.times import parse_local
from storage import petitions as petition_store
from storage import supporters
from storage import surveys as store
from storage.db import Database
from storage.models import Supporter, Survey
from storage.surveys import ProgressRow

KINDS: tuple[str, ...] = ("single", "multiple", "scale", "number", "short_text", "long_text")
CHOICE_KINDS = ("single", "multiple")
OPERATORS: tuple[str, ...] = ("equals", "not_equals", "any_of", "answered")
MAX_QUESTIONS = 40
MAX_OPTIONS = 10  # the multiple-choice selection travels as a 10-bit mask in callback data
TEXT_LIMITS = {"short_text": 200, "long_text": 2000}
REMIND_AFTER = timedelta(hours=24)
MIX_BATCH = 10  # anonymous responses are mixed in groups of at least this many (as ballots)
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_LINE = "__line__"


# --- definitions ------------------------------------------------------------------------------

class DefinitionError(RuleError):
    """A survey file refused, with the line (1-based) where the problem is."""

    def __init__(self, line: int, problem: str, /, **params: Any) -> None:
        super().__init__(_("Line {line}: {problem}"), line=line, problem=problem, **params)
        self.line = line
        self.problem = problem

    def _params(self, lang: str) -> dict[str, Any]:
        inner = {k: v for k, v in self.params.items() if k not in ("line", "problem")}
        return {"line": self.line, "problem": t_plain(lang, self.problem, **inner)}


class _LineLoader(yaml.SafeLoader):
    """Remembers the line of every mapping, so errors can point at it."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    out = {str(k): v for k, v in mapping.items()}
    out[_LINE] = node.start_mark.line + 1
    for key_node, _value in node.value:
        out[f"{_LINE}{key_node.value}"] = key_node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def _line(node: Mapping[str, Any], key: str | None = None) -> int:
    if key is not None and f"{_LINE}{key}" in node:
        return int(node[f"{_LINE}{key}"])
    return int(node.get(_LINE, 1))


def _text(node: Mapping[str, Any], key: str, *, required: bool = True,
          limit: int = 1000) -> dict[str, str] | None:
    """A `{ko: ..., en: ...}` text; both languages are required."""
    value = node.get(key)
    line = _line(node, key)
    if value is None:
        if required:
            raise DefinitionError(line, _("“{field}” is missing."), field=key)
        return None
    if not isinstance(value, Mapping):
        raise DefinitionError(line, _("“{field}” needs a Korean and an English text "
                                      "(ko: and en:)."), field=key)
    out = {}
    for lang in LANGUAGES:
        text = value.get(lang)
        if not isinstance(text, str) or not text.strip():
            raise DefinitionError(_line(value, lang) if lang in value else _line(value),
                                  _("“{field}” has no {lang} text."), field=key, lang=lang)
        if len(text) > limit:
            raise DefinitionError(_line(value, lang), _("“{field}” is longer than {limit} "
                                                        "characters."), field=key, limit=limit)
        try:
            # The input gate petitions use: no NUL, no bidi overrides or invisible marks.
            out[lang] = inputs.body(text, key, limit) or ""
        except RuleError as exc:
            raise DefinitionError(_line(value, lang), exc.msgid, **exc.params) from None
        if not out[lang]:
            raise DefinitionError(_line(value, lang), _("“{field}” has no {lang} text."),
                                  field=key, lang=lang)
    return out


def _int(node: Mapping[str, Any], key: str, default: int | None = None) -> int | None:
    value = node.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise DefinitionError(_line(node, key), _("“{field}” must be a whole number."),
                              field=key)
    return value


def _number(node: Mapping[str, Any], key: str) -> str | None:
    value = node.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DefinitionError(_line(node, key), _("“{field}” must be a number."), field=key)
    parsed = parse_number(str(value))
    if parsed is None:
        raise DefinitionError(_line(node, key), _("“{field}” must be a number."), field=key)
    return parsed


def _question(node: Any, position: int, earlier: dict[str, dict[str, Any]],
              later: set[str]) -> dict[str, Any]:
    if not isinstance(node, Mapping):
        raise DefinitionError(1, _("Question {number} is not a mapping."), number=position + 1)
    key = str(node.get("key") or f"q{position + 1}")
    if not _KEY.match(key):
        raise DefinitionError(_line(node, "key"), _("A question key is 1-40 letters, digits, "
                                                    "“-” or “_” (got “{key}”)."), key=key)
    if key in earlier:
        raise DefinitionError(_line(node, "key"), _("Two questions have the key “{key}”."),
                              key=key)
    kind = node.get("kind")
    if kind not in KINDS:
        raise DefinitionError(_line(node, "kind"), _("Unknown kind “{kind}”; kinds are "
                                                     "{kinds}."), kind=str(kind),
                              kinds=", ".join(KINDS))
    q: dict[str, Any] = {"key": key, "kind": kind, "text": _text(node, "text", limit=1000),
                         "required": bool(node.get("required", True))}
    if kind in CHOICE_KINDS:
        options = node.get("options")
        if not isinstance(options, list) or not 2 <= len(options) <= MAX_OPTIONS:
            raise DefinitionError(_line(node, "options"), _("A choice question needs 2 to "
                                                            "{max} options."), max=MAX_OPTIONS)
        q["options"] = []
        for i, option in enumerate(options):
            if not isinstance(option, Mapping):
                raise DefinitionError(_line(node, "options"), _("Option {number} needs ko: "
                                                                "and en: texts."), number=i + 1)
            label = _text({"option": option, _LINE: _line(option)}, "option", limit=100)
            assert label is not None
            value = str(option.get("value", i))
            q["options"].append({"value": value, **label})
        if len({o["value"] for o in q["options"]}) != len(q["options"]):
            raise DefinitionError(_line(node, "options"), _("Two options have the same "
                                                            "value."))
        if kind == "multiple":
            low = _int(node, "min", 1) or 0
            high = _int(node, "max", len(q["options"])) or 0
            if not 1 <= low <= high <= len(q["options"]):
                raise DefinitionError(_line(node, "min" if "min" in node else "max"),
                                      _("Picks must satisfy 1 ≤ min ≤ max ≤ the number of "
                                        "options."))
            q["min"], q["max"] = low, high
    elif kind == "scale":
        low, high = _int(node, "min", 1) or 0, _int(node, "max", 5) or 0
        if not (0 <= low < high <= 10 and high - low <= 10):
            raise DefinitionError(_line(node, "max" if "max" in node else _LINE),
                                  _("A scale runs between 0 and 10 (e.g. 1-5 or 0-10)."))
        q["min"], q["max"] = low, high
        labels = node.get("labels") or {}
        if not isinstance(labels, Mapping):
            raise DefinitionError(_line(node, "labels"), _("“labels” has low: and high:."))
        q["labels"] = {end: _text(labels, end, required=False, limit=60)
                       for end in ("low", "high")}
    elif kind == "number":
        q["min"], q["max"] = _number(node, "min"), _number(node, "max")
        if q["min"] is not None and q["max"] is not None and Decimal(q["min"]) > Decimal(
                q["max"]):
            raise DefinitionError(_line(node, "max"), _("“min” is above “max”."))
    else:
        limit = _int(node, "max_length", TEXT_LIMITS[kind])
        if limit is None or not 1 <= limit <= TEXT_LIMITS[kind]:
            raise DefinitionError(_line(node, "max_length"), _("“max_length” is 1 to {limit}."),
                                  limit=TEXT_LIMITS[kind])
        q["max_length"] = limit
    when = node.get("when")
    if when is not None:
        q["when"] = _condition(when, _line(node, "when"), earlier, later)
    return q


def _condition(when: Any, line: int, earlier: dict[str, dict[str, Any]],
               later: set[str]) -> dict[str, Any]:
    if not isinstance(when, Mapping) or not isinstance(when.get("question"), str | int):
        raise DefinitionError(line, _("“when” names an earlier question and one test, e.g. "
                                      "question: q1 and equals: yes."))
    ref = str(when["question"])
    line = _line(when, "question")
    if ref not in earlier:
        if ref in later:
            raise DefinitionError(line, _("The condition is on “{key}”, which comes later; a "
                                          "condition can only look at earlier questions."),
                                  key=ref)
        raise DefinitionError(line, _("The condition is on “{key}”, which is not a question "
                                      "of this survey."), key=ref)
    ops = [op for op in OPERATORS if op in when]
    if len(ops) != 1:
        raise DefinitionError(line, _("A condition has exactly one of {operators}."),
                              operators=", ".join(OPERATORS))
    op = ops[0]
    target = earlier[ref]
    if op == "answered":
        return {"question": ref, "op": op, "values": ["1" if when[op] else "0"]}
    raw = when[op]
    values = raw if isinstance(raw, list) else [raw]
    if op != "any_of" and isinstance(raw, list):
        raise DefinitionError(_line(when, op), _("Use any_of for a list of values."))
    out: list[str] = []
    for value in values:
        if target["kind"] in CHOICE_KINDS:
            index = next((i for i, o in enumerate(target["options"])
                          if o["value"] == str(value)), None)
            if index is None:
                raise DefinitionError(_line(when, op), _("“{value}” is not an option of "
                                                         "“{key}”."), value=str(value), key=ref)
            out.append(str(index))
        elif target["kind"] in ("scale", "number"):
            number = parse_number(str(value))
            if number is None:
                raise DefinitionError(_line(when, op), _("“{field}” must be a number."),
                                      field=op)
            out.append(number)
        else:
            out.append(str(value))
    return {"question": ref, "op": op, "values": out}


@dataclass(frozen=True)
class Definition:
    """A validated survey file: what `create_survey` stores."""

    slug: str | None
    title: dict[str, str]
    body: dict[str, Any]  # intro, thanks, questions
    anonymous: bool
    locked: bool
    weights: dict[str, str]
    audience_tier: str | None
    audience_region: str | None
    closes_at: datetime | None


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if not k.startswith(_LINE)}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def load_definition(source: str) -> Definition:
    """Parse and check a survey written in YAML or JSON (JSON is read as YAML, which keeps
    line numbers); every refusal is a DefinitionError naming the line."""
    try:
        doc = yaml.load(source, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise DefinitionError((mark.line + 1) if mark else 1,
                              _("This is not valid YAML or JSON: {error}"),
                              error=str(exc.problem or exc)) from None
    if not isinstance(doc, dict):
        raise DefinitionError(1, _("A survey file is a mapping with title: and questions:."))
    slug = doc.get("slug")
    if slug is not None and (not isinstance(slug, str) or not _SLUG.match(slug)):
        raise DefinitionError(_line(doc, "slug"), _("A slug is 1-40 lower-case letters, digits "
                                                    "or hyphens."))
    title = _text(doc, "title", limit=200)
    assert title is not None
    questions = doc.get("questions")
    if not isinstance(questions, list) or not 1 <= len(questions) <= MAX_QUESTIONS:
        raise DefinitionError(_line(doc, "questions"), _("A survey has 1 to {max} questions."),
                              max=MAX_QUESTIONS)
    keys = [str(q.get("key") or f"q{i + 1}") if isinstance(q, Mapping) else ""
            for i, q in enumerate(questions)]
    earlier: dict[str, dict[str, Any]] = {}
    parsed = []
    for i, node in enumerate(questions):
        q = _question(node, i, earlier, set(keys[i:]))
        earlier[q["key"]] = q
        parsed.append(q)
    audience = doc.get("audience") or {}
    if not isinstance(audience, Mapping):
        raise DefinitionError(_line(doc, "audience"), _("“audience” has region: and tier:."))
    tier = audience.get("tier")
    if audience.get("members_only"):
        tier = "member"
    if tier is not None and tier not in TIERS:
        raise DefinitionError(_line(audience, "tier"), _("Unknown tier “{tier}”."),
                              tier=str(tier))
    region = audience.get("region")
    if region is not None and region not in REGION_CODES:
        raise DefinitionError(_line(audience, "region"), _("Unknown region “{region}”."),
                              region=str(region))
    try:
        weights = parse_weights({str(k): str(v) for k, v in (doc.get("weights") or {}).items()
                                 if not str(k).startswith(_LINE)})
    except ValueError as exc:
        raise DefinitionError(_line(doc, "weights"), _("Weights: {error}"),
                              error=str(exc)) from None
    closes_at = None
    if doc.get("closes_at") is not None:
        try:
            closes_at = parse_local(str(doc["closes_at"]), field="closes_at")
        except RuleError as exc:
            raise DefinitionError(_line(doc, "closes_at"), _("Closing time: {error}"),
                                  error=exc.message("en")) from None
    body = {"intro": _text(doc, "intro", required=False, limit=2000),
            "thanks": _text(doc, "thanks", required=False, limit=2000),
            "questions": _strip_lines(parsed)}
    return Definition(slug=slug, title=title, body=body,
                      anonymous=bool(doc.get("anonymous", False)),
                      locked=bool(doc.get("locked", False)), weights=weights,
                      audience_tier=tier, audience_region=region, closes_at=closes_at)


# --- answers: parsing typed text and evaluating conditions ------------------------------------

def parse_number(text: str) -> str | None:
    """ "1,200", " 42 ", "3.5" → a canonical decimal string; None if not a number."""
    cleaned = text.strip().replace(",", "").replace(" ", "")
    if not cleaned or len(cleaned) > 30:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    normal = value.normalize()
    out = format(normal, "f")
    return "0" if out in ("-0", "") else out


def _matches(q: dict[str, Any], answer: str, value: str) -> bool:
    if q["kind"] == "multiple":
        return value in answer.split(",")
    if q["kind"] in ("scale", "number"):
        return Decimal(answer) == Decimal(value)
    return answer.strip().casefold() == value.strip().casefold()


def visible(q: dict[str, Any], answers: Mapping[str, str],
            questions: Mapping[str, dict[str, Any]]) -> bool:
    """Whether a question is shown, given the answers so far."""
    cond = q.get("when")
    if not cond:
        return True
    answer = answers.get(cond["question"])
    if cond["op"] == "answered":
        return (answer is not None) == (cond["values"] == ["1"])
    if answer is None:
        return False
    target = questions[cond["question"]]
    hit = any(_matches(target, answer, v) for v in cond["values"])
    return not hit if cond["op"] == "not_equals" else hit


@dataclass(frozen=True)
class SurveyView:
    """A survey as the answering rules read it: the stored columns, and the questions
    parsed once (in order, by key, and each key's position). Built from a plain row or
    from the ORM object; a fast lane keeps them between batches (`SurveyCache`)."""

    id: int
    slug: str
    title_ko: str
    title_en: str
    definition: dict[str, Any]
    anonymous: bool
    locked: bool
    weights: dict[str, str]
    audience_tier: str | None
    audience_region: str | None
    status: str
    closes_at: datetime | None
    questions: list[dict[str, Any]]
    by_key: dict[str, dict[str, Any]]
    positions: dict[str, int]

    @classmethod
    def of(cls, row: Mapping[str, Any] | Survey) -> SurveyView:
        get: Callable[[str], Any] = (row.get if isinstance(row, Mapping)
                                     else partial(getattr, row))
        definition = dict(get("definition") or {})
        questions = list(definition.get("questions") or [])
        return cls(
            id=int(get("id")), slug=str(get("slug")), title_ko=str(get("title_ko")),
            title_en=str(get("title_en")), definition=definition,
            anonymous=bool(get("anonymous")), locked=bool(get("locked")),
            weights=dict(get("weights") or {}), audience_tier=get("audience_tier"),
            audience_region=get("audience_region"), status=str(get("status")),
            closes_at=get("closes_at"), questions=questions,
            by_key={q["key"]: q for q in questions},
            positions={q["key"]: i for i, q in enumerate(questions)})


# Where the rules only read a survey's columns and questions, either form does.
AnySurvey = Survey | SurveyView
# The person answering: the ORM row (the PTB path) or the batch's brief (the fast lane).
Respondent = Supporter | supporters.Brief


def _questions(survey: AnySurvey) -> list[dict[str, Any]]:
    if isinstance(survey, SurveyView):
        return survey.questions
    return list(survey.definition["questions"])


def _by_key(survey: AnySurvey) -> dict[str, dict[str, Any]]:
    if isinstance(survey, SurveyView):
        return survey.by_key
    return {q["key"]: q for q in _questions(survey)}


def next_key(survey: AnySurvey, answers: Mapping[str, str], after: str | None) -> str | None:
    """The next question to show after `after` (None: the first), or None for the summary."""
    qs = _questions(survey)
    by_key = _by_key(survey)
    start = 0 if after is None else next(i for i, q in enumerate(qs) if q["key"] == after) + 1
    for q in qs[start:]:
        if visible(q, answers, by_key):
            return str(q["key"])
    return None


def stored_value(survey: AnySurvey, question: str, option: str) -> str | None:
    """An answer as organisers name it (a choice's value or its number from 1, a scale
    point, a number) in the form answers are stored; None when the question has no such
    answer (audience filters `answer=<survey>:<question>:<option>`)."""
    q = _by_key(survey).get(question)
    if q is None:
        return None
    if q["kind"] in CHOICE_KINDS:
        for i, o in enumerate(q["options"]):
            if option == o["value"]:
                return str(i)
        if option.isdigit() and 1 <= int(option) <= len(q["options"]):
            return str(int(option) - 1)
        return None
    if q["kind"] == "scale":
        return option if option.isdigit() and q["min"] <= int(option) <= q["max"] else None
    if q["kind"] == "number":
        return parse_number(option)
    return None


def consistent(survey: AnySurvey, answers: Mapping[str, str]) -> dict[str, str]:
    """Answers with those of hidden questions dropped (in order, so chains resolve)."""
    by_key = _by_key(survey)
    kept: dict[str, str] = {}
    for q in _questions(survey):
        if q["key"] in answers and visible(q, kept, by_key):
            kept[q["key"]] = answers[q["key"]]
    return kept


def progress_label(survey: AnySurvey, progress: ProgressRow) -> str:
    """ "3/7": the place of the current question among those that may still be shown."""
    qs = _questions(survey)
    by_key = _by_key(survey)
    answers = progress.answers or {}
    index = next((i for i, q in enumerate(qs) if q["key"] == progress.current), len(qs))
    ahead_keys = {q["key"] for q in qs[index:]}
    ahead = sum(1 for q in qs[index:]
                if visible(q, answers, by_key)
                or (q.get("when") and q["when"]["question"] in ahead_keys))
    done = max(len(progress.path) - 1, 0)
    return f"{done + 1}/{done + max(ahead, 1)}"


@dataclass(frozen=True)
class Typed:
    """A typed answer: the stored form, or a hint (msgid and parameters) to show."""

    value: str | None
    hint: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


def parse_typed(q: dict[str, Any], text: str) -> Typed:
    """Check a typed answer against its question: a number in bounds, text not too long,
    a scale value or an option number."""
    kind = q["kind"]
    text = text.strip()
    if kind in TEXT_LIMITS:
        if not text:
            return Typed(None, _("Please type your answer."))
        if len(text) > q["max_length"]:
            return Typed(None, _("That is {length} characters; at most {limit} fit here. "
                                 "Please shorten it and send it again."),
                         {"length": len(text), "limit": q["max_length"]})
        return Typed(text)
    number = parse_number(text)
    if kind == "number":
        if number is None:
            return Typed(None, _("Please send a number, such as 42."))
        low, high = q.get("min"), q.get("max")
        if (low is not None and Decimal(number) < Decimal(low)) or (
                high is not None and Decimal(number) > Decimal(high)):
            return Typed(None, _out_of_range(low, high), {"min": low, "max": high})
        return Typed(number)
    if kind == "scale":
        low, high = q["min"], q["max"]
        if number is None or Decimal(number) != Decimal(number).to_integral_value() or not (
                low <= int(Decimal(number)) <= high):
            return Typed(None, _("Please choose a number from {min} to {max}."),
                         {"min": low, "max": high})
        return Typed(str(int(Decimal(number))))
    n = len(q["options"])
    if kind == "single":
        if number is None or not number.isdigit() or not 1 <= int(number) <= n:
            return Typed(None, _("Please press one of the buttons (or send its number, "
                                 "1 to {max})."), {"max": n})
        return Typed(str(int(number) - 1))
    picks = sorted({p.strip() for p in re.split(r"[,\s]+", text) if p.strip()})
    if not picks or not all(p.isdigit() and 1 <= int(p) <= n for p in picks):
        return Typed(None, _("Please press the buttons (or send option numbers such as "
                             "1, 3)."))
    return _multiple_value(q, sorted(int(p) - 1 for p in picks))


def _out_of_range(low: str | None, high: str | None) -> str:
    if low is not None and high is not None:
        return _("Please send a number from {min} to {max}.")
    if low is not None:
        return _("Please send a number of at least {min}.")
    return _("Please send a number of at most {max}.")


def _multiple_value(q: dict[str, Any], picks: Sequence[int]) -> Typed:
    if not q["min"] <= len(picks) <= q["max"]:
        return Typed(None, _("Please choose between {min} and {max} options."),
                     {"min": q["min"], "max": q["max"]})
    return Typed(",".join(str(p) for p in sorted(set(picks))))


# --- presenting ------------------------------------------------------------------------------

def _tr(text: Mapping[str, str] | None, lang: str) -> str:
    if not text:
        return ""
    return html.escape(text.get(lang) or text["ko"], quote=False)


def _title(survey: AnySurvey, lang: str) -> str:
    return html.escape(survey.title_en if lang == "en" else survey.title_ko, quote=False)


def show_answer(q: dict[str, Any], value: str, lang: str) -> str:
    """An answer as the person reads it (HTML-escaped)."""
    if q["kind"] in CHOICE_KINDS:
        return ", ".join(_tr(q["options"][int(i)], lang) for i in value.split(",") if i)
    return html.escape(value, quote=False)


def _cb(survey: AnySurvey, *parts: object) -> str:
    return ":".join(["sv", str(survey.id), *(str(p) for p in parts)])


def _position(survey: AnySurvey, key: str) -> int:
    if isinstance(survey, SurveyView):
        return survey.positions[key]
    return next(i for i, q in enumerate(_questions(survey)) if q["key"] == key)


def question_reply(survey: AnySurvey, progress: ProgressRow, lang: str, *, selected: int = 0,
                   hint: str | None = None, edit: bool = False) -> Reply:
    """One question with its buttons, its progress ("3/7"), Back and Skip where allowed."""
    q = _by_key(survey)[progress.current]
    pos = _position(survey, q["key"])
    lines = [f"📝 <b>{_title(survey, lang)}</b> · {progress_label(survey, progress)}", "",
             f"<b>{_tr(q['text'], lang)}</b>"]
    buttons: list[list[Button]] = []
    kind = q["kind"]
    previous = (progress.answers or {}).get(q["key"])
    if kind == "single":
        buttons = [[Button(_tr(o, lang), data=_cb(survey, "a", pos, i))]
                   for i, o in enumerate(q["options"])]
    elif kind == "multiple":
        if not selected and previous:
            selected = sum(1 << int(i) for i in previous.split(","))
        buttons = [[Button(("☑️ " if selected >> i & 1 else "⬜ ") + _tr(o, lang),
                           data=_cb(survey, "t", pos, selected ^ (1 << i)))]
                   for i, o in enumerate(q["options"])]
        if selected:
            buttons.append([Button(t(lang, "✅ Done"), data=_cb(survey, "m", pos, selected))])
        lines.append(t(lang, "Choose {min} to {max}.", min=q["min"], max=q["max"]))
    elif kind == "scale":
        values = list(range(q["min"], q["max"] + 1))
        row_size = 6 if len(values) > 6 else len(values)
        buttons = [[Button(str(v), data=_cb(survey, "a", pos, v)) for v in values[i:i + row_size]]
                   for i in range(0, len(values), row_size)]
        low, high = q["labels"].get("low"), q["labels"].get("high")
        if low or high:
            lines.append(f"{q['min']} = {_tr(low, lang)} · {q['max']} = {_tr(high, lang)}")
    elif kind == "number":
        lines.append(t(lang, "Type a number."))
    else:
        lines.append(t(lang, "Type your answer (at most {limit} characters).",
                       limit=q["max_length"]))
    if previous is not None:
        lines.append(t(lang, "Your answer so far:") + " " + show_answer(q, previous, lang))
    if hint:
        lines += ["", hint]
    nav: list[Button] = []
    if len(progress.path) > 1:
        nav.append(Button(t(lang, "◀️ Back"), data=_cb(survey, "b")))
    if previous is not None:
        nav.append(Button(t(lang, "Keep ▶️"), data=_cb(survey, "k", pos)))
    elif not q["required"]:
        nav.append(Button(t(lang, "Skip ⏭"), data=_cb(survey, "s", pos)))
    if nav:
        buttons.append(nav)
    return Reply("\n".join(lines), buttons=buttons, edit=edit)


def summary_reply(survey: AnySurvey, progress: ProgressRow, lang: str, *,
                  edit: bool = False) -> Reply:
    """Every answer given, to confirm before submitting."""
    answers = consistent(survey, progress.answers or {})
    lines = [f"📝 <b>{_title(survey, lang)}</b>", "", t(lang, "Please check your answers:"), ""]
    for q in _questions(survey):
        if q["key"] in answers:
            lines.append(f"• {_tr(q['text'], lang)}\n  → {show_answer(q, answers[q['key']], lang)}")
    if survey.anonymous:
        lines += ["", t(lang, "🔒 Anonymous: your answers are stored without your name and "
                              "cannot be changed once sent.")]
    elif survey.locked:
        lines += ["", t(lang, "Answers cannot be changed once sent.")]
    buttons = [[Button(t(lang, "✅ Send my answers"), data=_cb(survey, "ok"))],
               [Button(t(lang, "◀️ Back"), data=_cb(survey, "b")),
                Button(t(lang, "✏️ Change answers"), data=_cb(survey, "ed"))]]
    return Reply("\n".join(lines), buttons=buttons, edit=edit)


def _thanks(survey: AnySurvey, lang: str, edited: bool) -> Reply:
    text = _tr(survey.definition.get("thanks"), lang) or t(lang, "Thank you for answering!")
    lines = [f"📝 <b>{_title(survey, lang)}</b>", "", text]
    buttons: list[list[Button]] = []
    if edited:
        lines.insert(2, t(lang, "✅ Your answers are updated."))
    if not survey.anonymous and not survey.locked:
        lines.append(t(lang, "You can change your answers until the survey closes."))
        buttons = [[Button(t(lang, "✏️ Change answers"), data=_cb(survey, "ed"))]]
    return Reply("\n".join(lines), buttons=buttons, edit=True)


# --- supporters: starting, answering, confirming ---------------------------------------------

def is_open(survey: AnySurvey, now: datetime) -> bool:
    return survey.status == "open" and (survey.closes_at is None or now < survey.closes_at)


def _eligible(survey: AnySurvey, supporter: Respondent) -> Reply | None:
    lang = supporter.language
    if survey.audience_tier is not None and supporter.tier != survey.audience_tier:
        if survey.audience_tier == "member":
            return Reply(t(lang, "Sorry, this survey is for party members only."))
        return Reply(t(lang, "Sorry, this survey is not for you."))
    if survey.audience_region is not None and supporter.region != survey.audience_region:
        return Reply(t(lang, "Sorry, this survey is for supporters in {region} only.",
                       region=region_name(survey.audience_region, lang)))
    return None


def _closed(lang: str) -> Reply:
    return Reply(t(lang, "This survey is closed."), toast=t(lang, "This survey is closed."))


def _unknown(lang: str, slug: str) -> Reply:
    return Reply(t(lang, "There is no survey called “{slug}”.", slug=slug[:40]))


async def _supporter_of(session: AsyncSession, person: Person) -> Supporter | None:
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    if known is None or known.supporter.status != "active":
        return None
    return known.supporter


def _touch(progress: ProgressRow, now: datetime) -> None:
    progress.updated_at = now
    # Any activity re-arms the one reminder for the next idle day.
    progress.reminded_at = None


class SurveyCache:
    """Parsed survey definitions kept by one process between batches of answers.

    Each batch reads every survey's (updated_at, status, closes_at) in one small query
    and parses a definition again only when that changed: a survey opened or closed by
    any process (the dashboard, the CLI, the closing tick) is seen at the next batch,
    while its questions, which never change once created, are parsed once. Keep one
    cache per database (survey ids are only unique within one)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._held: dict[int, tuple[tuple[Any, ...], SurveyView]] = {}

    async def views(self, session: AsyncSession, ids: Iterable[int],
                    stamps: Mapping[int, tuple[Any, ...]] | None = None
                    ) -> dict[int, SurveyView]:
        """The surveys of `ids` that exist; `stamps` already read in this transaction
        (with the progress rows) spare their query."""
        known = dict(stamps or {})
        missing = [i for i in set(ids) if i not in known]
        if missing:
            known.update(await store.survey_stamps(session, missing))
        stamps = {i: known[i] for i in set(ids) if i in known}
        out: dict[int, SurveyView] = {}
        stale: list[int] = []
        for survey_id, stamp in stamps.items():
            held = self._held.get(survey_id)
            if held is not None and held[0] == stamp:
                out[survey_id] = held[1]
            else:
                stale.append(survey_id)
        if stale:
            if len(self._held) + len(stale) > self.size:
                self._held.clear()
            for survey_id, row in (await store.survey_rows(session, stale)).items():
                view = SurveyView.of(row)
                self._held[survey_id] = ((row["updated_at"], row["status"], row["closes_at"]),
                                         view)
                out[survey_id] = view
        return out


async def _views(session: AsyncSession, ids: Iterable[int], cache: SurveyCache | None,
                 stamps: Mapping[int, tuple[Any, ...]] | None = None) -> dict[int, SurveyView]:
    if cache is not None:
        return await cache.views(session, ids, stamps)
    return {i: SurveyView.of(row)
            for i, row in (await store.survey_rows(session, list(set(ids)))).items()}


class _Answering:
    """The survey answers of one transaction (one person's, or a fast-lane batch's).

    The rules below are plain functions over a `ProgressRow` and a `SurveyView`: they
    change the row in memory and note here what else to store (rows started or
    removed, responses, "has answered" marks, events); `flush` then writes the lot
    set-based, a fixed number of statements whatever the number of answers.
    `responded` holds the (survey, supporter) pairs known to have submitted, read
    beforehand for the pairs that may need it (entering without progress, sending)."""

    def __init__(self, clock: Clock, responded: set[tuple[int, int]]) -> None:
        self.now = clock.now()
        self.responded = responded
        self._loaded: dict[int, tuple[ProgressRow, tuple[Any, ...]]] = {}
        self.started: list[ProgressRow] = []
        self.removed: list[int] = []
        self.responses: list[store.Response] = []
        self.respondents: list[tuple[int, int]] = []
        self.replaced: list[tuple[int, int]] = []
        self.completed: list[tuple[dict[str, Any], int | None]] = []

    def held(self, row: ProgressRow | None) -> ProgressRow | None:
        """A stored row the rules may change (its values now, to write only changes)."""
        if row is not None and row.id is not None and row.id not in self._loaded:
            self._loaded[row.id] = (row, (dict(row.answers), list(row.path), *row.stamp()[2:]))
        return row

    def start(self, survey_id: int, supporter_id: int) -> ProgressRow:
        row = ProgressRow(None, survey_id, supporter_id, {}, [], "", "answering",
                          self.now, self.now)
        self.started.append(row)
        return row

    async def flush(self, session: AsyncSession) -> None:
        removed = set(self.removed)
        changed = [row for row_id, (row, before) in self._loaded.items()
                   if row_id not in removed and row.stamp() != before]
        await store.save_progress(session, new=self.started, changed=changed,
                                  deleted=self.removed)
        await store.write_responses(session, self.responses, respondents=self.respondents,
                                    replaced=self.replaced)
        if self.completed:
            await events.emit_many(session, events.SURVEY_COMPLETED, self.completed,
                                   now=self.now)


async def begin(session: AsyncSession, supporter: Respondent, slug: str,
                clock: Clock) -> list[Reply]:
    """Start or resume a survey (deep link `survey_<slug>`, /survey, a broadcast button)."""
    lang = supporter.language
    survey = await store.survey_by_slug(session, slug.strip().lower())
    if survey is None or survey.status == "draft":
        return [_unknown(lang, slug)]
    pair = (survey.id, supporter.id)
    w = _Answering(clock, await store.responded_pairs(session, [pair]))
    progress = (await store.progress_rows(session, [pair])).get(pair)
    replies = _enter(w, supporter, SurveyView.of(survey), w.held(progress))
    await w.flush(session)
    return replies


def _enter(w: _Answering, supporter: Respondent, survey: SurveyView,
           progress: ProgressRow | None, *, edit: bool = False) -> list[Reply]:
    lang = supporter.language
    if not is_open(survey, w.now):
        return [_closed(lang)]
    refused = _eligible(survey, supporter)
    if refused:
        return [refused]
    if progress is None and (survey.id, supporter.id) in w.responded:
        # An anonymous response: nothing links it back to the person any more.
        return [Reply(t(lang, "You have already answered this survey. Thank you!"))]
    if progress is not None and progress.state == "submitted":
        return [_thanks(survey, lang, edited=False)]
    replies: list[Reply] = []
    if progress is None:
        progress = w.start(survey.id, supporter.id)
        intro = _tr(survey.definition.get("intro"), lang)
        if intro:
            replies.append(Reply(f"📝 <b>{_title(survey, lang)}</b>\n\n{intro}"))
    else:
        replies.append(Reply(t(lang, "Welcome back! Let's carry on where you left off.")))
    if not progress.current and progress.state == "answering":
        first = next_key(survey, {}, None)
        assert first is not None
        progress.current, progress.path = first, [first]
    _touch(progress, w.now)
    replies.append(_current(survey, progress, lang, edit=edit))
    return replies


def _current(survey: SurveyView, progress: ProgressRow, lang: str, *, edit: bool = False,
             hint: str | None = None) -> Reply:
    if progress.state == "confirm":
        return summary_reply(survey, progress, lang, edit=edit)
    return question_reply(survey, progress, lang, hint=hint, edit=edit)


def _advance(survey: SurveyView, progress: ProgressRow, value: str | None) -> None:
    """Record (or skip) the current question and move to the next one or the summary."""
    answers = dict(progress.answers or {})
    if value is None:
        answers.pop(progress.current, None)
    else:
        answers[progress.current] = value
    # Answers that a changed earlier answer now hides are dropped at once.
    answers = consistent(survey, answers)
    progress.answers = answers
    following = next_key(survey, answers, progress.current)
    if following is None:
        progress.state, progress.current = "confirm", ""
    else:
        progress.current = following
        progress.path = [*progress.path, following]


def _back(progress: ProgressRow) -> None:
    if progress.state == "confirm":
        progress.state = "answering"
        progress.current = progress.path[-1]
    elif len(progress.path) > 1:
        progress.path = progress.path[:-1]
        progress.current = progress.path[-1]


@dataclass(frozen=True)
class SurveyData:
    survey_id: int
    action: str
    position: int | None = None
    value: int | None = None


def parse_data(data: str) -> SurveyData | None:
    """`sv:<survey>:<action>[:<question position>[:<value>]]`."""
    parts = data.split(":")
    if len(parts) < 3 or parts[0] != "sv" or not parts[1].isdigit() or len(parts) > 5:
        return None
    if not all(p.isdigit() for p in parts[3:]):
        return None
    nums = [int(p) for p in parts[3:]]
    return SurveyData(int(parts[1]), parts[2], nums[0] if nums else None,
                      nums[1] if len(nums) > 1 else None)


async def button(session: AsyncSession, person: Person, data: str,
                 clock: Clock) -> list[Reply]:
    """A press on a survey button: answer, toggle, skip, keep, back, submit, edit."""
    lang = normalise_language(person.language_code)
    parsed = parse_data(data)
    supporter = await _supporter_of(session, person)
    if supporter is None:
        return [Reply(t(lang, "not_signed_up"), toast=t(lang, "Please sign up first"))]
    survey = progress = None
    responded: set[tuple[int, int]] = set()
    if parsed is not None:
        survey = (await _views(session, [parsed.survey_id], None)).get(parsed.survey_id)
    if parsed is not None and survey is not None:
        pair = (survey.id, supporter.id)
        progress = (await store.progress_rows(session, [pair])).get(pair)
        responded = await store.responded_pairs(session, [pair])
    w = _Answering(clock, responded)
    replies = _button(w, supporter, parsed, survey, w.held(progress))
    await w.flush(session)
    return replies


def _button(w: _Answering, supporter: Respondent, parsed: SurveyData | None,
            survey: SurveyView | None, progress: ProgressRow | None) -> list[Reply]:
    """`button` with the survey and the person's progress on it already looked up (the
    fast lane looks them up for a whole batch at once)."""
    lang = supporter.language
    if parsed is None or survey is None or survey.status == "draft":
        return [Reply(t(lang, "This survey no longer exists."),
                      toast=t(lang, "This survey no longer exists."))]
    now = w.now
    if parsed.action == "go":
        return _enter(w, supporter, survey, progress)
    if not is_open(survey, now):
        return [_closed(lang)]
    if progress is None:
        return _enter(w, supporter, survey, progress)
    if parsed.action == "ed":
        return edit_answers(w, survey, supporter, progress)
    if progress.state == "submitted":
        return [_thanks(survey, lang, edited=False)]
    qs = survey.questions
    stale = parsed.position is not None and (
        progress.state != "answering" or parsed.position >= len(qs)
        or qs[parsed.position]["key"] != progress.current)
    if stale:
        # An old message's button: show where the person really is.
        return [_current(survey, progress, lang, edit=True)]
    q = survey.by_key.get(progress.current)
    if parsed.action == "b":
        _back(progress)
    elif parsed.action == "ok":
        if progress.state != "confirm":
            return [_current(survey, progress, lang, edit=True)]
        return submit(w, survey, supporter, progress)
    elif q is None:
        return [_current(survey, progress, lang, edit=True)]
    elif parsed.action == "s":
        if q["required"]:
            return [question_reply(survey, progress, lang, edit=True,
                                   hint=t(lang, "This question needs an answer."))]
        _advance(survey, progress, None)
    elif parsed.action == "k":
        _advance(survey, progress, (progress.answers or {}).get(q["key"]))
    elif parsed.action == "a" and parsed.value is not None:
        if q["kind"] == "single" and 0 <= parsed.value < len(q["options"]):
            _advance(survey, progress, str(parsed.value))
        elif q["kind"] == "scale" and q["min"] <= parsed.value <= q["max"]:
            _advance(survey, progress, str(parsed.value))
        else:
            return [question_reply(survey, progress, lang, edit=True)]
    elif parsed.action == "t" and parsed.value is not None and q["kind"] == "multiple":
        _touch(progress, now)
        return [question_reply(survey, progress, lang, selected=parsed.value % (1 << MAX_OPTIONS),
                               edit=True)]
    elif parsed.action == "m" and parsed.value is not None and q["kind"] == "multiple":
        picks = [i for i in range(len(q["options"])) if parsed.value >> i & 1]
        typed = _multiple_value(q, picks)
        if typed.value is None:
            assert typed.hint is not None
            return [question_reply(survey, progress, lang, selected=parsed.value, edit=True,
                                   hint=t(lang, typed.hint, **typed.params))]
        _advance(survey, progress, typed.value)
    else:
        return [_current(survey, progress, lang, edit=True)]
    _touch(progress, now)
    return [_current(survey, progress, lang, edit=True)]


async def typed(session: AsyncSession, supporter: Respondent, text: str,
                clock: Clock) -> list[Reply] | None:
    """A typed message while a survey waits for an answer; None when no survey does."""
    progress = (await store.active_progress_rows(session, [supporter.id])).get(supporter.id)
    if progress is None or progress.state != "answering":
        return None
    survey = (await _views(session, [progress.survey_id], None)).get(progress.survey_id)
    w = _Answering(clock, set())
    replies = _typed(w, supporter, w.held(progress), survey, text)
    await w.flush(session)
    return replies


def _typed(w: _Answering, supporter: Respondent, progress: ProgressRow | None,
           survey: SurveyView | None, text: str) -> list[Reply] | None:
    """`typed` with the person's active progress and its survey already looked up."""
    if progress is None or progress.state != "answering" or survey is None:
        return None
    lang = supporter.language
    if not is_open(survey, w.now):
        return [_closed(lang)]
    q = survey.by_key.get(progress.current)
    if q is None:
        return None
    result = parse_typed(q, text)
    if result.value is None:
        assert result.hint is not None
        # Nothing stored is touched: the question comes again with the hint.
        return [question_reply(survey, progress, lang,
                               hint="⚠️ " + t(lang, result.hint, **result.params))]
    _advance(survey, progress, result.value)
    _touch(progress, w.now)
    return [_current(survey, progress, lang)]


@dataclass(frozen=True)
class AnswerRequest:
    """A survey button press (`data`) or a typed message (`text`) for the fast lane."""

    person: Person
    data: str | None = None
    text: str | None = None


# Typed text during these stored steps belongs to sign-up (typed_input.SIGNUP_INPUTS).
_SIGNUP_INPUTS = ONBOARDING_STEPS | {"rename", REDISTRICT}


async def answer_batch(session: AsyncSession, requests: Sequence[AnswerRequest],
                       clock: Clock, cache: SurveyCache | None = None
                       ) -> list[list[Reply] | None]:
    """Many survey presses and typed answers in one transaction, each answered as
    `button` / typed_input.text_message answers it, in a fixed number of statements:
    the people, their progress rows, the surveys (from `cache` when given), "has
    answered" where needed, then `_Answering.flush`.

    ``None`` means "handle it alone on the normal path": a person not signed up (or in
    the middle of sign-up), a stop word, typed text no survey question waits for. The
    caller sends one person's updates one batch after another, so a person appears at
    most once per batch and the answers of one person stay in order.
    """
    out: list[list[Reply] | None] = [None] * len(requests)
    parsed = [parse_data(r.data) if r.data is not None else None for r in requests]
    # People and their progress in one query: what a press names, or what typed text
    # would answer (an unparsable press loads neither).
    known, found = await store.people_and_progress(session, [
        (r.person.bot_id, r.person.channel, r.person.user_id,
         d.survey_id if d is not None else (-1 if r.data is not None else None))
        for r, d in zip(requests, parsed, strict=True)])
    todo: list[tuple[int, supporters.Brief, SurveyData | None]] = []
    for i, r in enumerate(requests):
        sup = known.get((r.person.bot_id, r.person.channel, r.person.user_id))
        if sup is None or sup.status != "active":
            continue
        if r.data is not None:
            todo.append((i, sup, parsed[i]))
        elif r.text is not None and not is_stop_word(r.text) \
                and sup.pending_input not in _SIGNUP_INPUTS:
            todo.append((i, sup, None))
    pairs = [(d.survey_id, sup.id) for _, sup, d in todo if d is not None]
    by_pair, active = found.by_pair, found.active
    views = await _views(session, {s for s, _ in pairs}
                         | {p.survey_id for p in active.values()}, cache, found.stamps)
    w = _Answering(clock, found.responded)
    for i, sup, d in todo:
        if d is not None:
            out[i] = _button(w, sup, d, views.get(d.survey_id),
                             w.held(by_pair.get((d.survey_id, sup.id))))
        elif requests[i].data is not None:
            # `sv:` data that does not parse (forged, or from an old version): the answer
            # the PTB path gives, not an error that would fail the whole batch.
            out[i] = _button(w, sup, None, None, None)
        else:
            text = requests[i].text
            assert text is not None
            progress = active.get(sup.id)
            out[i] = _typed(w, sup, w.held(progress),
                            views.get(progress.survey_id) if progress else None, text)
    await w.flush(session)
    return out


def edit_answers(w: _Answering, survey: SurveyView, supporter: Respondent,
                 progress: ProgressRow) -> list[Reply]:
    """Go through the questions again, each with the answer given shown (and "Keep")."""
    lang = supporter.language
    if progress.state == "submitted" and (survey.locked or survey.anonymous):
        return [Reply(t(lang, "Answers cannot be changed once sent."),
                      toast=t(lang, "Answers cannot be changed once sent."))]
    first = next_key(survey, progress.answers or {}, None)
    assert first is not None
    progress.state, progress.current, progress.path = "answering", first, [first]
    _touch(progress, w.now)
    return [question_reply(survey, progress, lang, edit=True)]


def submit(w: _Answering, survey: SurveyView, supporter: Respondent,
           progress: ProgressRow) -> list[Reply]:
    """Store the response. Anonymous: the progress row goes and the answers keep no link."""
    lang = supporter.language
    now = w.now
    answers = consistent(survey, progress.answers or {})
    missing = [q for q in survey.questions
               if q["required"] and q["key"] not in answers
               and visible(q, answers, survey.by_key)]
    if missing:
        progress.state, progress.current = "answering", missing[0]["key"]
        progress.path = [*progress.path, missing[0]["key"]]
        return [question_reply(survey, progress, lang, edit=True,
                               hint=t(lang, "This question needs an answer."))]
    pair = (survey.id, supporter.id)
    first = pair not in w.responded
    if first:
        w.responded.add(pair)
        w.respondents.append(pair)
    weight = survey.weights.get(supporter.tier, "0")
    if survey.anonymous:
        assert progress.id is not None
        w.removed.append(progress.id)
        if not first:
            return [Reply(t(lang, "You have already answered this survey. Thank you!"))]
        w.responses.append(store.Response(survey.id, None, answers, supporter.tier,
                                          supporter.region, weight))
    else:
        if not first:
            w.replaced.append(pair)  # an edit: the new answers replace the earlier ones
        w.responses.append(store.Response(survey.id, supporter.id, answers, supporter.tier,
                                          supporter.region, weight))
        progress.answers, progress.state, progress.current = answers, "submitted", ""
        progress.submitted_at, progress.updated_at = now, now
    # An anonymous survey's event names nobody (and carries no answers, like secret ballots).
    data: dict[str, Any] = {"survey_id": survey.id, "survey": survey.slug,
                            "anonymous": survey.anonymous, "edited": not first}
    if not survey.anonymous:
        data["person_id"] = supporter.id
    w.completed.append((data, None if survey.anonymous else supporter.id))
    return [_thanks(survey, lang, edited=not first)]


async def resume_survey(session: AsyncSession, supporter: Supporter, slug: str,
                        clock: Clock) -> list[Reply]:
    """The intent "survey:<slug>" kept through sign-up, carried out once it is done."""
    return await begin(session, supporter, slug, clock)


async def command(session: AsyncSession, person: Person, slug: str | None,
                  clock: Clock) -> list[Reply]:
    """/survey <slug> (or /surveys without one): start a survey, or list the open ones."""
    supporter = await _supporter_of(session, person)
    if supporter is None:
        return [Reply(t(normalise_language(person.language_code), "not_signed_up"))]
    if slug:
        return await begin(session, supporter, slug, clock)
    return await list_open(session, supporter, clock)


async def list_open(session: AsyncSession, supporter: Supporter, clock: Clock) -> list[Reply]:
    """/surveys: the open surveys this person may answer, one button each."""
    lang = supporter.language
    now = clock.now()
    rows = [s for s in await store.surveys(session, "open")
            if is_open(s, now) and _eligible(s, supporter) is None]
    if not rows:
        return [Reply(t(lang, "There are no open surveys right now."))]
    buttons = [[Button(("✅ " if await store.has_responded(session, s.id, supporter.id) else "📝 ")
                       + (s.title_en if lang == "en" else s.title_ko), data=_cb(s, "go"))]
               for s in rows]
    return [Reply(t(lang, "Open surveys:"), buttons=buttons)]


# --- organisers -------------------------------------------------------------------------------

async def create_survey(session: AsyncSession, *, campaign_slug: str, source: str,
                        clock: Clock, actor: str, slug: str | None = None,
                        status: str = "draft") -> Survey:
    """A survey from a YAML/JSON definition (`nalgae survey create --from`, the dashboard)."""
    definition = load_definition(source)
    slug = (slug or definition.slug or "").strip().lower()
    if not _SLUG.match(slug):
        raise RuleError(_("A slug is 1-40 lower-case letters, digits or hyphens."))
    campaign = await petition_store.campaign_by_slug(session, campaign_slug.strip().lower())
    if campaign is None:
        raise NotFound(_("There is no campaign called “{slug}”."), slug=campaign_slug)
    if status not in ("draft", "open"):
        raise RuleError(_("A new survey is draft or open."))
    now = clock.now()
    if definition.closes_at is not None and definition.closes_at <= now:
        raise RuleError(_("The closing time is in the past."))
    if await store.survey_by_slug(session, slug):
        raise Conflict(_("There is already a survey called “{slug}”."), slug=slug)
    survey = await store.insert_survey(
        session, campaign_id=campaign.id, slug=slug, title_ko=definition.title["ko"],
        title_en=definition.title["en"], definition=definition.body,
        anonymous=definition.anonymous, locked=definition.locked or definition.anonymous,
        weights=definition.weights, audience_tier=definition.audience_tier,
        audience_region=definition.audience_region, status=status,
        closes_at=definition.closes_at, created_at=now, updated_at=now)
    await supporters.audit(session, actor=actor, action="survey.created",
                           target=f"survey:{survey.id}", now=now,
                           details={"anonymous": survey.anonymous, "weights": survey.weights})
    return survey


async def get(session: AsyncSession, slug: str) -> Survey:
    survey = await store.survey_by_slug(session, slug.strip().lower())
    if survey is None:
        raise NotFound(_("There is no survey called “{slug}”."), slug=slug)
    return survey


async def open_survey(session: AsyncSession, slug: str, *, actor: str, clock: Clock) -> Survey:
    survey = await get(session, slug)
    if not await store.change_status(session, survey.id, from_statuses=("draft",), to="open",
                                     now=clock.now()):
        raise Conflict(_("Only a draft survey can be opened."))
    await supporters.audit(session, actor=actor, action="survey.opened",
                           target=f"survey:{survey.id}", now=clock.now())
    await session.refresh(survey)
    return survey


async def close_survey(session: AsyncSession, slug: str, *, actor: str, clock: Clock) -> Survey:
    survey = await get(session, slug)
    if not await store.change_status(session, survey.id, from_statuses=("draft", "open"),
                                     to="closed", now=clock.now()):
        raise Conflict(_("The survey is already closed."))
    await _mix_one(session, survey.id)
    await supporters.audit(session, actor=actor, action="survey.closed",
                           target=f"survey:{survey.id}", now=clock.now())
    await session.refresh(survey)
    return survey


async def close_due(db: Database, clock: Clock) -> list[int]:
    """Scheduler tick body: close surveys past their closing time; the ids closed."""
    now = clock.now()
    async with db.session() as session:
        closed = await store.close_due(session, now)
        for survey_id, _slug in closed:
            await _mix_one(session, survey_id)
            await supporters.audit(session, actor="scheduler", action="survey.closed",
                                   target=f"survey:{survey_id}", now=now)
    return [i for i, _s in closed]


async def close_due_tick(ctx: TickContext) -> object:
    """Scheduler tick: close surveys whose time has come (their last answers mixed then)."""
    return len(await close_due(ctx.db, ctx.clock))


async def _mix_one(session: AsyncSession, survey_id: int, rng: Random | None = None) -> int:
    responses = await store.take_pending(session, survey_id)
    (rng or secrets.SystemRandom()).shuffle(responses)
    await store.insert_mixed(session, survey_id, responses)
    return len(responses)


async def mix_answers(db: Database, *, min_batch: int = MIX_BATCH,
                      rng: Random | None = None) -> int:
    """Move pending anonymous responses into `survey_answer`, shuffled, in batches of at
    least `min_batch` (all of them once the survey is closed); how many moved."""
    moved = 0
    async with db.session() as session:
        for survey_id, (count, status) in sorted((await store.pending_counts(session)).items()):
            if count >= min_batch or status == "closed":
                moved += await _mix_one(session, survey_id, rng)
    return moved


async def mix_tick(ctx: TickContext) -> object:
    """Scheduler tick: mix anonymous responses (see `mix_answers`)."""
    return await mix_answers(ctx.db)


# --- reminders --------------------------------------------------------------------------------

async def claim_reminders(db: Database, clock: Clock, *, after: timedelta = REMIND_AFTER,
                          limit: int = 500, bot_id: int | None = None) -> list[Outgoing]:
    """Claim surveys left unfinished for `after` and say what to send; each unfinished
    survey is claimed once (until the person answers again), so one reminder each."""
    now = clock.now()
    async with db.session() as session:
        due = await store.claim_reminders(session, idle_before=now - after, now=now, limit=limit,
                                          bot_id=bot_id)
        out = []
        for r in due:
            survey = await store.survey_by_id(session, r.survey_id)
            if survey is None:
                continue
            lang = r.language
            out.append(Outgoing(r.bot_id, r.chat_id, r.supporter_id, Reply(
                t(lang, "📝 You have not finished “{title}” yet. Your answers so far are kept.",
                  title=survey.title_en if lang == "en" else survey.title_ko),
                buttons=[[Button(t(lang, "Continue ▶️"), data=_cb(survey, "go"))]])))
    return out


class ReminderContext(Protocol):
    """What the reminder tick gets: the store, the clock, and a way to send."""

    @property
    def db(self) -> Database: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def send(self) -> Callable[[Outgoing], Awaitable[None]]: ...


async def remind_tick(ctx: ReminderContext) -> object:
    """Scheduler tick: one reminder per unfinished survey idle for 24 h (claimed, sent once:
    the claim commits before sending, so a crash loses a reminder rather than doubling it)."""
    messages = await claim_reminders(ctx.db, ctx.clock)
    for message in messages:
        await ctx.send(message)
    return len(messages)


# --- results ----------------------------------------------------------------------------------

@dataclass
class Cell:
    count: int = 0
    weight: Fraction = field(default_factory=Fraction)


@dataclass
class Tally:
    """One question's results for one group (everyone, a tier or a region)."""

    respondents: int = 0
    weighted: Fraction = field(default_factory=Fraction)
    options: dict[str, Cell] = field(default_factory=dict)  # option index or scale value
    total: Fraction = field(default_factory=Fraction)  # scale and number: sum of values
    weighted_total: Fraction = field(default_factory=Fraction)

    def add(self, q: dict[str, Any], value: str, weight: Fraction, n: int) -> None:
        self.respondents += n
        self.weighted += weight * n
        if q["kind"] in CHOICE_KINDS or q["kind"] == "scale":
            for part in value.split(",") if q["kind"] == "multiple" else [value]:
                cell = self.options.setdefault(part, Cell())
                cell.count += n
                cell.weight += weight * n
        if q["kind"] in ("scale", "number"):
            number = Fraction(Decimal(value))
            self.total += number * n
            self.weighted_total += number * weight * n

    def json(self, q: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"respondents": self.respondents,
                               "weighted_respondents": exact(self.weighted)}
        if q["kind"] in CHOICE_KINDS:
            keys = [str(i) for i in range(len(q["options"]))]
        elif q["kind"] == "scale":
            keys = [str(v) for v in range(q["min"], q["max"] + 1)]
        else:
            keys = []
        if keys:
            out["options"] = [
                {"value": k,
                 **({"label_ko": q["options"][int(k)]["ko"], "label_en": q["options"][int(k)]["en"]}
                    if q["kind"] in CHOICE_KINDS else {}),
                 "count": self.options.get(k, Cell()).count,
                 "weighted": exact(self.options.get(k, Cell()).weight),
                 "weighted_share": exact(self.options.get(k, Cell()).weight / self.weighted)
                 if self.weighted else None}
                for k in keys]
        if q["kind"] in ("scale", "number"):
            out["mean"] = exact(self.total / self.respondents) if self.respondents else None
            out["weighted_mean"] = (exact(self.weighted_total / self.weighted)
                                    if self.weighted else None)
        return out


@dataclass
class QuestionResults:
    overall: Tally = field(default_factory=Tally)
    by_tier: dict[str, Tally] = field(default_factory=dict)
    by_region: dict[str, Tally] = field(default_factory=dict)


def _respondents(t: Tally) -> int:
    return t.respondents


def tally(survey: Survey, groups: Sequence[store.AnswerGroup]) -> dict[str, QuestionResults]:
    """Exact per-question results from grouped rows (region "" = unknown)."""
    by_key = _by_key(survey)
    out = {key: QuestionResults() for key, q in by_key.items() if q["kind"] not in TEXT_LIMITS}
    for g in groups:
        q = by_key.get(g.question)
        if q is None or g.question not in out:
            continue
        r, weight = out[g.question], Fraction(g.weight)
        r.overall.add(q, g.value, weight, g.count)
        r.by_tier.setdefault(g.tier, Tally()).add(q, g.value, weight, g.count)
        r.by_region.setdefault(g.region or "", Tally()).add(q, g.value, weight, g.count)
    return out


CROSS_ROWS = ("single", "multiple", "scale")  # questions whose answers can head a row


def crosstab_pair(survey: Survey, rows: str | None = None,
                  columns: str | None = None) -> tuple[str, str] | None:
    """The two questions to cross: the ones asked for, else the first two that can be
    (rows: a choice or a scale; columns: any counted question). Unknown keys refuse."""
    by_key = _by_key(survey)
    for key in (rows, columns):
        if key is not None and key not in by_key:
            raise NotFound(_("There is no question called “{key}”."), key=key)
    if rows is not None and by_key[rows]["kind"] not in CROSS_ROWS:
        raise RuleError(_("A cross-tab's rows are a choice or a scale question."))
    if columns is not None and by_key[columns]["kind"] in TEXT_LIMITS:
        raise RuleError(_("Written answers cannot be cross-tabulated."))
    qs = _questions(survey)
    rows = rows or next((q["key"] for q in qs if q["kind"] in CROSS_ROWS and q["key"] != columns),
                        None)
    columns = columns or next((q["key"] for q in qs if q["kind"] not in TEXT_LIMITS
                               and q["key"] != rows), None)
    if rows is None or columns is None or rows == columns:
        return None
    return rows, columns


async def crosstab(session: AsyncSession, survey: Survey, rows: str,
                   columns: str, areas: list[str] | None = None) -> dict[str, Any]:
    """Question `columns` answered by each answer to question `rows` (raw and weighted),
    among the responses that answered both; a row of fewer than polls.MIN_GROUP people is
    withheld, as every breakdown is."""
    by_key = _by_key(survey)
    rq, cq = by_key[rows], by_key[columns]
    groups: dict[str, Tally] = {}
    for r_value, c_value, weight, n in await store.crosstab_groups(session, survey.id,
                                                                   rows, columns, areas):
        for part in r_value.split(",") if rq["kind"] == "multiple" else [r_value]:
            groups.setdefault(part, Tally()).add(cq, c_value, Fraction(weight), n)
    if rq["kind"] in CHOICE_KINDS:
        order = [str(i) for i in range(len(rq["options"]))]
    else:
        order = [str(v) for v in range(rq["min"], rq["max"] + 1)]
    ordered = {k: groups.get(k, Tally()) for k in order}
    labels = [{"value": k, **({"label_ko": rq["options"][int(k)]["ko"],
                               "label_en": rq["options"][int(k)]["en"]}
                              if rq["kind"] in CHOICE_KINDS else {})} for k in order]
    return {"rows": rows, "columns": columns, "row_labels": labels,
            "groups": groups_json(ordered, _respondents, partial(Tally.json, q=cq),
                                  "respondents")}


async def results(session: AsyncSession, slug: str, *, texts: bool = True,
                  cross: tuple[str | None, str | None] = (None, None),
                  areas: list[str] | None = None) -> dict[str, Any]:
    """`nalgae survey results S --json`, the dashboard and the API: exact, per question,
    raw and weighted, by tier and by region; free-text answers listed without people;
    `crosstab`: two questions crossed (the ones in `cross`, else the first two that can
    be; None when the survey has no such pair). ``areas``: a chapter's answers only (a
    scoped organiser's; an anonymous answer counts for whole provinces only)."""
    survey = await get(session, slug)
    pair = crosstab_pair(survey, *cross)
    questions = _questions(survey)
    counted = [q["key"] for q in questions if q["kind"] not in TEXT_LIMITS]
    per_question = tally(survey, await store.answer_groups(session, survey.id, counted,
                                                           areas))
    out_questions = []
    for q in questions:
        entry: dict[str, Any] = {"key": q["key"], "kind": q["kind"], "text_ko": q["text"]["ko"],
                                 "text_en": q["text"]["en"]}
        if q["key"] in per_question:
            r = per_question[q["key"]]
            entry["overall"] = r.overall.json(q)
            # Small groups are withheld, by the one rule polls use (polls.too_small).
            shape = partial(Tally.json, q=q)
            entry["by_tier"] = groups_json(dict(sorted(r.by_tier.items())), _respondents,
                                           shape, "respondents")
            entry["by_region"] = groups_json(dict(sorted(r.by_region.items())), _respondents,
                                             shape, "respondents")
        elif texts:
            entry["answers"] = await store.text_answers(session, survey.id, q["key"], areas)
        out_questions.append(entry)
    return {"survey": survey.slug, "id": survey.id, "status": survey.status,
            "anonymous": survey.anonymous, "weights": survey.weights,
            "respondents": await store.respondent_count(session, survey.id, areas),
            # Anonymous responses waiting to be mixed in a batch: not in the figures yet.
            "unmixed": await store.pending_count(session, survey.id) if survey.anonymous else 0,
            "questions": out_questions,
            "crosstab": await crosstab(session, survey, *pair, areas) if pair else None}


def results_lines(result: dict[str, Any], lang: str) -> list[str]:
    """A short text rendering for chat and the CLI (rounded; the JSON is exact)."""
    lines = []
    weighted = any(w != "1" for w in result["weights"].values())
    for q in result["questions"]:
        lines.append(f"<b>{html.escape(q['text_' + lang], quote=False)}</b>")
        overall = q.get("overall")
        if overall is None:
            lines.append(t(lang, "{count} written answers", count=len(q.get("answers", []))))
            continue
        for option in overall.get("options", []):
            share = option["weighted_share"]
            pct = rounded(Fraction(share) * 100) if share is not None else "0.0"
            label = option.get(f"label_{lang}", option["value"])
            lines.append(f"  {html.escape(label, quote=False)}: {option['count']} "
                         f"({pct}%{'*' if weighted else ''})")
        if overall.get("mean") is not None:
            mean = overall["weighted_mean" if weighted else "mean"]
            lines.append("  " + t(lang, "Average: {mean}", mean=rounded(Fraction(mean), 2)))
    return lines

