"""A supporter's home in the bot: what is open for them now, in one tap, and their status.

The home card (/start when signed up, /menu), the lists (/petitions, /polls) and the
dashboard overview all read `open_items`, one statement per page (storage/home.py).
A kind of item needs a `Kind` in storage/home.py and a `Look` here; nothing else.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from statistics import median_low
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.clock import Clock
from campaigns.i18n import _, normalise_language, t, t_plain
from campaigns.regions import region_name
from campaigns.replies import Button, Reply
from campaigns.times import DISPLAY_TZ, local_display
from storage import home as store
from storage import supporters
from storage.models import Supporter

if TYPE_CHECKING:  # the type is all we need
    from campaigns.people import Person

CARD_ITEMS = 5
PAGE = 5
TITLE_IN_BUTTON = 24


@dataclass(frozen=True)
class Look:
    """How one kind of item is shown: its line, its button and (if it has one) its list."""

    line: str  # msgid with {title}, {count} (and {when}: an event's start)
    button: str  # msgid with {title}
    data: str  # callback data, with {slug} or {id}: the feature's own button
    code: str = ""  # in callback data `h:l:<code>:<page>`; "" when the feature lists itself
    heading: str = ""
    empty: str = ""


LOOKS: dict[str, Look] = {
    "petition": Look(_("✍️ <b>{title}</b> — {count} signed"), _("✍️ Sign · {title}"),
                     "sign:{slug}", "p", _("✍️ <b>Open petitions you have not signed</b>"),
                     _("There is no open petition you have not signed.")),
    "poll": Look(_("🗳 <b>{title}</b> — {count} voted"), _("🗳 Vote · {title}"), "poll:{slug}",
                 "v", _("🗳 <b>Open polls for you</b>"),
                 _("There is no open poll for you right now.")),
    # Events and surveys have their own lists (/events, /surveys); the card links to them.
    # An event's button opens its card (time, place, seats) before any answer is given.
    "event": Look(_("📅 <b>{title}</b> — {when}, {count} going"), _("📅 RSVP · {title}"),
                  "ev:c:{slug}"),
    "survey": Look(_("📝 <b>{title}</b> — {count} answered"), _("📝 Answer · {title}"),
                   "sv:{id}:go"),
}
KIND_OF_CODE = {look.code: kind for kind, look in LOOKS.items() if look.code}
KINDS_BY_NAME = {k.name: k for k in store.KINDS}

WEEKDAYS = {
    "ko": ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}


def viewer_of(s: Supporter) -> store.Viewer:
    return store.Viewer(supporter_id=s.id, bot_id=s.bot_id, region=s.region, tier=s.tier)


async def open_items(
    session: AsyncSession, clock: Clock, viewer: store.Viewer | None = None, *,
    kinds: tuple[str, ...] | None = None, limit: int = CARD_ITEMS, offset: int = 0,
) -> store.OpenPage:
    """What is open, newest first, with live counts: for one supporter (not yet signed or
    answered, and only what they may take part in), or for everyone with `viewer=None`
    (the dashboard overview)."""
    chosen = tuple(KINDS_BY_NAME[k] for k in kinds) if kinds else store.KINDS
    return await store.open_page(session, viewer, clock.now(), kinds=chosen, limit=limit,
                                 offset=offset)


def _title(item: store.OpenItem, lang: str) -> str:
    return item.title_en if lang == "en" and item.title_en else item.title_ko


def _line(item: store.OpenItem, lang: str) -> str:
    starts = item.starts_at
    text = t(lang, LOOKS[item.kind].line, title=_title(item, lang), count=f"{item.count:,}",
             when=local_display(starts, lang) if starts else "")
    if item.closes_at is None or item.closes_at == starts:
        return text
    closes = local_display(item.closes_at, lang)
    if starts:
        return text + t(lang, " · RSVP by {date}", date=closes)
    return text + t(lang, " · closes {date}", date=closes)


def _button(item: store.OpenItem, lang: str) -> list[Button]:
    look = LOOKS[item.kind]
    title = _title(item, lang)
    if len(title) > TITLE_IN_BUTTON:
        title = title[:TITLE_IN_BUTTON - 1] + "…"
    # Button labels are not HTML: no escaping (t_plain).
    return [Button(t_plain(lang, look.button, title=title),
                   data=look.data.format(slug=item.slug, id=item.id))]


def home_buttons(lang: str) -> list[list[Button]]:
    return [
        [Button(t(lang, "🏠 What is open for me"), data="h:m")],
        [Button(t(lang, "✍️ Petitions"), data="h:l:p:0"),
         Button(t(lang, "🗳 Polls"), data="h:l:v:0")],
    ]


def _usual_time(starts: list[datetime], lang: str) -> str | None:
    """"Usually on Tuesdays around 19:00", read from recent broadcasts (Korean time)."""
    if len(starts) < 3:
        return None
    local = [s.astimezone(DISPLAY_TZ) for s in starts]
    weekday, times = Counter(s.weekday() for s in local).most_common(1)[0]
    if times * 2 < len(local):  # no weekday dominates: no habit to promise
        return None
    hour = median_low([s.hour for s in local if s.weekday() == weekday])
    return t(lang, "News usually comes on {weekday} around {hour}:00.",
             weekday=WEEKDAYS[lang][weekday], hour=f"{hour:02d}")


async def card(
    session: AsyncSession, s: Supporter, clock: Clock, *, greeting: bool = False,
    edit: bool = False,
) -> Reply:
    """The home card: what is open for this supporter, one button each, then their status."""
    page = await open_items(session, clock, viewer_of(s))
    return await _card(session, s, page, greeting=greeting, edit=edit)


async def card_if_open(session: AsyncSession, s: Supporter, clock: Clock) -> Reply | None:
    """The home card right after sign-up, only when there is something to take part in."""
    page = await open_items(session, clock, viewer_of(s))
    return await _card(session, s, page) if page.items else None


async def _card(
    session: AsyncSession, s: Supporter, page: store.OpenPage, *, greeting: bool = False,
    edit: bool = False,
) -> Reply:
    lang = s.language
    lines = [t(lang, "Welcome back, <b>{name}</b>!", name=s.display_name or "")] if greeting else []
    buttons: list[list[Button]] = []
    if page.items:
        lines.append(t(lang, "🏠 <b>Open for you now</b>"))
        for n, item in enumerate(page.items, 1):
            lines.append(f"{n}. {_line(item, lang)}")
            buttons.append(_button(item, lang))
        if page.more:
            lines.append(t(lang, "More: /petitions · /polls · /events · /surveys"))
    else:
        lines.append(t(lang, "Nothing is open for you right now."))
        habit = _usual_time(await store.recent_broadcast_times(session, s.bot_id), lang)
        lines.append(habit or t(lang, "We will message you as soon as something opens."))
    lines.append("")
    lines.append(t(lang, "📌 Petitions signed: {signed} · {region} · {tier}",
                   signed=f"{page.signed:,}", region=region_name(s.region, lang),
                   tier=t(lang, "member") if s.tier == "member" else t(lang, "supporter")))
    lines.append(t(lang, "Invite friends: /invite · Your interests: /interests"))
    return Reply("\n".join(lines), buttons=buttons, edit=edit)


async def _active(session: AsyncSession, person: Person) -> Supporter | None:
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    if known is None or known.supporter.status != "active":
        return None
    return known.supporter


def _not_signed_up(person: Person) -> list[Reply]:
    return [Reply(t(normalise_language(person.language_code), "not_signed_up"))]


async def menu(session: AsyncSession, person: Person, clock: Clock) -> list[Reply]:
    """/menu: the home card."""
    s = await _active(session, person)
    if s is None:
        return _not_signed_up(person)
    return [await card(session, s, clock)]


async def listing(
    session: AsyncSession, s: Supporter, kind: str, page_no: int, clock: Clock, *,
    edit: bool = False,
) -> Reply:
    """One page (5) of open petitions or polls for this supporter, with Sign / Vote buttons
    (events and surveys are listed by their own /events and /surveys)."""
    lang, look = s.language, LOOKS[kind]
    page_no = max(page_no, 0)
    page = await open_items(session, clock, viewer_of(s), kinds=(kind,), limit=PAGE,
                            offset=page_no * PAGE)
    if not page.items:
        return Reply(t(lang, look.empty), buttons=home_buttons(lang)[:1], edit=edit)
    lines = [t(lang, look.heading)]
    buttons = []
    for n, item in enumerate(page.items, page_no * PAGE + 1):
        lines.append(f"{n}. {_line(item, lang)}")
        buttons.append(_button(item, lang))
    nav = []
    if page_no > 0:
        nav.append(Button(t(lang, "◀ Previous"), data=f"h:l:{look.code}:{page_no - 1}"))
    if page.more:
        nav.append(Button(t(lang, "Next ▶"), data=f"h:l:{look.code}:{page_no + 1}"))
    if nav:
        buttons.append(nav)
    return Reply("\n".join(lines), buttons=buttons, edit=edit)


async def list_command(
    session: AsyncSession, person: Person, kind: str, clock: Clock
) -> list[Reply]:
    """/petitions or /polls: the first page."""
    s = await _active(session, person)
    if s is None:
        return _not_signed_up(person)
    return [await listing(session, s, kind, 0, clock)]


async def button(session: AsyncSession, person: Person, data: str, clock: Clock) -> list[Reply]:
    """`h:m` (the home card) or `h:l:<kind>:<page>` (a list page), edited in place."""
    s = await _active(session, person)
    if s is None:
        return _not_signed_up(person)
    parts = data.split(":")
    if len(parts) == 4 and parts[1] == "l" and parts[2] in KIND_OF_CODE and parts[3].isdigit():
        return [await listing(session, s, KIND_OF_CODE[parts[2]], int(parts[3][:6]), clock,
                              edit=True)]
    return [await card(session, s, clock, edit=True)]


def not_understood(s: Supporter) -> Reply:
    """Free text we are not waiting for: say this is a bot, and offer the home buttons."""
    return Reply(t(s.language, "home_bot_reply"), buttons=home_buttons(s.language))
