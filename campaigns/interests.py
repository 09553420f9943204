"""Interests: organisers list them per chapter, supporters choose theirs with /interests.

A chosen interest is a tag on the supporter (`supporter_tag`, the table audiences filter
on with `tags=`), so "everyone interested in 환경" is an ordinary audience. The list a
supporter sees is everyone's list (`chapter` none) followed by those of the chapters
covering their region or speaking through their bot. The buttons carry the interest's
id, so renaming or reordering the list never toggles the wrong tag.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import inputs
from campaigns.clock import Clock
from campaigns.errors import NotFound, RuleError
from campaigns.i18n import _, normalise_language, t, t_plain
from campaigns.people import Person
from campaigns.replies import Button, Reply
from storage import chapters as chapter_store
from storage import interests as store
from storage import supporters
from storage.models import Supporter

MOST = 24  # interests in one list: a keyboard of 12 rows of two
NAME_LENGTH = 32


def parse_names(values: list[str]) -> list[str]:
    """Clean interest names (the input gate), drop repeats; refuse an unusable one."""
    names: list[str] = []
    for value in values:
        name = inputs.title(value, "interest", NAME_LENGTH)
        if not name:
            continue
        if "," in name or "|" in name or "=" in name:
            raise RuleError(_("an interest may not contain , | or = (they separate audience "
                              "filters): {name}"), name=name)
        if name not in names:
            names.append(name)
    if len(names) > MOST:
        raise RuleError(_("at most {most} interests in one list"), most=MOST)
    return names


async def _chapter_id(session: AsyncSession, chapter: str | None) -> int | None:
    if not chapter:
        return None
    row = await chapter_store.find(session, chapter)
    if row is None:
        raise NotFound(_("no chapter named {name}"), name=chapter)
    return row.id


async def set_list(session: AsyncSession, clock: Clock, *, chapter: str | None,
                   names: list[str], by: str = "cli") -> dict[str, Any]:
    """Replace a chapter's list (none: everyone's). Tags already chosen stay on people (an
    import may have set the same tag, so removing it from everyone would lose data); an
    interest taken off the list still shows in the /interests of those who chose it, as
    "no longer offered", so that they can drop it."""
    cleaned = parse_names(names)
    chapter_id = await _chapter_id(session, chapter)
    await store.replace(session, chapter_id, cleaned)
    await supporters.audit(session, actor=by, action="interests.set",
                           target=f"chapter:{chapter_id}" if chapter_id else "national",
                           now=clock.now(), details={"interests": cleaned})
    return {"chapter": chapter, "interests": cleaned}


async def show(session: AsyncSession, chapter: str | None) -> dict[str, Any]:
    return {"chapter": chapter,
            "interests": await store.listed(session, await _chapter_id(session, chapter))}


async def _menu(session: AsyncSession, s: Supporter, *, edit: bool = False) -> Reply:
    offered = await store.offered(session, s.region, s.bot_id, s.district)
    names = {i.name for i in offered}
    # Chosen, then taken off the list by the organiser: shown (ticked) so they can be
    # dropped; a button press only ever drops them (`toggle`).
    gone = [i for i in await store.withdrawn(session, s.id, s.region, s.bot_id, s.district)
            if i.name not in names]
    lang = s.language
    if not offered and not gone:
        return Reply(t(lang, "No interests to choose from yet."), edit=edit)
    chosen = set(await supporters.tags(session, s.id))
    buttons = [Button(("✅ " if i.name in chosen else "▫️ ") + i.name, data=f"int:{i.id}")
               for i in offered]
    buttons += [Button("✅ " + t_plain(lang, "{name} (no longer offered)", name=i.name),
                       data=f"int:{i.id}") for i in gone]
    return Reply(t(lang, "interests_menu"), edit=edit,
                 buttons=[buttons[n:n + 2] for n in range(0, len(buttons), 2)])


async def _active(session: AsyncSession, person: Person) -> Supporter | None:
    known = await supporters.find(session, person.bot_id, person.channel, person.user_id)
    return known.supporter if known and known.supporter.status == "active" else None


async def menu(session: AsyncSession, person: Person, clock: Clock) -> list[Reply]:
    """/interests: the list with my choices ticked."""
    s = await _active(session, person)
    if s is None:
        return [Reply(t(normalise_language(person.language_code), "not_signed_up"))]
    return [await _menu(session, s)]


async def toggle(session: AsyncSession, person: Person, data: str, clock: Clock) -> list[Reply]:
    """`int:<id>`: choose or drop one interest (an interest no longer offered: the menu)."""
    s = await _active(session, person)
    if s is None:
        return [Reply(t(normalise_language(person.language_code), "not_signed_up"))]
    raw = data.partition(":")[2]
    interest_id = int(raw) if raw.isdigit() and len(raw) < 12 else None
    offered = {i.id: i.name for i in await store.offered(session, s.region, s.bot_id, s.district)}
    name = offered.get(interest_id) if interest_id is not None else None
    if name is not None:
        on = not await store.has_tag(session, s.id, name)
        await store.set_tag(session, s.id, name, on)
        s.updated_at = clock.now()
    elif interest_id is not None:
        gone = {i.id: i.name for i in await store.withdrawn(session, s.id, s.region,
                                                             s.bot_id, s.district)}
        if interest_id in gone and gone[interest_id] not in offered.values():
            await store.set_tag(session, s.id, gone[interest_id], False)  # drop, never add
            s.updated_at = clock.now()
    return [await _menu(session, s, edit=True)]
