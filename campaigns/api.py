"""Rules behind the HTTP API: tokens for scripts, and the writes that have no other home.

A token is shown once when created and stored as its SHA-256 only. Scopes: "read"
reads everything the API shows except who answered what; "write" also creates and
changes; "identities" reads, and poll answers then carry the person who gave them (each
such read is audited). Every write made with a token is audited as ``api_token:<id>``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns import webhook_events as events
from campaigns.clock import Clock
from campaigns.errors import Conflict, NotFound, RuleError
from campaigns.i18n import _
from campaigns.petitions import SOURCE_REF, is_open
from storage import api as store
from storage import petitions as petition_store
from storage import supporters
from storage.models import ApiToken, Signature
from storage.models.api import API_SCOPES

TOKEN_PREFIX = "nalgae_"
LAST_USED_EVERY = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def actor(token: ApiToken) -> str:
    return f"api_token:{token.id}"


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # the bearer token itself: print once, never store


async def create_token(
    session: AsyncSession, *, name: str, scope: str, clock: Clock, actor: str,
    expires_in_days: int | None = None,
) -> NewToken:
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise RuleError(_("a token name is 1-64 characters"))
    if scope not in API_SCOPES:
        raise RuleError(_("scope is one of {scopes}"), scopes=", ".join(API_SCOPES))
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise RuleError(_("a token expires in 1 to 3650 days"))
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    expires_at = now + timedelta(days=expires_in_days) if expires_in_days else None
    token = await store.insert_token(session, name=name, token_hash=hash_token(secret),
                                     scope=scope, created_by=actor, created_at=now,
                                     expires_at=expires_at)
    await supporters.audit(session, actor=actor, action="api_token.created",
                           target=f"api_token:{token.id}", now=now,
                           details={"scope": scope, "expires_in_days": expires_in_days})
    return NewToken(token, secret)


async def revoke_token(
    session: AsyncSession, ref: str, *, clock: Clock, actor: str
) -> list[int]:
    """Revoke by id or by name (every active token of that name); the ids revoked."""
    now = clock.now()
    if ref.isdigit():
        ids = [int(ref)] if await store.revoke_token(session, int(ref), now) else []
    else:
        ids = [t.id for t in await store.token_by_name(session, ref)
               if await store.revoke_token(session, t.id, now)]
    if not ids:
        raise RuleError(_("no active token {ref!r}"), ref=ref)
    for token_id in ids:
        await supporters.audit(session, actor=actor, action="api_token.revoked",
                               target=f"api_token:{token_id}", now=now)
    return ids


async def authenticate(session: AsyncSession, bearer: str, clock: Clock) -> ApiToken | None:
    """The active token this bearer string is, or None (unknown, revoked or expired); its
    last use is recorded (to the minute)."""
    if not bearer.startswith(TOKEN_PREFIX) or len(bearer) > 200:
        return None
    now = clock.now()
    token = await store.active_token(session, hash_token(bearer), now)
    if token is not None:
        await store.mark_used(session, token.id, now, every=LAST_USED_EVERY)
    return token


def allows(token: ApiToken, scope: str) -> bool:
    return token.scope == scope or scope == "read"


def sees_identities(token: ApiToken) -> bool:
    """Whether poll or survey answers shown to this token may name their person."""
    return token.scope == "identities"


async def audit_identities(session: AsyncSession, token: ApiToken, *, poll_id: int | None = None,
                           survey_id: int | None = None, supporter_ids: list[int],
                           clock: Clock) -> None:
    """Who read which people's answers (a poll's or a survey's): an identities read is
    always on the record."""
    kind, row = ("survey", survey_id) if survey_id is not None else ("poll", poll_id)
    await supporters.audit(session, actor=actor(token), action=f"{kind}.answers_identified",
                           target=f"{kind}:{row}", now=clock.now(),
                           details={"supporters": supporter_ids})


@dataclass(frozen=True)
class Signed:
    signature: Signature
    created: bool


async def record_signature(
    session: AsyncSession, *, petition_id: int, person_id: int, clock: Clock, actor: str,
    source_ref: str | None = None,
) -> Signed:
    """Sign an open petition for a known, active person (e.g. a paper form typed in)."""
    petition = await petition_store.petition_by_id(session, petition_id)
    if petition is None:
        raise NotFound(_("no petition {id}"), id=petition_id)
    person = await store.person(session, person_id)
    if person is None:
        raise NotFound(_("no person {id}"), id=person_id)
    if person.status != "active":
        raise Conflict(_("this person stopped; they cannot sign until they sign up again"))
    now = clock.now()
    if not is_open(petition, now):
        raise Conflict(_("the petition is closed; it takes no signatures")
                       if petition.status != "draft" else
                       _("the petition is a draft; it takes no signatures"))
    if source_ref is not None and not SOURCE_REF.match(source_ref):
        raise RuleError(_("a source ref is 1-64 letters, digits, '-' or '_'"))
    created = await petition_store.insert_signature(
        session, petition_id=petition.id, supporter_id=person.id,
        source_ref=source_ref or person.source_ref, now=now)
    if created:
        await events.emit(session, events.SIGNATURE_CREATED,
                          {"petition_id": petition.id, "petition": petition.slug,
                           "person_id": person.id}, now=now, supporter_id=person.id)
        await supporters.audit(session, actor=actor, action="petition.signed",
                               target=f"petition:{petition.id}", now=now,
                               details={"supporter_id": person.id})
    signature = await store.signature_for(session, petition.id, person.id)
    if signature is None:  # closed between the check and the insert
        raise Conflict(_("the petition closed; it takes no signatures"))
    return Signed(signature, created)
