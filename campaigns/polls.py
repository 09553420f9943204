"""Polls and member-wide ballots: kinds, eligibility, weights, secret ballots, exact tallies.

Weights are exact: stored as decimal or fraction strings ("1", "0.5", "1/3"),
summed as `fractions.Fraction`, shown as exact strings ("7/3" when a decimal would
have to round). A float never touches a tally.

Secret ballots: "has voted" (`poll_voter`) and the choice (a ballot row with a
random key, no supporter id, no time) are written together, but ballots wait in
`poll_ballot_pending` and are moved into `poll_ballot` in shuffled batches of at
least `MIX_BATCH` (and all at close), so neither a column, the storage order nor
the inserting transaction ties a mixed ballot to its voter. A secret vote cannot be
changed: nothing links it back to the person to change it.
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from random import Random
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import inputs, petitions
from campaigns import webhook_events as events
from campaigns.clock import Clock
from campaigns.errors import RuleError
from campaigns.i18n import _, normalise_language, t
from campaigns.people import Person
from campaigns.petitions import check_slug
from campaigns.regions import REGION_CODES, region_name
from campaigns.replies import Button, Reply
from campaigns.ticks import TickContext
from campaigns.times import local_display
from campaigns.x.results import x_column, x_lines
from storage import petitions as petition_store
from storage import polls as store
from storage import supporters
from storage.db import Database
from storage.models import Poll, Supporter

KINDS: tuple[str, ...] = ("yes_no_abstain", "single", "multiple", "scale")
TIERS: tuple[str, ...] = ("member", "supporter")
DEFAULT_WEIGHTS = {"member": "1", "supporter": "1"}
YES_NO_ABSTAIN = [{"ko": "찬성", "en": "Yes"}, {"ko": "반대", "en": "No"},
                  {"ko": "기권", "en": "Abstain"}]
SCALE = [{"ko": str(i), "en": str(i)} for i in range(1, 6)]
MAX_OPTIONS = 10  # Telegram's native polls allow 10 (12 lately); keyboards stay readable
MIX_BATCH = 10  # secret ballots are mixed in groups of at least this many
# In every breakdown (by tier, by region; public page, dashboard, bot, API, CLI, surveys)
# smaller groups are not shown: one voter in a region would otherwise have their choice
# revealed, and an erased person's answer, which still counts, would become theirs again.
MIN_GROUP = 5
MIN_SECRET_GROUP = MIN_GROUP  # the older name, kept for callers outside this module
VOTE_LIMIT = 30  # vote presses per supporter and minute
VOTE_WINDOW_S = 60

G = TypeVar("G")

_WEIGHT = re.compile(r"^\d{1,9}(\.\d{1,9})?(/\d{1,9})?$")


# --- exact numbers ----------------------------------------------------------------------------

def parse_weight(value: str) -> Fraction:
    """ "1", "0.5", "1/3" → an exact, non-negative Fraction."""
    value = str(value).strip()
    if not _WEIGHT.match(value):
        raise RuleError(_("a weight is a number such as 1, 0.5 or 1/3 (got {value!r})"),
                        value=value)
    weight = Fraction(value)
    if weight < 0:
        raise RuleError(_("weights are not negative"))
    return weight


def exact(value: Fraction) -> str:
    """A Fraction as an exact string: "3", "3.5", or "7/3" when no decimal is exact."""
    if value.denominator == 1:
        return str(value.numerator)
    d, twos, fives = value.denominator, 0, 0
    while d % 2 == 0:
        d, twos = d // 2, twos + 1
    while d % 5 == 0:
        d, fives = d // 5, fives + 1
    if d != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    scaled = value * 10**places
    assert scaled.denominator == 1
    sign = "-" if scaled < 0 else ""
    digits = str(abs(scaled.numerator)).rjust(places + 1, "0")
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


def rounded(value: Fraction, places: int = 1) -> str:
    """For people: half-even rounding of an exact value (the exact one is in the JSON)."""
    with localcontext() as ctx:
        ctx.prec = 50
        dec = Decimal(value.numerator) / Decimal(value.denominator)
        return str(dec.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))


def parse_weights(value: str | dict[str, str] | None) -> dict[str, str]:
    """ "member=1,supporter=1/2" (or a dict) → {"member": "1", "supporter": "1/2"}."""
    if value is None or value == "":
        return dict(DEFAULT_WEIGHTS)
    items: dict[str, str] = {}
    if isinstance(value, str):
        for part in value.split(","):
            tier, sep, weight = part.partition("=")
            if not sep:
                raise RuleError(_("weights look like member=1,supporter=0.5"))
            items[tier.strip()] = weight.strip()
    else:
        items = {str(k): str(v) for k, v in value.items()}
    out = dict(DEFAULT_WEIGHTS)
    for tier, weight in items.items():
        if tier not in TIERS:
            raise RuleError(_("unknown tier {tier!r}; tiers are {tiers}"), tier=tier,
                            tiers=", ".join(TIERS))
        out[tier] = exact(parse_weight(weight))
    return out


# --- tallies ----------------------------------------------------------------------------------

@dataclass
class Cell:
    count: int = 0
    weight: Fraction = field(default_factory=Fraction)


@dataclass
class Breakdown:
    """Results for one group of voters: everyone, one tier or one region."""

    voters: int
    weighted_voters: Fraction
    options: list[Cell]
    value_sum: int = 0  # scale polls: the sum of the chosen values, raw
    weighted_value_sum: Fraction = field(default_factory=Fraction)

    @classmethod
    def empty(cls, n_options: int) -> Breakdown:
        return cls(0, Fraction(0), [Cell() for _ in range(n_options)])

    def add(self, choices: Sequence[int], weight: Fraction, n: int, scale: bool) -> None:
        self.voters += n
        self.weighted_voters += weight * n
        for c in choices:
            self.options[c].count += n
            self.options[c].weight += weight * n
            if scale:
                self.value_sum += (c + 1) * n
                self.weighted_value_sum += weight * (c + 1) * n

    def mean(self) -> Fraction | None:
        return Fraction(self.value_sum, self.voters) if self.voters else None

    def weighted_mean(self) -> Fraction | None:
        return self.weighted_value_sum / self.weighted_voters if self.weighted_voters else None


@dataclass
class Results:
    poll_id: int
    kind: str
    overall: Breakdown
    by_tier: dict[str, Breakdown]
    by_region: dict[str, Breakdown]
    hidden: bool = False  # a secret ballot still open: no running tally is shown


def parse_choices(value: str) -> list[int]:
    return [int(c) for c in value.split(",") if c != ""]


def tally(kind: str, n_options: int, groups: Sequence[store.TallyGroup]) -> Results:
    """Exact results from grouped rows: raw counts and weighted totals, overall, by tier
    and by region (region "" = unknown)."""
    scale = kind == "scale"
    overall = Breakdown.empty(n_options)
    by_tier: dict[str, Breakdown] = {}
    by_region: dict[str, Breakdown] = {}
    for g in groups:
        choices = parse_choices(g.choices)
        weight = Fraction(g.weight)
        overall.add(choices, weight, g.count, scale)
        by_tier.setdefault(g.tier, Breakdown.empty(n_options)).add(choices, weight, g.count,
                                                                   scale)
        by_region.setdefault(g.region or "", Breakdown.empty(n_options)).add(
            choices, weight, g.count, scale)
    return Results(0, kind, overall, dict(sorted(by_tier.items())),
                   dict(sorted(by_region.items())))


def too_small(voters: int) -> bool:
    """THE rule for every breakdown shown to anyone: a group of fewer than MIN_GROUP
    voters is withheld (its size may show, never its choices). Overall totals stay."""
    return voters < MIN_GROUP


def shown_groups(groups: Mapping[str, G], voters: Callable[[G], int]) -> dict[str, G]:
    """The groups a breakdown may show (see `too_small`)."""
    return {k: g for k, g in groups.items() if not too_small(voters(g))}


def groups_json(groups: Mapping[str, G], voters: Callable[[G], int],
                as_json: Callable[[G], dict[str, Any]], count_key: str = "voters",
                ) -> dict[str, dict[str, Any]]:
    """A breakdown for scripts: small groups become ``{"voters": n, "withheld": true}``."""
    return {k: {count_key: voters(g), "withheld": True} if too_small(voters(g))
            else as_json(g) for k, g in groups.items()}


def breakdown_json(b: Breakdown, poll: Poll) -> dict[str, Any]:
    out: dict[str, Any] = {
        "voters": b.voters,
        "weighted_voters": exact(b.weighted_voters),
        "options": [
            {
                "index": i,
                "label_ko": poll.options[i]["ko"],
                "label_en": poll.options[i].get("en") or poll.options[i]["ko"],
                "count": cell.count,
                "weighted": exact(cell.weight),
                "weighted_share": exact(cell.weight / b.weighted_voters)
                if b.weighted_voters else None,
            }
            for i, cell in enumerate(b.options)
        ],
    }
    if poll.kind == "scale":
        mean, wmean = b.mean(), b.weighted_mean()
        out["mean"] = exact(mean) if mean is not None else None
        out["weighted_mean"] = exact(wmean) if wmean is not None else None
    return out


def results_json(poll: Poll, results: Results, voters: int) -> dict[str, Any]:
    """Exact results for scripts and the API: every weighted figure is an exact string."""
    return {
        "poll": poll.slug,
        "id": poll.id,
        "kind": poll.kind,
        "status": poll.status,
        "secret": poll.secret,
        "weights": poll.weights,
        "voters": voters,
        "overall": breakdown_json(results.overall, poll),
        "by_tier": groups_json(results.by_tier, _voters, lambda b: breakdown_json(b, poll)),
        "by_region": groups_json(results.by_region, _voters,
                                 lambda b: breakdown_json(b, poll)),
    }


def _voters(b: Breakdown) -> int:
    return b.voters


def hidden_until_close(poll: Poll) -> bool:
    """A secret ballot shows no running results: watching a tally move as each person
    is marked "has voted" would reveal their choice. Only the final result is shown."""
    return poll.secret and poll.status != "closed"


async def results(session: AsyncSession, poll: Poll,
                  areas: list[str] | None = None) -> Results:
    """Exact results from the stored rows; empty (and `hidden`) for a secret ballot that is
    still open, whoever asks (see `hidden_until_close`). ``areas``: a chapter's results
    (a secret ballot has no district: a district chapter's share of it is not known)."""
    if hidden_until_close(poll):
        r = tally(poll.kind, len(poll.options), [])
        r.hidden = True
    else:
        r = tally(poll.kind, len(poll.options),
                  await store.tally_groups(session, poll, areas))
    r.poll_id = poll.id
    return r


# --- creating, opening, closing (organisers) -------------------------------------------------

def _options_for(
    kind: str, options: Sequence[tuple[str, str | None]] | None
) -> list[dict[str, str]]:
    if kind == "yes_no_abstain":
        return [dict(o) for o in YES_NO_ABSTAIN]
    if kind == "scale":
        return [dict(o) for o in SCALE]
    given = [(inputs.title(ko, "option", inputs.TELEGRAM_TEXT),
              inputs.title(en, "option", inputs.TELEGRAM_TEXT)) for ko, en in (options or [])]
    if not 2 <= len(given) <= MAX_OPTIONS:
        raise RuleError(_("a {kind} poll needs 2 to {max} options"), kind=kind, max=MAX_OPTIONS)
    out = []
    for ko, en in given:
        if not ko or len(ko) > 100 or len(en) > 100:
            raise RuleError(_("each option needs a Korean label of at most 100 characters"))
        out.append({"ko": ko, "en": en or ko})
    if len({o["ko"] for o in out}) != len(out):
        raise RuleError(_("two options have the same label"))
    return out


async def create_poll(
    session: AsyncSession, *, campaign_slug: str, slug: str, question_ko: str, kind: str,
    clock: Clock, actor: str, question_en: str | None = None,
    options: Sequence[tuple[str, str | None]] | None = None,
    weights: str | dict[str, str] | None = None, eligible_tier: str | None = None,
    eligible_region: str | None = None, secret: bool = False, allow_change: bool = True,
    native: bool = False, closes_at: datetime | None = None, status: str = "open",
) -> Poll:
    """A poll, open at once unless `status="draft"`. A secret ballot cannot be changed."""
    slug = check_slug(slug)
    if kind not in KINDS:
        raise RuleError(_("kind is one of {kinds}"), kinds=", ".join(KINDS))
    campaign = await petition_store.campaign_by_slug(session, campaign_slug.strip().lower())
    if campaign is None:
        raise RuleError(_("no campaign called {slug!r}"), slug=campaign_slug)
    # The one input gate (campaigns.inputs): no NUL, no bidi overrides, then the length.
    question_ko = inputs.title(question_ko, "question_ko", inputs.TELEGRAM_TEXT)
    question_en = inputs.optional_title(question_en, "question_en", inputs.TELEGRAM_TEXT)
    if not question_ko or len(question_ko) > 300 or len(question_en or "") > 300:
        raise RuleError(_("a question is 1-300 characters (Telegram's limit for polls)"))
    if eligible_tier is not None and eligible_tier not in TIERS:
        raise RuleError(_("eligible tier is one of {tiers}"), tiers=", ".join(TIERS))
    if eligible_region is not None and eligible_region not in REGION_CODES:
        raise RuleError(_("unknown region {region!r}"), region=eligible_region)
    if secret and native:
        raise RuleError(_("a secret ballot cannot be a native Telegram poll (Telegram lets "
                          "people change a native vote, and a secret one cannot be changed)"))
    if status not in ("draft", "open"):
        raise RuleError(_("a new poll is draft or open"))
    now = clock.now()
    closes_at = petitions.utc(closes_at)
    if closes_at is not None and closes_at <= now:
        raise RuleError(_("the closing time is in the past"))
    if await store.poll_by_slug(session, slug):
        raise RuleError(_("there is already a poll called {slug!r}"), slug=slug)
    poll = await store.insert_poll(
        session, campaign_id=campaign.id, slug=slug, question_ko=question_ko,
        question_en=(question_en or "").strip() or None, kind=kind,
        options=_options_for(kind, options), weights=parse_weights(weights),
        eligible_tier=eligible_tier, eligible_region=eligible_region, secret=secret,
        # Nothing links a secret ballot to its voter, so there is nothing to change.
        allow_change=allow_change and not secret, native=native, status=status,
        closes_at=closes_at, created_at=now, updated_at=now,
    )
    await supporters.audit(session, actor=actor, action="poll.created",
                           target=f"poll:{poll.id}", now=now,
                           details={"kind": kind, "secret": secret, "weights": poll.weights})
    return poll


async def _get(session: AsyncSession, slug: str) -> Poll:
    poll = await store.poll_by_slug(session, slug.strip().lower())
    if poll is None:
        raise RuleError(_("no poll called {slug!r}"), slug=slug)
    return poll


async def open_poll(session: AsyncSession, slug: str, *, actor: str, clock: Clock) -> Poll:
    poll = await _get(session, slug)
    if not await store.change_status(session, poll.id, from_statuses=("draft",), to="open",
                                     now=clock.now()):
        raise RuleError(_("only a draft can be opened (it is {status})"), status=poll.status)
    await supporters.audit(session, actor=actor, action="poll.opened", target=f"poll:{poll.id}",
                           now=clock.now())
    await session.refresh(poll)
    return poll


async def close_poll(session: AsyncSession, slug: str, *, actor: str, clock: Clock) -> Poll:
    """Close by hand; the remaining secret ballots are mixed in the same transaction."""
    poll = await _get(session, slug)
    if not await store.change_status(session, poll.id, from_statuses=("draft", "open"),
                                     to="closed", now=clock.now()):
        raise RuleError(_("it is already closed"))
    await _mix_one(session, poll.id)
    await supporters.audit(session, actor=actor, action="poll.closed", target=f"poll:{poll.id}",
                           now=clock.now())
    await session.refresh(poll)
    return poll


async def close_due(db: Database, clock: Clock) -> list[int]:
    """Scheduler tick: close polls past their closing time (organisers are told); the ids."""
    now = clock.now()
    async with db.session() as session:
        closed = await store.close_due(session, now)
        for poll_id, slug in closed:
            await _mix_one(session, poll_id)
            await supporters.audit(session, actor="scheduler", action="poll.closed",
                                   target=f"poll:{poll_id}", now=now)
            voters = await store.voter_count(session, poll_id)
            await petition_store.add_notice(
                session, kind="poll_closed", petition_id=None,
                msgid=_("📊 The poll “{slug}” closed with {voters} voters. Results: /results "
                        "{slug}"),
                params={"slug": slug, "voters": voters}, now=now)
    return [poll_id for poll_id, _ in closed]


async def close_due_tick(ctx: TickContext) -> object:
    """Close polls whose time has come (their last secret ballots are mixed then)."""
    return len(await close_due(ctx.db, ctx.clock))


async def mix_tick(ctx: TickContext) -> object:
    """Mix pending secret ballots in batches of at least MIX_BATCH."""
    return await mix_ballots(ctx.db)


async def _mix_one(session: AsyncSession, poll_id: int, rng: Random | None = None) -> int:
    ballots = await store.take_pending(session, poll_id)
    (rng or secrets.SystemRandom()).shuffle(ballots)
    await store.insert_ballots(session, poll_id, ballots)
    return len(ballots)


async def mix_ballots(db: Database, *, min_batch: int = MIX_BATCH,
                      rng: Random | None = None) -> int:
    """Scheduler tick: move pending secret ballots into `poll_ballot`, shuffled, in batches
    of at least `min_batch` (all of them once the poll is closed). How many moved."""
    moved = 0
    async with db.session() as session:
        for poll_id, (count, status) in sorted((await store.pending_counts(session)).items()):
            if count >= min_batch or status == "closed":
                moved += await _mix_one(session, poll_id, rng)
    return moved


# --- asking and voting (supporters) ----------------------------------------------------------

def _question(poll: Poll, lang: str) -> str:
    return poll.question_en if lang == "en" and poll.question_en else poll.question_ko


def _label(poll: Poll, index: int, lang: str) -> str:
    option = poll.options[index]
    if lang == "en":
        return option.get("en") or option["ko"]
    return option["ko"]


def is_open(poll: Poll, now: datetime) -> bool:
    return poll.status == "open" and (poll.closes_at is None or now < poll.closes_at)


def keyboard(poll: Poll, lang: str, selected: int = 0) -> list[list[Button]]:
    """One button per option (callback `vote:<poll id>:<option>`); multiple choice toggles
    with the selection carried in the data itself (`t<mask>`), then submits (`s<mask>`)."""
    prefix = f"vote:{poll.id}:"
    labels = [_label(poll, i, lang) for i in range(len(poll.options))]
    if poll.kind in ("yes_no_abstain", "scale"):
        return [[Button(label, data=f"{prefix}{i}") for i, label in enumerate(labels)]]
    if poll.kind == "single":
        return [[Button(label, data=f"{prefix}{i}")] for i, label in enumerate(labels)]
    rows = [[Button(("☑️ " if selected >> i & 1 else "⬜ ") + label,
                    data=f"{prefix}t{selected ^ (1 << i)}")] for i, label in enumerate(labels)]
    if selected:
        rows.append([Button(t(lang, "✅ Submit my choices"), data=f"{prefix}s{selected}")])
    return rows


def _hints(poll: Poll, lang: str) -> list[str]:
    lines = []
    if poll.kind == "multiple":
        lines.append(t(lang, "Choose one or more, then press “Submit”."))
    if poll.secret:
        lines.append(t(lang, "🔒 Secret ballot: your choice is stored without your name, and "
                             "cannot be changed once cast."))
    elif not poll.allow_change:
        lines.append(t(lang, "Your answer cannot be changed once sent."))
    if poll.eligible_tier == "member":
        lines.append(t(lang, "For party members only."))
    if poll.eligible_region:
        lines.append(t(lang, "For supporters in {region} only.",
                       region=region_name(poll.eligible_region, lang)))
    if poll.closes_at is not None:
        lines.append(t(lang, "Closes {date}", date=local_display(poll.closes_at, lang)))
    return lines


def question_reply(poll: Poll, lang: str, *, selected: int = 0, edit: bool = False) -> Reply:
    """The poll message: the question, what applies, and a keyboard for its kind."""
    text = "\n".join([f"📊 <b>{html.escape(_question(poll, lang), quote=False)}</b>",
                      *_hints(poll, lang)])
    return Reply(text, buttons=keyboard(poll, lang, selected), edit=edit)


async def ask(session: AsyncSession, slug: str, lang: str, clock: Clock) -> list[Reply]:
    """/poll <slug>: the question with its keyboard (or a note that it is closed)."""
    poll = await store.poll_by_slug(session, (slug or "").strip().lower())
    if poll is None or poll.status == "draft":
        return [Reply(t(lang, "There is no poll called “{slug}”.", slug=(slug or "")[:40]))]
    if not is_open(poll, clock.now()):
        return [Reply(t(lang, "This poll is closed."),
                      buttons=[[Button(t(lang, "📊 Results"), data=f"results:{poll.id}")]])]
    return [question_reply(poll, lang)]


@dataclass(frozen=True)
class PollToSend:
    """/poll <slug>: messages to send, or a native Telegram poll to send and map."""

    replies: list[Reply]
    native: NativeSpec | None = None
    poll_id: int | None = None
    supporter_id: int | None = None


async def poll_to_send(
    session: AsyncSession, person: Person, slug: str | None, clock: Clock
) -> PollToSend:
    """The poll for one supporter: its keyboard, or the native poll when it is one."""
    supporter = await _supporter_of(session, person)
    if supporter is None or supporter.status != "active":
        return PollToSend([Reply(t(normalise_language(person.language_code), "not_signed_up"))])
    lang = supporter.language
    if not slug:
        return PollToSend([Reply(t(lang, "Send the poll's name like this: /poll next-action"))])
    replies = await ask(session, slug, lang, clock)
    poll = await store.poll_by_slug(session, slug.strip().lower())
    if poll is None or not is_open(poll, clock.now()):
        return PollToSend(replies)
    if not _eligible(poll, supporter):
        return PollToSend([_not_eligible(poll, supporter)])
    if poll.native:
        return PollToSend([], native_spec(poll, lang), poll.id, supporter.id)
    return PollToSend(replies)


@dataclass(frozen=True)
class VoteData:
    poll_id: int
    choices: list[int] | None  # None: only the multiple-choice selection changed
    selected: int = 0


def parse_vote_data(data: str) -> VoteData | None:
    """`vote:<poll>:<i>`, `vote:<poll>:t<mask>` (toggle) or `vote:<poll>:s<mask>` (submit)."""
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != "vote" or not parts[1].isdigit():
        return None
    poll_id, opt = int(parts[1]), parts[2]
    if opt.isdigit() and len(opt) <= 3:
        return VoteData(poll_id, [int(opt)])
    if opt[:1] in ("t", "s") and opt[1:].isdigit() and len(opt) <= 5:
        mask = int(opt[1:])
        if opt[0] == "t":
            return VoteData(poll_id, None, mask)
        return VoteData(poll_id, [i for i in range(MAX_OPTIONS) if mask >> i & 1], mask)
    return None


def _eligible(poll: Poll, supporter: Supporter) -> bool:
    if poll.eligible_tier is not None and supporter.tier != poll.eligible_tier:
        return False
    return poll.eligible_region is None or supporter.region == poll.eligible_region


def _not_eligible(poll: Poll, supporter: Supporter) -> Reply:
    lang = supporter.language
    if poll.eligible_tier == "member" and supporter.tier != "member":
        text = t(lang, "Sorry, this vote is for party members only.")
    else:
        text = t(lang, "Sorry, this vote is for supporters in {region} only.",
                 region=region_name(poll.eligible_region, lang))
    return Reply(text, toast=t(lang, "Not eligible"))


def _valid_choices(poll: Poll, choices: Sequence[int]) -> list[int] | None:
    distinct = sorted(set(choices))
    if not distinct or any(not 0 <= c < len(poll.options) for c in distinct):
        return None
    if poll.kind != "multiple" and len(distinct) != 1:
        return None
    return distinct


@dataclass(frozen=True)
class VoteOutcome:
    status: str  # thanks | changed | unchanged | locked | secret_locked | closed |
    #              not_eligible | invalid | unknown | slow_down | not_signed_up
    replies: list[Reply]


async def vote(
    session: AsyncSession, supporter: Supporter, poll_id: int, choices: Sequence[int],
    clock: Clock, *, limiter: petition_store.RateLimiter | None = None, edit: bool = True,
) -> VoteOutcome:
    """Record an answer (or a secret ballot): once per supporter, changeable if allowed."""
    lang = supporter.language
    poll = await store.poll_by_id(session, poll_id)
    if poll is None or poll.status == "draft":
        return VoteOutcome("unknown", [Reply(t(lang, "This poll no longer exists."),
                                             toast=t(lang, "This poll no longer exists."))])
    now = clock.now()
    if supporter.status != "active":
        return VoteOutcome("not_signed_up", [Reply(t(lang, "not_signed_up"))])
    if not is_open(poll, now):
        return VoteOutcome("closed", [_closed_reply(poll, lang)])
    if not _eligible(poll, supporter):
        return VoteOutcome("not_eligible", [_not_eligible(poll, supporter)])
    valid = _valid_choices(poll, choices)
    if valid is None:
        return VoteOutcome("invalid", [question_reply(poll, lang, edit=edit)])
    if limiter is not None and not await limiter.hit(f"vote:{supporter.id}", VOTE_LIMIT,
                                                     VOTE_WINDOW_S, now):
        return VoteOutcome("slow_down", [petitions._slow_down(lang)])
    encoded = ",".join(str(c) for c in valid)
    if await store.record_voter(session, poll.id, supporter.id, now):
        weight = poll.weights.get(supporter.tier, "0")
        if poll.secret:
            await store.insert_pending_ballot(session, poll_id=poll.id, choices=encoded,
                                              tier=supporter.tier, region=supporter.region,
                                              weight=weight)
        else:
            await store.insert_answer(session, poll_id=poll.id, supporter_id=supporter.id,
                                      choices=encoded, tier=supporter.tier,
                                      region=supporter.region, weight=weight, now=now)
        await _emit_answered(session, poll, supporter, valid, now, changed=False)
        return VoteOutcome("thanks", [_answered(poll, lang, valid, "thanks", edit)])
    if poll.secret:
        return VoteOutcome("secret_locked", [Reply(
            t(lang, "You have already voted in this secret ballot. A secret vote cannot be "
                    "changed."), toast=t(lang, "Already voted"))])
    if not poll.allow_change:
        return VoteOutcome("locked", [Reply(
            t(lang, "You have already answered, and this poll does not allow changes."),
            toast=t(lang, "Already answered"))])
    previous = await store.answer_of(session, poll.id, supporter.id)
    if previous is not None and previous.choices == encoded:
        return VoteOutcome("unchanged", [_answered(poll, lang, valid, "unchanged", edit)])
    if not await store.change_answer(session, poll_id=poll.id, supporter_id=supporter.id,
                                     choices=encoded, now=now):
        return VoteOutcome("closed", [_closed_reply(poll, lang)])
    await _emit_answered(session, poll, supporter, valid, now, changed=True)
    return VoteOutcome("changed", [_answered(poll, lang, valid, "changed", edit)])


async def _emit_answered(session: AsyncSession, poll: Poll, supporter: Supporter,
                         choices: Sequence[int], now: datetime, *, changed: bool) -> None:
    """The webhook event; a secret ballot's says only that the person voted, never what."""
    data: dict[str, Any] = {"poll_id": poll.id, "poll": poll.slug, "person_id": supporter.id,
                            "secret": poll.secret, "changed": changed}
    if not poll.secret:
        data["choices"] = list(choices)
    await events.emit(session, events.POLL_ANSWERED, data, now=now, supporter_id=supporter.id)


def _closed_reply(poll: Poll, lang: str) -> Reply:
    return Reply(t(lang, "This poll is closed."), toast=t(lang, "This poll is closed."),
                 buttons=[[Button(t(lang, "📊 Results"), data=f"results:{poll.id}")]])


def _answered(poll: Poll, lang: str, choices: Sequence[int], how: str, edit: bool) -> Reply:
    chosen = ", ".join(_label(poll, c, lang) for c in choices)
    headline = {
        "thanks": t(lang, "✅ Thank you! Your answer: {choice}", choice=chosen),
        "changed": t(lang, "✅ Answer changed to: {choice}", choice=chosen),
        "unchanged": t(lang, "Your answer stays: {choice}", choice=chosen),
    }[how]
    toast = {"thanks": t(lang, "✅ Recorded"), "changed": t(lang, "✅ Changed"),
             "unchanged": t(lang, "No change")}[how]
    lines = [f"📊 <b>{html.escape(_question(poll, lang), quote=False)}</b>", "", headline]
    buttons: list[list[Button]] = []
    if poll.allow_change and not poll.secret:
        lines.append(t(lang, "You can change it until the poll closes."))
        buttons = keyboard(poll, lang, sum(1 << c for c in choices) if poll.kind == "multiple"
                           else 0)
    return Reply("\n".join(lines), buttons=buttons, edit=edit, toast=toast)


async def _supporter_of(session: AsyncSession, person: Person) -> Supporter | None:
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    return known.supporter if known else None


async def vote_button(
    session: AsyncSession, person: Person, data: str, clock: Clock, *,
    limiter: petition_store.RateLimiter | None = None,
) -> list[Reply]:
    """An inline-keyboard press: vote, or (multiple choice) update the selection shown."""
    lang_guess = normalise_language(person.language_code)
    parsed = parse_vote_data(data)
    if parsed is None:
        return [Reply(t(lang_guess, "This poll no longer exists."),
                      toast=t(lang_guess, "This poll no longer exists."))]
    supporter = await _supporter_of(session, person)
    if supporter is None or supporter.status != "active":
        return [Reply(t(lang_guess, "not_signed_up"), toast=t(lang_guess, "Please sign up first"))]
    if parsed.choices is None:
        poll = await store.poll_by_id(session, parsed.poll_id)
        if poll is None or not is_open(poll, clock.now()):
            return [Reply(t(supporter.language, "This poll is closed."),
                          toast=t(supporter.language, "This poll is closed."))]
        return [question_reply(poll, supporter.language, selected=parsed.selected, edit=True)]
    outcome = await vote(session, supporter, parsed.poll_id, parsed.choices, clock,
                         limiter=limiter)
    return outcome.replies


# --- native Telegram polls --------------------------------------------------------------------

@dataclass(frozen=True)
class NativeSpec:
    question: str
    options: list[str]
    allows_multiple: bool


def native_spec(poll: Poll, lang: str) -> NativeSpec:
    """What to pass to sendPoll (non-anonymous, so each answer names its voter)."""
    return NativeSpec(_question(poll, lang)[:300],
                      [_label(poll, i, lang)[:100] for i in range(len(poll.options))],
                      poll.kind == "multiple")


async def record_native(
    session: AsyncSession, *, bot_id: int, telegram_poll_id: str, poll_id: int,
    supporter_id: int | None, chat_id: int, message_id: int, clock: Clock,
) -> None:
    """Remember a sent native poll, so that its `poll_answer` updates map back."""
    await store.map_native(session, bot_id=bot_id, telegram_poll_id=telegram_poll_id,
                           poll_id=poll_id, supporter_id=supporter_id, chat_id=chat_id,
                           message_id=message_id, now=clock.now())


async def native_answer(
    session: AsyncSession, person: Person, telegram_poll_id: str, option_ids: Sequence[int],
    clock: Clock,
) -> list[Reply]:
    """A `poll_answer`: the vote of the person who answered, in our poll. Telegram already
    shows their choice, so only problems get a message (closed, not eligible, ...)."""
    mapping = await store.native_lookup(session, person.bot_id, telegram_poll_id)
    if mapping is None:
        return []
    supporter = await _supporter_of(session, person)
    if supporter is None or supporter.status != "active":
        return []  # not signed up: nothing may be stored about them
    lang = supporter.language
    poll = await store.poll_by_id(session, mapping.poll_id)
    if poll is None:
        return []
    if not option_ids:  # the vote was retracted in Telegram
        if not is_open(poll, clock.now()):
            return [_closed_reply(poll, lang)]
        if poll.secret or not poll.allow_change:
            return [Reply(t(lang, "Your answer was kept: this poll does not allow changes."))]
        await store.withdraw_answer(session, poll_id=poll.id, supporter_id=supporter.id,
                                    now=clock.now())
        return []
    outcome = await vote(session, supporter, poll.id, option_ids, clock, edit=False)
    if outcome.status in ("thanks", "changed", "unchanged"):
        return []
    return [Reply(r.text) for r in outcome.replies]


# --- results for voters and organisers -------------------------------------------------------

def _result_lines(poll: Poll, b: Breakdown, lang: str) -> list[str]:
    weighted = any(w != "1" for w in poll.weights.values())
    lines = []
    for i, cell in enumerate(b.options):
        share = rounded(cell.weight / b.weighted_voters * 100) if b.weighted_voters else "0.0"
        if weighted:
            lines.append(t(lang, "{option}: {count} votes, weighted {weighted} ({share}%)",
                           option=_label(poll, i, lang), count=cell.count,
                           weighted=rounded(cell.weight, 2), share=share))
        else:
            lines.append(t(lang, "{option}: {count} votes ({share}%)",
                           option=_label(poll, i, lang), count=cell.count, share=share))
    if poll.kind == "scale" and b.voters:
        mean = b.weighted_mean() if weighted else b.mean()
        if mean is not None:
            lines.append(t(lang, "Average: {mean}", mean=rounded(mean, 2)))
    return lines


def results_reply(poll: Poll, r: Results, lang: str, region: str | None) -> Reply:
    """The national result, with the voter's own region beside it."""
    lines = [f"📊 <b>{html.escape(_question(poll, lang), quote=False)}</b>", "",
             t(lang, "Nationwide ({voters} voters):", voters=r.overall.voters),
             *_result_lines(poll, r.overall, lang)]
    if region:
        mine = r.by_region.get(region)
        name = region_name(region, lang)
        if mine is None or not mine.voters:
            lines += ["", t(lang, "No votes from {region}.", region=name)]
        elif too_small(mine.voters):
            lines += ["", t(lang, "{region}: too few voters to show without revealing "
                                  "anyone's choice.", region=name)]
        else:
            lines += ["", t(lang, "{region} ({voters} voters):", region=name,
                            voters=mine.voters), *_result_lines(poll, mine, lang)]
    return Reply("\n".join(lines))


async def results_for(
    session: AsyncSession, person: Person, poll_ref: str, clock: Clock
) -> list[Reply]:
    """/results <slug> or the Results button: once the poll is closed, for anyone signed up
    (organisers see running results with /stats and the CLI)."""
    supporter = await _supporter_of(session, person)
    lang = supporter.language if supporter else normalise_language(person.language_code)
    if supporter is None or supporter.status != "active":
        return [Reply(t(lang, "not_signed_up"))]
    poll = (await store.poll_by_id(session, int(poll_ref)) if poll_ref.isdigit()
            else await store.poll_by_slug(session, poll_ref.strip().lower()))
    if poll is None or poll.status == "draft":
        return [Reply(t(lang, "There is no poll called “{slug}”.", slug=poll_ref[:40]))]
    if is_open(poll, clock.now()):
        return [Reply(t(lang, "Results are shown once the poll closes."),
                      toast=t(lang, "Results are shown once the poll closes."))]
    r = await results(session, poll)
    reply = results_reply(poll, r, lang, supporter.region)
    x = await x_column(session, poll.id)
    if x is not None:  # native X poll totals: a separate, anonymous column
        labels = [_label(poll, i, lang) for i in range(len(poll.options))]
        reply = Reply("\n".join([reply.text, "", *x_lines(x, labels, lang)]))
    return [reply]


async def summary(session: AsyncSession, slug: str,
                  areas: list[str] | None = None) -> dict[str, Any]:
    """`nalgae poll results --json`: exact results (a secret ballot's once it has closed).

    ``areas`` (a scoped organiser's): their chapters' results, `"chapters_only": true`,
    with the national ones under `"national"` once published (the poll closed)."""
    poll = await _get(session, slug)
    voters = await store.voter_count(session, poll.id)
    if hidden_until_close(poll):
        return {"poll": poll.slug, "id": poll.id, "kind": poll.kind, "status": poll.status,
                "secret": True, "weights": poll.weights,
                "voters": voters if areas is None else None, "hidden_until_close": True}
    if areas is not None:
        mine = await results(session, poll, areas)
        out = {**results_json(poll, mine, mine.overall.voters), "chapters_only": True}
        if poll.status == "closed":
            out["national"] = results_json(poll, await results(session, poll), voters)
        return out
    out = results_json(poll, await results(session, poll), voters)
    # Native X polls: totals only (X never says who voted), a column beside these results.
    x = await x_column(session, poll.id)
    if x is not None:
        out["channels"] = {"x": x}
    return out


async def stored_ballots(session: AsyncSession, slug: str,
                         areas: list[str] | None = None) -> list[dict[str, Any]]:
    """Every stored answer or ballot without supporter ids: enough to recompute results
    (``areas``: a chapter's only)."""
    poll = await _get(session, slug)
    if hidden_until_close(poll):
        raise RuleError(_("a secret ballot's rows are shown once it has closed"))
    return safe_rows(await store.stored_rows(session, poll, areas))


def safe_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Stored rows as they may leave the system: choices, tier and weight always (so the
    published totals can be recounted), the region only where it cannot single anyone out.

    A row's region is withheld (None, ``"withheld": true``) when its (tier, region) group
    holds fewer than MIN_GROUP linked rows (see `too_small`: the lone voter from Jeju), and
    always for an erased supporter's answer, which counts but must never be attributable.
    Tier stays: the weight shows it anyway, and tier breakdowns follow the same rule.
    """
    sizes: dict[tuple[str, str | None], int] = {}
    for r in rows:
        if not r.get("erased"):
            sizes[(r["tier"], r["region"])] = sizes.get((r["tier"], r["region"]), 0) + 1
    out = []
    for r in rows:
        withheld = bool(r.get("erased")) or (
            r["region"] is not None and too_small(sizes.get((r["tier"], r["region"]), 0)))
        out.append({"choices": r["choices"], "tier": r["tier"],
                    "region": None if withheld else r["region"],
                    "weight": r["weight"], "withheld": withheld})
    # Sorted on what is shown only: a stored order could tell withheld rows apart.
    out.sort(key=lambda r: (r["choices"], r["tier"], r["region"] or "", r["weight"],
                            r["withheld"]))
    return out

