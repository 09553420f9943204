"""Personal invite links (`/invite`), who joined through whom, and the leaderboard.

Every supporter may ask for their own link, ``https://t.me/<bot>?start=ref_<code>``. A new
person who opens it and agrees is recorded as invited by them (`referral`, one per person,
written at consent: nothing before), and the inviter's `joined` counter goes up. Someone
who was already a supporter, or who declines, is never counted. The leaderboard ranks
inviters per chapter; a name shows only for those who turned "show my name" on in /invite.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.chapters import OutOfScope, Scope
from campaigns.errors import NotFound
from campaigns.i18n import _, normalise_language, t
from campaigns.people import Person
from campaigns.replies import Button, Reply
from storage import chapters as chapter_store
from storage import invites as store
from storage import supporters
from storage.models import Invite, Supporter

# Lower-case letters and digits without the look-alikes (l, o, 0, 1): read off a screen.
ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
CODE_LENGTH = 10
CODE = re.compile(rf"^[{ALPHABET}]{{{CODE_LENGTH}}}$")
# The source of a sign-up through an invite link that named no other source.
INVITE_SOURCE = "invite"
# A `ref_` that is nobody's code is kept as the source, as it was before invite links.
LEGACY_REF = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def link(bot_username: str | None, code: str) -> str:
    return f"https://t.me/{bot_username}?start=ref_{code}" if bot_username else f"ref_{code}"


async def joined_through(session: AsyncSession, supporter: Supporter, code: str | None,
                         now: datetime) -> None:
    """At the consent of a NEW supporter: record whose invite brought them, if any."""
    if not code:
        return
    looks_like_invite = CODE.match(code) is not None
    referrer = await store.inviter_by_code(session, code) if looks_like_invite else None
    if referrer is None or referrer == supporter.id:
        if supporter.source_ref is None and LEGACY_REF.match(code):
            # An invite code whose owner left (or was erased) is not copied anywhere: the
            # erased person's code must not come back as someone's source.
            supporter.source_ref = INVITE_SOURCE if looks_like_invite else code
        return
    await store.add_referral(session, supporter.id, referrer, now)
    if supporter.source_ref is None:
        supporter.source_ref = INVITE_SOURCE


async def _own(session: AsyncSession, s: Supporter, now: datetime) -> Invite:
    invite = await store.invite_of(session, s.id)
    if invite is None:
        code = new_code()
        while await store.code_taken(session, code):  # 32**10 codes: practically never
            code = new_code()
        invite = await store.create_invite(session, s.id, code, now)
    return invite


def _card(s: Supporter, invite: Invite, bot_username: str | None, *,
          edit: bool = False) -> Reply:
    lang, url = s.language, link(bot_username, invite.code)
    toggle = (Button(t(lang, "🙈 Hide my name on the leaderboard"), data="inv:hide")
              if invite.show_name else
              Button(t(lang, "🏆 Show my name on the leaderboard"), data="inv:show"))
    buttons = [[toggle]]
    if bot_username:
        buttons.insert(0, [Button(t(lang, "📤 Share my link"),
                                  url=f"https://t.me/share/url?url={url}")])
    return Reply(t(lang, "invite_card", link=url, joined=f"{invite.joined:,}",
                   shown=t(lang, "shown") if invite.show_name else t(lang, "not shown")),
                 buttons=buttons, edit=edit)


async def _active(session: AsyncSession, person: Person) -> Supporter | None:
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    return known.supporter if known and known.supporter.status == "active" else None


async def invite(session: AsyncSession, person: Person, bot_username: str | None,
                 now: datetime) -> list[Reply]:
    """/invite: my link, how many joined through it, and the leaderboard toggle."""
    s = await _active(session, person)
    if s is None:
        return [Reply(t(normalise_language(person.language_code), "not_signed_up"))]
    return [_card(s, await _own(session, s, now), bot_username)]


async def toggle(session: AsyncSession, person: Person, data: str, bot_username: str | None,
                 now: datetime) -> list[Reply]:
    """`inv:show` / `inv:hide`: appear by name on the leaderboard, or not."""
    s = await _active(session, person)
    if s is None:
        return [Reply(t(normalise_language(person.language_code), "not_signed_up"))]
    invite = await _own(session, s, now)
    invite.show_name = data == "inv:show"
    await supporters.audit(session, actor=f"supporter:{s.id}", now=now,
                           action="invite.name_shown" if invite.show_name
                           else "invite.name_hidden")
    return [_card(s, invite, bot_username, edit=True)]


async def leaderboard(session: AsyncSession, scope: Scope, chapter: str | None = None, *,
                      limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """Inviters by people brought, for one chapter (or all the organiser may see).

    A national organiser sees everyone; a scoped one only their chapters' areas (asking
    for another chapter is `OutOfScope`, as every people list is). `total`: how many
    inviters the whole board holds (`limit` / `offset` page through it)."""
    regions = scope.region_filter
    if chapter:
        row = await chapter_store.find(session, chapter)
        if row is None:
            raise NotFound(_("no chapter named {name}"), name=chapter)
        if not scope.national and row.name not in scope.chapters:
            raise OutOfScope(_("that is outside your chapters"))
        regions = sorted(row.regions)
    rows = await store.leaderboard(session, regions, limit, offset)
    return {"chapter": chapter, "total": await store.inviters(session, regions),
            "inviters": [{"rank": n, "name": r.name, "region": r.region, "joined": r.joined}
                         for n, r in enumerate(rows, offset + 1)]}


# Strings built at run time; listed so extraction sees them.
_EXTRA = (_("shown"), _("not shown"))
