"""Sign-up, consent, preferences, opt-out, export and erasure: the supporter's own journey.

Nothing about a person is stored before they press "agree": until then the dialog is
stateless, carried by the buttons themselves (the consent button holds the language
and the deep-link payload). After consent the remaining steps (region, name) are
driven by the supporter row, so the dialog survives restarts and works across
processes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import home, intents, invites
from campaigns import webhook_events as events
from campaigns.clock import Clock
from campaigns.i18n import LANGUAGES, _, normalise_language, t
from campaigns.people import ONBOARDING_STEPS, REDISTRICT, Person
from campaigns.regions import (
    REGION_CODES,
    REGIONS,
    district_codes,
    district_name,
    districts,
    is_metropolitan,
    parse_district,
    region_name,
)
from campaigns.replies import Button, Document, Reply
from campaigns.text import clean_name, normalise_keyword
from storage import privacy
from storage import supporters as store
from storage.models import Supporter

NOTICE_VERSION = "2026-11"
PURPOSE = "campaign_updates"
# The words that end the subscription, in chat and in X mentions alike (campaigns.x.intake).
STOP_WORDS = frozenset({"stop", "/stop", "중지", "그만", "unsubscribe", "수신거부"})


def _lang(person: Person, known: store.Known | None) -> str:
    return known.supporter.language if known else normalise_language(person.language_code)


def is_stop_word(text: str) -> bool:
    return normalise_keyword(text) in STOP_WORDS


# --- /start and consent ---------------------------------------------------------------------

def consent_request(lang: str, payload: intents.StartPayload) -> Reply:
    """The privacy notice with agree / decline buttons; carries the payload, stores nothing."""
    agree = _agree_data(lang, payload)
    return Reply(
        text=t(lang, "privacy_notice", version=NOTICE_VERSION),
        buttons=[[
            Button(t(lang, "✅ I agree"), data=agree),
            Button(t(lang, "No, thanks"), data=f"c:n:{lang}"),
        ]],
    )


def _agree_data(lang: str, payload: intents.StartPayload) -> str:
    """The agree button's data within Telegram's 64 bytes: the whole payload if it fits,
    else the intent with the invite, or with the source, or alone."""
    for kept in (payload, replace(payload, source_ref=None), replace(payload, invite=None),
                 intents.StartPayload(intent=payload.intent)):
        data = f"c:y:{lang}:{intents.encode_payload(kept)}"
        if len(data.encode()) <= 64:
            return data
    return f"c:y:{lang}:"


async def start(
    session: AsyncSession, person: Person, payload: str | None, clock: Clock
) -> list[Reply]:
    """/start, with or without a deep-link payload."""
    parsed = intents.parse_start_payload(payload)
    known = await store.find(session, person.bot_id, person.channel, person.user_id)
    if known is None or known.supporter.status != "active":
        lang = _lang(person, known)
        return [consent_request(lang, parsed)]
    supporter = known.supporter
    # The bot they last used is the way back (broadcasts go out through it).
    known.identity.last_used_at = clock.now()
    if not known.identity.reachable or known.identity.chat_id != person.chat_id:
        known.identity.reachable = True
        known.identity.chat_id = person.chat_id
    if parsed.intent:
        # Mid-sign-up, the intent waits for the last step: its link's source waits with it.
        supporter.pending_intent = intents.pending(parsed.intent, parsed.source_ref)
        if _onboarded(supporter):
            return await intents.resume(session, supporter, clock, source=parsed.source_ref)
    next_step = _next_onboarding_step(supporter)
    if next_step:
        return [next_step]
    return [await home.card(session, supporter, clock, greeting=True)]


async def consent(
    session: AsyncSession, person: Person, data: str, clock: Clock
) -> list[Reply]:
    """The agree / decline button. Agreeing creates (or re-activates) the supporter."""
    _, choice, rest = data.split(":", 2)
    lang, _, carried = rest.partition(":")
    lang = lang if lang in LANGUAGES else normalise_language(person.language_code)
    if choice != "y":
        return [Reply(t(lang, "signup_declined"), edit=True)]
    payload = intents.parse_start_payload(carried or None)
    now = clock.now()
    known = await store.find(session, person.bot_id, person.channel, person.user_id)
    linked = None
    if known is None:
        linked = await store.find_on_other_bots(session, person.bot_id, person.channel,
                                                person.user_id)
    if linked is not None:
        # The same person through a second bot: one supporter, one consent history.
        known = await store.link(
            session, linked, bot_id=person.bot_id, channel=person.channel,
            external_user_id=person.user_id, chat_id=person.chat_id,
            username=person.username, now=now,
        )
        s = known.supporter
        if s.status != "active":
            s.status, s.stopped_at, s.consented_at = "active", None, now
        s.language = lang
        s.pending_intent = (intents.pending(payload.intent, payload.source_ref)
                            or s.pending_intent)
        action = "supporter.linked_bot"
    elif known is None:
        known = await store.create(
            session,
            bot_id=person.bot_id,
            channel=person.channel,
            external_user_id=person.user_id,
            chat_id=person.chat_id,
            username=person.username,
            display_name=person.full_name,
            language=lang,
            source_ref=payload.source_ref,
            pending_intent=payload.intent,
            now=now,
        )
        # Only a new person is someone's invitee: at most one referrer, never re-counted.
        await invites.joined_through(session, known.supporter, payload.invite, now)
        action = "supporter.signed_up"
    else:
        s = known.supporter
        if s.status == "active":
            return [Reply(t(lang, "already_signed_up"), edit=True)]
        s.status, s.stopped_at, s.consented_at, s.updated_at = "active", None, now, now
        s.language = lang
        s.pending_intent = (intents.pending(payload.intent, payload.source_ref)
                            or s.pending_intent)
        known.identity.reachable = True
        known.identity.chat_id = person.chat_id
        known.identity.last_used_at = now
        action = "supporter.resubscribed"
    await store.record_consent(
        session, known.supporter.id, purpose=PURPOSE, notice_version=NOTICE_VERSION,
        choice="granted", channel=person.channel, now=now,
    )
    await store.audit(session, actor=f"supporter:{known.supporter.id}", action=action, now=now)
    replies = [Reply(t(lang, "Thank you! Your consent is recorded."), edit=True)]
    step = _next_onboarding_step(known.supporter)
    if step:
        replies.append(step)
    else:
        replies.extend(await _finish(session, known.supporter, clock))
    return replies


# --- onboarding: region, then name (the steps: campaigns.people.ONBOARDING_STEPS) ------------


def _onboarded(s: Supporter) -> bool:
    return s.pending_input not in ONBOARDING_STEPS


def region_request(lang: str) -> Reply:
    rows: list[list[Button]] = []
    for i in range(0, len(REGIONS), 3):
        rows.append([
            Button(ko if lang == "ko" else en, data=f"r:{code}")
            for code, ko, en in REGIONS[i:i + 3]
        ])
    return Reply(t(lang, "Where do you live? Choose your region."), buttons=rows)


# At most this many district buttons at once (rows of 3): 서울's 25 구 or 경기's 31 시·군 in
# one keyboard are a wall on a phone. Longer lists are paged ("d:~<page>" turns the page,
# the message is edited in place); pages are evened out (25 → 9, 9, 7) so none is nearly empty.
DISTRICTS_PER_PAGE = 12


def _district_question(lang: str, province: str | None) -> str:
    if is_metropolitan(province):
        return t(lang, "Which district? Choose it, or type its name.")
    return t(lang, "Which city or county? Choose it, or type its name.")


def district_request(lang: str, province: str | None, page: int = 0, *,
                     edit: bool = False) -> Reply:
    """The second level (시/군/구) of a province that has one, a page of buttons at a time;
    typing the name works too."""
    choices = districts(province)
    pages = max(1, -(-len(choices) // DISTRICTS_PER_PAGE))
    size = -(-len(choices) // pages)
    page = min(max(page, 0), pages - 1)
    shown = choices[page * size:(page + 1) * size]
    rows = [[Button(ko if lang == "ko" else en, data=f"d:{code}")
             for code, ko, en in shown[i:i + 3]] for i in range(0, len(shown), 3)]
    turn = []
    if page > 0:
        turn.append(Button(t(lang, "◀ Back"), data=f"d:~{page - 1}"))
    if page < pages - 1:
        turn.append(Button(t(lang, "More ▶ ({page}/{pages})", page=page + 2, pages=pages),
                           data=f"d:~{page + 1}"))
    if turn:
        rows.append(turn)
    rows.append([Button(t(lang, "Skip"), data="d:-")])
    return Reply(_district_question(lang, province), buttons=rows, edit=edit)


def _after_district(s: Supporter) -> None:
    s.pending_input = "name_confirm" if s.display_name else "name"


def name_request(s: Supporter) -> Reply:
    lang = s.language
    return Reply(
        t(lang, "name_confirm", name=s.display_name or ""),
        buttons=[[
            Button(t(lang, "Keep this name"), data="n:keep"),
            Button(t(lang, "Change it"), data="n:edit"),
        ]],
    )


def _ask_name(lang: str, edit: bool = False) -> Reply:
    return Reply(t(lang, "What name should we use for you? Send it as a message."), edit=edit)


def _next_onboarding_step(s: Supporter) -> Reply | None:
    """The question for the step the supporter is at, deciding the step if needed."""
    if s.pending_input is None and s.region is None:
        s.pending_input = "region"
    elif s.pending_input is None and s.display_name is None:
        s.pending_input = "name"
    if s.pending_input == "region":
        return region_request(s.language)
    if s.pending_input == "district":
        return district_request(s.language, s.region)
    if s.pending_input == "name_confirm":
        return name_request(s)
    if s.pending_input == "name":
        return _ask_name(s.language)
    return None


async def _finish(session: AsyncSession, s: Supporter, clock: Clock) -> list[Reply]:
    replies = [Reply(t(s.language, "signup_welcome", name=s.display_name or ""))]
    resumed = await intents.resume(session, s, clock)
    if not resumed:
        # Came for nothing in particular: show what there is to take part in.
        card = await home.card_if_open(session, s, clock)
        resumed = [card] if card else []
    replies.extend(resumed)
    return replies


async def _active(session: AsyncSession, person: Person) -> store.Known | None:
    known = await store.find(session, person.bot_id, person.channel, person.user_id)
    return known if known and known.supporter.status == "active" else None


def _not_signed_up(person: Person) -> list[Reply]:
    return [Reply(t(normalise_language(person.language_code), "not_signed_up"))]


async def choose_region(
    session: AsyncSession, person: Person, data: str, clock: Clock
) -> list[Reply]:
    """A region button."""
    known = await _active(session, person)
    if known is None:
        return _not_signed_up(person)
    code = data.partition(":")[2]
    s = known.supporter
    if code not in REGION_CODES:
        return [region_request(s.language)]
    if code != s.region:
        s.district = None  # a district of the old province would no longer be valid
    s.region, s.updated_at = code, clock.now()
    replies = [Reply(t(s.language, "Region: {region}", region=region_name(code, s.language)),
                     edit=True)]
    if s.pending_input in ("region", "district"):
        if districts(code):
            s.pending_input = "district"
        else:
            _after_district(s)
        step = _next_onboarding_step(s)
        if step:
            replies.append(step)
    elif _onboarded(s):
        # A change of region later (/region): the district is asked again (or cleared).
        s.pending_input = REDISTRICT if districts(code) else None
        if districts(code):
            replies.append(district_request(s.language, code))
    return replies


async def choose_district(
    session: AsyncSession, person: Person, data: str, clock: Clock
) -> list[Reply]:
    """A district button (or "d:-": skip)."""
    known = await _active(session, person)
    if known is None:
        return _not_signed_up(person)
    s = known.supporter
    code = data.partition(":")[2]
    if code.startswith("~"):  # another page of buttons
        page = int(code[1:]) if code[1:].isdigit() else 0
        return [district_request(s.language, s.region, page, edit=True)]
    return _set_district(s, None if code == "-" else code, clock, edit=True)


def _set_district(s: Supporter, code: str | None, clock: Clock, *, edit: bool) -> list[Reply]:
    if not districts(s.region):
        code = None  # a button left from before the province changed to one without any
    if code is not None and code not in district_codes(s.region):
        return [district_request(s.language, s.region)]
    s.district, s.updated_at = code, clock.now()
    replies: list[Reply] = []
    if code is not None:
        name = district_name(s.region, code, s.language)
        replies.append(Reply(t(s.language, "District: {district}", district=name)
                             if is_metropolitan(s.region)
                             else t(s.language, "City or county: {district}", district=name),
                             edit=edit))
    elif edit:  # skipped: the buttons give way to what was kept
        replies.append(Reply(t(s.language, "Region: {region}",
                               region=region_name(s.region, s.language)), edit=True))
    if s.pending_input == REDISTRICT:
        s.pending_input = None
    if s.pending_input == "district":
        _after_district(s)
        step = _next_onboarding_step(s)
        if step:
            replies.append(step)
    return replies


def typed_district(s: Supporter, text: str, clock: Clock) -> list[Reply]:
    """A district typed instead of chosen: matched leniently (고양, 고양시, Goyang, 마포)."""
    code = parse_district(s.region, text)
    if code is None:
        unknown = (t(s.language, "I do not know that district; choose it below.")
                   if is_metropolitan(s.region)
                   else t(s.language, "I do not know that city or county; choose it below."))
        return [Reply(unknown), district_request(s.language, s.region)]
    return _set_district(s, code, clock, edit=False)


async def name_choice(
    session: AsyncSession, person: Person, data: str, clock: Clock
) -> list[Reply]:
    """Keep the name taken from the channel, or type another one."""
    known = await _active(session, person)
    if known is None:
        return _not_signed_up(person)
    s = known.supporter
    if data == "n:edit":
        s.pending_input = "name" if not _onboarded(s) else "rename"
        return [_ask_name(s.language, edit=True)]
    if s.pending_input != "name_confirm":
        return [Reply(t(s.language, "Name: {name}", name=s.display_name or "-"), edit=True)]
    s.pending_input = None
    replies = [Reply(t(s.language, "Name: {name}", name=s.display_name or ""), edit=True)]
    return replies + await _finish(session, s, clock)


async def text_message(
    session: AsyncSession, person: Person, text: str, clock: Clock
) -> list[Reply]:
    """Free text: a stop word, the name we asked for, or something we do not understand."""
    if is_stop_word(text):
        return await stop(session, person, clock)
    known = await _active(session, person)
    if known is None:
        return _not_signed_up(person)
    s = known.supporter
    if s.pending_input in ("district", REDISTRICT):
        return typed_district(s, text, clock)
    if s.pending_input in ("name", "rename"):
        name = clean_name(text) if len(text) <= 256 else None
        if name is None:
            return [Reply(t(s.language, "That name is empty or too long (at most 64 characters). "
                                        "Please send another."))]
        onboarding = s.pending_input == "name"
        s.display_name, s.pending_input, s.updated_at = name, None, clock.now()
        replies = [Reply(t(s.language, "Name: {name}", name=name))]
        if onboarding:
            replies.extend(await _finish(session, s, clock))
        return replies
    step = _next_onboarding_step(s)
    if step:
        return [step]
    return [home.not_understood(s)]


async def edit_name(session: AsyncSession, person: Person, clock: Clock) -> list[Reply]:
    """/name: change the display name."""
    known = await _active(session, person)
    if known is None:
        return _not_signed_up(person)
    if _onboarded(known.supporter):
        known.supporter.pending_input = "rename"
    return [_ask_name(known.supporter.language)]


async def edit_region(session: AsyncSession, person: Person, clock: Clock) -> list[Reply]:
    """/region: choose another region."""
    known = await _active(session, person)
    if known is None:
        return _not_signed_up(person)
    return [region_request(known.supporter.language)]


# --- language ---------------------------------------------------------------------------------

async def language_menu(session: AsyncSession, person: Person) -> list[Reply]:
    """/lang: offer both languages."""
    known = await store.find(session, person.bot_id, person.channel, person.user_id)
    lang = _lang(person, known)
    return [Reply(t(lang, "Choose your language."),
                  buttons=[[Button("한국어", data="l:ko"), Button("English", data="l:en")]])]


async def choose_language(
    session: AsyncSession, person: Person, data: str, clock: Clock
) -> list[Reply]:
    """A language button. Before sign-up the choice is only carried by the next buttons."""
    lang = data.partition(":")[2]
    if lang not in LANGUAGES:
        lang = normalise_language(person.language_code)
    known = await _active(session, person)
    if known is None:
        return [Reply(t(lang, "Language: English"), edit=True),
                consent_request(lang, intents.StartPayload())]
    known.supporter.language, known.supporter.updated_at = lang, clock.now()
    return [Reply(t(lang, "Language: English"), edit=True)]


# --- stop, me, export, forget, member ---------------------------------------------------------

async def stop(session: AsyncSession, person: Person, clock: Clock) -> list[Reply]:
    """/stop or a stop word: no further broadcasts, confirmed at once."""
    known = await store.find(session, person.bot_id, person.channel, person.user_id)
    lang = _lang(person, known)
    if known is None or known.supporter.status != "active":
        return [Reply(t(lang, "You are not subscribed. Nothing will be sent to you."))]
    now = clock.now()
    s = known.supporter
    s.status, s.stopped_at, s.updated_at = "stopped", now, now
    if s.pending_input in ("rename", REDISTRICT):
        s.pending_input = None
    await store.record_consent(session, s.id, purpose=PURPOSE, notice_version=NOTICE_VERSION,
                               choice="withdrawn", channel=person.channel, now=now)
    await store.audit(session, actor=f"supporter:{s.id}", action="supporter.stopped", now=now)
    await events.emit(session, events.SUPPORTER_STOPPED, {"person_id": s.id}, now=now,
                      supporter_id=s.id)
    return [Reply(t(lang, "signup_stopped"))]


async def me(session: AsyncSession, person: Person) -> list[Reply]:
    """/me: what we store about you."""
    known = await store.find(session, person.bot_id, person.channel, person.user_id)
    if known is None:
        return [Reply(t(normalise_language(person.language_code), "nothing_stored"))]
    s = known.supporter
    lang = s.language
    tag_list = await store.tags(session, s.id)
    return [Reply(t(
        lang, "signup_me",
        name=s.display_name or "-",
        region=region_name(s.region, lang) + (
            f" {district_name(s.region, s.district, lang)}" if s.district else ""),
        language="한국어" if lang == "ko" else "English",
        tier=t(lang, "member") if s.tier == "member" else t(lang, "supporter"),
        status=t(lang, "subscribed") if s.status == "active" else t(lang, "unsubscribed"),
        since=s.created_at.date().isoformat(),
        tags=", ".join(tag_list) or "-",
    ))]


async def export(session: AsyncSession, person: Person, clock: Clock) -> list[Reply]:
    """/export: everything stored about you, as a JSON document."""
    known = await store.find(session, person.bot_id, person.channel, person.user_id)
    if known is None:
        return [Reply(t(normalise_language(person.language_code), "nothing_stored"))]
    data: dict[str, object] = {"exported_at": clock.now().isoformat()}
    for exporter in privacy.exporters():
        data.update(await exporter(session, known.supporter.id))
    content = json.dumps(data, ensure_ascii=False, indent=2).encode()
    lang = known.supporter.language
    await store.audit(session, actor=f"supporter:{known.supporter.id}",
                      action="supporter.exported", now=clock.now())
    return [Reply(t(lang, "Here is everything we store about you."),
                  document=Document("nalgae-my-data.json", content))]


async def forget(session: AsyncSession, person: Person) -> list[Reply]:
    """/forget: ask for confirmation first."""
    known = await store.find(session, person.bot_id, person.channel, person.user_id)
    if known is None:
        return [Reply(t(normalise_language(person.language_code), "nothing_stored"))]
    lang = known.supporter.language
    return [Reply(t(lang, "forget_confirm"), buttons=[[
        Button(t(lang, "Yes, erase my data"), data="f:yes"),
        Button(t(lang, "Cancel"), data="f:no"),
    ]])]


async def forget_choice(
    session: AsyncSession, person: Person, data: str, clock: Clock
) -> list[Reply]:
    """The erase / cancel button."""
    known = await store.find(session, person.bot_id, person.channel, person.user_id)
    lang = _lang(person, known)
    if known is None:
        return [Reply(t(lang, "nothing_stored"), edit=True)]
    if data != "f:yes":
        return [Reply(t(lang, "Nothing was erased."), edit=True)]
    supporter_id = known.supporter.id
    await privacy.erase(session, supporter_id, clock.now())
    # The day only, like every other audit line about the person (erase_core cut those).
    await store.audit(session, actor=f"supporter:{supporter_id}", action="supporter.erased",
                      now=store.kst_day(clock.now()))
    return [Reply(t(lang, "signup_erased"), edit=True)]


def hash_member_code(code: str) -> str:
    """Codes are stored hashed; normalise what people type (case, spaces, dashes)."""
    normalised = "".join(ch for ch in code.upper() if ch.isalnum())
    return hashlib.sha256(normalised.encode()).hexdigest()


async def member(
    session: AsyncSession, person: Person, code: str | None, clock: Clock
) -> list[Reply]:
    """/member CODE: become a party member (a higher vote weight)."""
    known = await _active(session, person)
    if known is None:
        return _not_signed_up(person)
    s = known.supporter
    if not code or len(code) > 64:
        return [Reply(t(s.language, "Send your member code like this: /member ABCD-EFGH-JK"))]
    if s.tier == "member":
        return [Reply(t(s.language, "You are already a member."))]
    now = clock.now()
    if not await store.redeem_member_code(session, hash_member_code(code), s.id, now):
        await store.audit(session, actor=f"supporter:{s.id}", action="member.code_rejected",
                          now=now)
        return [Reply(t(s.language, "That code is not valid or was already used."))]
    s.tier, s.updated_at = "member", now
    await store.audit(session, actor=f"supporter:{s.id}", action="member.joined", now=now)
    return [Reply(t(s.language, "Welcome, member! Your votes now carry a member's weight."))]


async def blocked(
    session: AsyncSession, person: Person, is_blocked: bool, clock: Clock
) -> None:
    """The person blocked (or unblocked) the bot: stop trying to reach them."""
    await store.set_reachable(session, person.bot_id, person.channel, person.user_id,
                              not is_blocked)


async def help_text(session: AsyncSession, person: Person) -> list[Reply]:
    known = await store.find(session, person.bot_id, person.channel, person.user_id)
    return [Reply(t(_lang(person, known), "signup_help"))]


# Strings built at run time; listed so extraction sees them.
_EXTRA = (_("member"), _("supporter"), _("subscribed"), _("unsubscribed"))
