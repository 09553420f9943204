"""Times as people in Korea mean them: one parser and one display zone for every door.

Organisers type "2026-12-31 18:00" (CLI, dashboard, API, chat); without a zone that
is Korean time (KST, UTC+9, no daylight saving). Everything is stored in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from campaigns.errors import RuleError
from campaigns.i18n import _

# Dashboard days and "signed up on" days are Korean calendar days; storage/ owns the offset
# (it groups by day in SQL and may not import campaigns/).
from storage.supporters import KST_OFFSET

DISPLAY_TZ = ZoneInfo("Asia/Seoul")


def parse_local(value: str, *, field: str = "time") -> datetime:
    """An ISO 8601 time ("2026-12-31T18:00", "2026-12-31 18:00", "...Z", "...+09:00").

    Without a zone it is KST. Refused with a translated RuleError, never a traceback.
    """
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T", 1).replace("Z", "+00:00"))
    except ValueError:
        raise RuleError(_("{field}: {value!r} is not a time like 2026-12-31T18:00 (KST)."),
                        field=field, value=value) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=DISPLAY_TZ)


def parse_optional(value: str | None, *, field: str = "time") -> datetime | None:
    """`parse_local`, with an empty value meaning "not set"."""
    if value is None or not value.strip():
        return None
    return parse_local(value, field=field)


def local_display(moment: datetime, lang: str = "ko") -> str:
    """A moment as people in Korea read it, whatever the server's zone."""
    local = moment.astimezone(DISPLAY_TZ)
    return local.strftime("%Y-%m-%d %H:%M") + (" (KST)" if lang == "en" else "")


def kst_day_start(moment: datetime) -> datetime:
    """The UTC instant at which the Korean calendar day containing `moment` began."""
    day = (moment.astimezone(UTC) + KST_OFFSET).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - KST_OFFSET
