"""Where people come from: `?src=` on public pages and posters, and the per-source report.

A public page or poster opened with ``?src=rally1203`` puts the source into its Telegram
deep link (``start=sign_<slug>__src_rally1203``, `campaigns.intents`), so a printed QR code
is attributable. The source rides through the consent button (nothing is stored before
"agree") and becomes the new supporter's first source; a signature made through the link
records it too. The report counts sign-ups, signatures, RSVPs and open-poll answers per
source per Korean day; a count of fewer than five people is withheld (`polls.too_small`,
as every breakdown is), and secret ballots and anonymous surveys are never attributed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import intents
from campaigns.chapters import Scope
from campaigns.clock import Clock
from campaigns.errors import NotFound, RuleError
from campaigns.i18n import _
from campaigns.polls import too_small
from campaigns.times import KST_OFFSET
from storage import petitions as petition_store
from storage import sources as store

KINDS = store.KINDS
MOST_DAYS = 366


def clean_source(value: str | None) -> str | None:
    """A `?src=` value as a deep link may carry it (lower-case, [a-z0-9-], up to 32), or
    None: a bad one is ignored, never refused, so a mistyped poster still works."""
    value = (value or "").strip().lower()
    return value if intents.SOURCE.match(value) else None


def deep_link(bot_username: str | None, payload: str, source: str | None) -> str | None:
    """``https://t.me/<bot>?start=<payload>[__src_<source>]`` (None without a bot)."""
    if not bot_username:
        return None
    return f"https://t.me/{bot_username}?start={intents.with_source(payload, source)}"


def _shown(n: int) -> int | None:
    """A count as anyone may see it: zero, five or more, else withheld (None)."""
    return n if n == 0 or not too_small(n) else None


async def report(session: AsyncSession, clock: Clock, *, campaign: str | None = None,
                 days: int = 30, scope: Scope | None = None) -> dict[str, Any]:
    """Per source per day (newest first) and per source in all; `null` = fewer than 5."""
    if not 1 <= days <= MOST_DAYS:
        raise RuleError(_("days must be between 1 and {most}"), most=MOST_DAYS)
    campaign_id = None
    if campaign:
        found = await petition_store.campaign_by_slug(session, campaign)
        if found is None:
            raise NotFound(_("no campaign called {slug!r}"), slug=campaign)
        campaign_id = found.id
    today = (clock.now().astimezone(UTC) + KST_OFFSET).date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC) - KST_OFFSET
    cells = await store.counts(
        session, since=since, offset_minutes=int(KST_OFFSET.total_seconds() // 60),
        campaign_id=campaign_id, regions=scope.region_filter if scope else None)
    rows = [{"day": day.isoformat(), "source": source,
             **{k: _shown(counts[k]) for k in KINDS}}
            for (day, source), counts in sorted(cells.items(),
                                                key=lambda kv: (kv[0][0], kv[0][1]),
                                                reverse=True)]
    totals: dict[str, dict[str, int]] = {}
    for (_day, source), counts in cells.items():
        total = totals.setdefault(source, dict.fromkeys(KINDS, 0))
        for k in KINDS:
            total[k] += counts[k]
    return {"campaign": campaign, "since": first.isoformat(), "until": today.isoformat(),
            "days": rows,
            "sources": [{"source": source, **{k: _shown(total[k]) for k in KINDS}}
                        for source, total in sorted(totals.items(),
                                                    key=lambda kv: -kv[1]["signups"])]}
