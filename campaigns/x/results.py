"""The X column of a campaign poll's results: native X poll totals, read back once X closes them.

Apart from campaigns/x/posts.py (which composes posts and so needs the broadcasts) so that
showing poll results never imports the broadcast machinery.
"""

from __future__ import annotations

from typing import Any

from campaigns.i18n import t
from storage import x as store
from storage.db import Database


async def x_column(db_or_session: Any, poll_id: int) -> dict[str, Any] | None:
    """The X column of a campaign poll's results: totals per option, anonymous; None if none.

    Accepts a Database or an open session.
    """
    if isinstance(db_or_session, Database):
        async with db_or_session.session() as s:
            rows = await store.polls_of(s, poll_id)
    else:
        rows = await store.polls_of(db_or_session, poll_id)
    if not rows:
        return None
    n = max(len(r.options) for r in rows)
    totals = [0] * n
    closed = [r for r in rows if r.status == "closed" and r.counts is not None]
    for r in closed:
        for i, votes in enumerate(r.counts or []):
            totals[i] += int(votes)
    return {
        "channel": "x",
        "anonymous": True,
        "posts": len(rows),
        "closed": len(closed),
        "voters": sum(totals),
        "options": [{"index": i, "label": rows[0].options[i] if i < len(rows[0].options)
                     else str(i), "count": c} for i, c in enumerate(totals)],
        "tweets": [str(r.tweet_id) for r in rows],
    }


def share(count: int, total: int) -> str:
    """A percentage with one decimal, as the Telegram results show theirs."""
    return f"{count * 100 / total:.1f}" if total else "0.0"


def x_lines(column: dict[str, Any], labels: list[str], lang: str) -> list[str]:
    """The X column for the /results message (Telegram HTML): labelled as what it is.

    X reports totals only: nobody is known, so nothing is weighted, nothing is by region,
    and the figures stay apart from the signed-up voters' results, never added to them.
    ``labels`` are the campaign poll's own option labels in the reader's language.
    """
    if not column["closed"]:
        return [t(lang, "On X: the poll is still open there; its totals appear once X "
                        "closes it.")]
    voters = int(column["voters"])
    lines = [t(lang, "On X ({voters} votes, anonymous: not weighted, not by region, "
                     "not in the figures above):", voters=voters)]
    for option in column["options"]:
        index = int(option["index"])
        label = labels[index] if index < len(labels) else str(option["label"])
        lines.append(t(lang, "{option}: {count} votes ({share}%)", option=label,
                       count=option["count"], share=share(int(option["count"]), voters)))
    return lines
