"""The X channel's tables: cursor, mentions, posts, polls, the account's own row (SQL only)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import CHECKPOINT_AFTER_COMMIT, on_postgres, upsert_insert
from storage.models import (
    AuditLog,
    Bot,
    Broadcast,
    ChannelIdentity,
    Consent,
    OutboxMessage,
    Poll,
    Supporter,
    XAccount,
    XCursor,
    XMention,
    XPoll,
    XPost,
)
from storage.models.base import Base, UTCDateTime
from storage.secrets import Keyring, SecretKeyError, is_legacy, keyring_of, open_legacy

ACCOUNT_SOURCE = "x:account"
MAX_ERROR = 200
# Core tables for the bulk statements (no ORM synchronisation wanted there).
CURSOR: Table = XCursor.__table__  # type: ignore[assignment]
MENTION: Table = XMention.__table__  # type: ignore[assignment]
POST: Table = XPost.__table__  # type: ignore[assignment]
POLL: Table = XPoll.__table__  # type: ignore[assignment]
ACCOUNT: Table = XAccount.__table__  # type: ignore[assignment]


# --- the account ------------------------------------------------------------------------------

async def ensure_account(session: AsyncSession, *, bot_id: int, account_id: int,
                         now: datetime) -> int:
    """The supporter row standing for the X account itself; its identity id.

    A broadcast to the X bot is materialised like any other, into one outbox row per
    reachable identity; the account's own identity is the only X identity with a
    chat id, so a broadcast becomes exactly one row: one post (or thread), not one
    message per supporter.
    """
    ident = (await session.execute(
        select(ChannelIdentity.id).where(ChannelIdentity.bot_id == bot_id,
                                         ChannelIdentity.channel == "x",
                                         ChannelIdentity.external_user_id == str(account_id))
    )).scalar()
    if ident is not None:
        await session.execute(
            update(ChannelIdentity).where(ChannelIdentity.id == ident)
            .values(chat_id=account_id, reachable=True)
        )
        return int(ident)
    supporter = Supporter(bot_id=bot_id, display_name=None, language="ko", status="active",
                          tier="supporter", source_ref=ACCOUNT_SOURCE, created_at=now,
                          updated_at=now, consented_at=now)
    session.add(supporter)
    await session.flush()
    identity = ChannelIdentity(supporter_id=supporter.id, bot_id=bot_id, channel="x",
                               external_user_id=str(account_id), chat_id=account_id,
                               reachable=True, created_at=now)
    session.add(identity)
    await session.flush()
    return int(identity.id)


@dataclass(frozen=True)
class PostContext:
    broadcast_id: int
    poll_id: int | None
    poll_closes_at: datetime | None


async def post_context(session: AsyncSession, outbox_id: int) -> PostContext | None:
    """The broadcast an outbox row belongs to, and the campaign poll it sends, if any."""
    row = (await session.execute(
        select(Broadcast.id, Broadcast.poll)
        .join(OutboxMessage, OutboxMessage.broadcast_id == Broadcast.id)
        .where(OutboxMessage.id == outbox_id)
    )).first()
    if row is None:
        return None
    poll_id = (row[1] or {}).get("poll_id")
    closes_at = None
    if poll_id is not None:
        closes_at = (await session.execute(
            select(Poll.closes_at).where(Poll.id == poll_id))).scalar()
    return PostContext(int(row[0]), int(poll_id) if poll_id is not None else None, closes_at)


# --- posts ------------------------------------------------------------------------------------

async def posted_parts(session: AsyncSession, bot_id: int, key: str) -> dict[int, int]:
    """Parts already posted under ``key``: part index -> tweet id."""
    rows = await session.execute(
        select(XPost.part, XPost.tweet_id).where(XPost.bot_id == bot_id, XPost.key == key)
    )
    return {int(p): int(t) for p, t in rows.all()}


async def record_post(session: AsyncSession, *, bot_id: int, key: str, part: int, kind: str,
                      tweet_id: int, in_reply_to: int | None, now: datetime) -> None:
    await session.execute(
        upsert_insert(session, XPost)
        .values(bot_id=bot_id, key=key, part=part, kind=kind, tweet_id=tweet_id,
                in_reply_to=in_reply_to, posted_at=now)
        .on_conflict_do_nothing(index_elements=["bot_id", "key", "part"])
    )


async def posts_since(session: AsyncSession, bot_id: int, since: datetime) -> int:
    return int((await session.execute(
        select(func.count()).select_from(XPost)
        .where(XPost.bot_id == bot_id, XPost.posted_at > since)
    )).scalar_one())


async def nth_post_since(session: AsyncSession, bot_id: int, since: datetime,
                         offset: int) -> datetime | None:
    """The time of the ``offset``-th oldest post after ``since`` (0 = the oldest)."""
    return (await session.execute(
        select(XPost.posted_at).where(XPost.bot_id == bot_id, XPost.posted_at > since)
        .order_by(XPost.posted_at, XPost.id).offset(offset).limit(1)
    )).scalar()


# --- the mention cursor -----------------------------------------------------------------------

@dataclass(frozen=True)
class Cursor:
    since_id: int | None
    window_start: datetime | None
    window_reads: int


async def claim_cursor(session: AsyncSession, *, bot_id: int, owner: str, now: datetime,
                       until: datetime, polled_before: datetime) -> Cursor | None:
    """Claim the right to read mentions now; None if not due, blocked, or someone reads."""
    await session.execute(
        upsert_insert(session, XCursor).values(bot_id=bot_id, window_reads=0)
        .on_conflict_do_nothing(index_elements=["bot_id"])
    )
    c = CURSOR.c
    row = (await session.execute(
        update(CURSOR)
        .where(c.bot_id == bot_id,
               or_(c.claimed_until.is_(None), c.claimed_until < now),
               or_(c.last_polled_at.is_(None), c.last_polled_at <= polled_before),
               or_(c.blocked_until.is_(None), c.blocked_until <= now))
        .values(claimed_by=owner, claimed_until=until)
        .returning(c.since_id, c.window_start, c.window_reads)
    )).first()
    if row is None:
        return None
    return Cursor(int(row[0]) if row[0] is not None else None, row[1], int(row[2] or 0))


async def release_cursor(session: AsyncSession, *, bot_id: int, owner: str, now: datetime,
                         since_id: int | None, window_start: datetime | None,
                         window_reads: int, blocked_until: datetime | None,
                         polled: bool) -> None:
    """Store where reading got to and hand the claim back."""
    c = CURSOR.c
    values: dict[str, Any] = {"claimed_by": None, "claimed_until": None,
                              "window_start": window_start, "window_reads": window_reads,
                              "blocked_until": blocked_until}
    if since_id is not None:
        values["since_id"] = since_id
    if polled:
        values["last_polled_at"] = now
    await session.execute(
        update(CURSOR).where(c.bot_id == bot_id, c.claimed_by == owner)
        .values(**values)
    )


async def cursor(session: AsyncSession, bot_id: int) -> XCursor | None:
    return await session.get(XCursor, bot_id, populate_existing=True)


# --- X supporters in bulk (the mention intake) --------------------------------------------------

async def create_x_supporters(session: AsyncSession, *, bot_id: int,
                              people: Sequence[tuple[str, str | None, str]], source_ref: str,
                              now: datetime) -> dict[str, int]:
    """Supporters with an X identity (no chat id: nothing can be sent to them); by user id."""
    if not people:
        return {}
    st: Table = Supporter.__table__  # type: ignore[assignment]
    it: Table = ChannelIdentity.__table__  # type: ignore[assignment]
    result = await session.execute(
        insert(st).returning(st.c.id, sort_by_parameter_order=True),
        [{"bot_id": bot_id, "display_name": None, "language": lang, "status": "active",
          "tier": "supporter", "source_ref": source_ref, "created_at": now, "updated_at": now,
          "consented_at": now} for _uid, _name, lang in people],
    )
    ids = [int(r[0]) for r in result.all()]
    await session.execute(insert(it), [
        {"supporter_id": sid, "bot_id": bot_id, "channel": "x", "external_user_id": uid,
         "chat_id": None, "username": name, "reachable": True, "created_at": now}
        for sid, (uid, name, _lang) in zip(ids, people, strict=True)])
    return {uid: sid for sid, (uid, _name, _lang) in zip(ids, people, strict=True)}


async def set_supporter_status(session: AsyncSession, rows: Sequence[tuple[int, str, str]], *,
                               now: datetime) -> None:
    """(supporter id, status, language) for each: active (consented now) or stopped."""
    if not rows:
        return
    st: Table = Supporter.__table__  # type: ignore[assignment]
    await session.execute(
        update(st).where(st.c.id == bindparam("sid")).values(
            status=bindparam("st"), language=bindparam("lang"), updated_at=now,
            stopped_at=bindparam("stopped"), consented_at=func.coalesce(
                bindparam("consented", type_=UTCDateTime()), st.c.consented_at)),
        [{"sid": sid, "st": status, "lang": lang,
          "stopped": now if status == "stopped" else None,
          "consented": now if status == "active" else None} for sid, status, lang in rows],
    )


async def record_consents(session: AsyncSession, rows: Sequence[tuple[int, str]], *,
                          purpose: str, notice_version: str, channel: str,
                          now: datetime) -> None:
    """(supporter id, granted | withdrawn) consent records, in order."""
    if rows:
        await session.execute(insert(Consent), [
            {"supporter_id": sid, "purpose": purpose, "notice_version": notice_version,
             "choice": choice, "channel": channel, "created_at": now} for sid, choice in rows])


async def audits(session: AsyncSession, rows: Sequence[tuple[int, str]], *, channel: str,
                 now: datetime) -> None:
    """(supporter id, action) audit rows, the supporter as the actor."""
    if rows:
        await session.execute(insert(AuditLog), [
            {"at": now, "actor": f"supporter:{sid}", "action": action, "target": None,
             "details": {"channel": channel}} for sid, action in rows])


# --- mentions ---------------------------------------------------------------------------------

async def insert_mentions(session: AsyncSession, bot_id: int, tweet_ids: Sequence[int],
                          now: datetime) -> dict[int, int]:
    """Add mentions to the ledger in one statement; tweet id -> row id of the NEW ones only."""
    if not tweet_ids:
        return {}
    t = MENTION
    result = await session.execute(
        upsert_insert(session, t)
        .on_conflict_do_nothing(index_elements=["bot_id", "tweet_id"])
        .returning(t.c.tweet_id, t.c.id),
        [{"bot_id": bot_id, "tweet_id": tid, "received_at": now, "reply_state": "none",
          "reply_attempts": 0} for tid in tweet_ids],
    )
    return {int(tid): int(mid) for tid, mid in result.all()}


async def update_mention(session: AsyncSession, mention_id: int, **values: Any) -> None:
    await session.execute(
        update(MENTION).where(MENTION.c.id == mention_id).values(**values)
    )


async def update_mentions(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """What each handled mention did (``mid`` is the row id), in one executemany."""
    if rows:
        await session.execute(
            update(MENTION).where(MENTION.c.id == bindparam("mid")).values(
                intent=bindparam("intent"), slug=bindparam("slug"),
                supporter_id=bindparam("supporter_id"), reply_state=bindparam("reply_state"),
                reply_text=bindparam("reply_text"), author_id=bindparam("author_id"),
                reply_not_before=bindparam("reply_not_before", type_=UTCDateTime())),
            list(rows),
        )


async def mention_by_tweet(session: AsyncSession, bot_id: int, tweet_id: int) -> XMention | None:
    return (await session.execute(
        select(XMention).where(XMention.bot_id == bot_id, XMention.tweet_id == tweet_id)
        .execution_options(populate_existing=True)
    )).scalar_one_or_none()


async def mention_facts(session: AsyncSession, bot_id: int,
                        tweet_id: int) -> tuple[XMention, str | None, int] | None:
    """A mention, its supporter's status and how many replies were posted to it."""
    mention = await mention_by_tweet(session, bot_id, tweet_id)
    if mention is None:
        return None
    status = None
    if mention.supporter_id is not None:
        status = (await session.execute(
            select(Supporter.status).where(Supporter.id == mention.supporter_id))).scalar()
    replies = int((await session.execute(
        select(func.count()).select_from(XPost)
        .where(XPost.bot_id == bot_id, XPost.key == reply_key(mention.id))
    )).scalar_one())
    return mention, status, replies


def reply_key(mention_id: int) -> str:
    return f"reply:{mention_id}"


@dataclass(frozen=True)
class DueReply:
    mention_id: int
    tweet_id: int
    author_id: int | None
    text: str
    attempts: int


async def claim_replies(session: AsyncSession, *, bot_id: int, now: datetime,
                        limit: int) -> list[DueReply]:
    """Take due replies (pending -> sending). A reply left "sending" is never retried."""
    t = MENTION
    pick = (select(t.c.id).where(t.c.bot_id == bot_id, t.c.reply_state == "pending",
                                 or_(t.c.reply_not_before.is_(None),
                                     t.c.reply_not_before <= now))
            .order_by(t.c.id).limit(limit))
    if on_postgres(session):
        pick = pick.with_for_update(skip_locked=True)
    rows = await session.execute(
        update(t).where(t.c.id.in_(pick.scalar_subquery()))
        .values(reply_state="sending")
        .returning(t.c.id, t.c.tweet_id, t.c.author_id, t.c.reply_text, t.c.reply_attempts)
    )
    return sorted((DueReply(int(a), int(b), int(c) if c is not None else None, d or "", int(e))
                   for a, b, c, d, e in rows.all()), key=lambda r: r.mention_id)


async def finish_reply(session: AsyncSession, mention_id: int, *, state: str, now: datetime,
                       reply_tweet_id: int | None = None, error: str | None = None) -> None:
    """Settle a reply; the author's id is no longer needed and goes."""
    await update_mention(session, mention_id, reply_state=state, reply_tweet_id=reply_tweet_id,
                         replied_at=now if state == "sent" else None, author_id=None,
                         reply_error=error[:MAX_ERROR] if error else None)


async def retry_reply(session: AsyncSession, mention_id: int, *, not_before: datetime,
                      attempts: int, error: str | None) -> None:
    """Hand a claimed reply back (it was certainly not posted)."""
    await update_mention(session, mention_id, reply_state="pending", reply_not_before=not_before,
                         reply_attempts=attempts, reply_error=error[:MAX_ERROR] if error else None)


async def pending_replies(session: AsyncSession, bot_id: int, now: datetime) -> int:
    t = MENTION
    return int((await session.execute(
        select(func.count()).select_from(t)
        .where(t.c.bot_id == bot_id, t.c.reply_state == "pending",
               or_(t.c.reply_not_before.is_(None), t.c.reply_not_before <= now))
    )).scalar_one())


# --- polls ------------------------------------------------------------------------------------

async def record_poll(session: AsyncSession, **values: Any) -> None:
    await session.execute(
        upsert_insert(session, XPoll).values(**values)
        .on_conflict_do_nothing(index_elements=["bot_id", "tweet_id"])
    )


async def claim_due_polls(session: AsyncSession, *, now: datetime, until: datetime,
                          limit: int = 100,
                          bot_id: int | None = None) -> list[tuple[int, int, int]]:
    """Open X polls past their end, claimed for reading back: (row id, bot id, tweet id)."""
    t = POLL
    pick = (select(t.c.id).where(t.c.status == "open", t.c.ends_at <= now,
                                 or_(t.c.claimed_until.is_(None), t.c.claimed_until < now))
            .order_by(t.c.ends_at, t.c.id).limit(limit))
    if bot_id is not None:
        pick = pick.where(t.c.bot_id == bot_id)
    if on_postgres(session):
        pick = pick.with_for_update(skip_locked=True)
    rows = await session.execute(
        update(t).where(t.c.id.in_(pick.scalar_subquery())).values(claimed_until=until)
        .returning(t.c.id, t.c.bot_id, t.c.tweet_id)
    )
    return sorted((int(a), int(b), int(c)) for a, b, c in rows.all())


async def bots_with_polls_due(session: AsyncSession, now: datetime) -> list[int]:
    """The X bots that have polls to read back now (each is read through its own account)."""
    t = POLL
    rows = await session.execute(
        select(t.c.bot_id).where(t.c.status == "open", t.c.ends_at <= now,
                                 or_(t.c.claimed_until.is_(None), t.c.claimed_until < now))
        .group_by(t.c.bot_id).order_by(t.c.bot_id))
    return [int(r[0]) for r in rows.all()]


async def close_poll(session: AsyncSession, row_id: int, *, counts: list[int],
                     x_poll_id: str | None, now: datetime) -> None:
    t = POLL
    values: dict[str, Any] = {"status": "closed", "counts": counts, "read_at": now,
                              "claimed_until": None}
    if x_poll_id:
        values["x_poll_id"] = x_poll_id
    await session.execute(update(t).where(t.c.id == row_id).values(**values))


async def release_poll(session: AsyncSession, row_id: int, *, retry_at: datetime) -> None:
    t = POLL
    await session.execute(update(t).where(t.c.id == row_id).values(claimed_until=retry_at))


async def polls_of(session: AsyncSession, poll_id: int) -> list[XPoll]:
    rows = await session.execute(
        select(XPoll).where(XPoll.poll_id == poll_id).order_by(XPoll.id)
    )
    return list(rows.scalars())


# --- privacy ----------------------------------------------------------------------------------

async def export_supporter(session: AsyncSession, supporter_id: int) -> dict[str, Any]:
    """The mentions of the account a supporter made, and how each was answered."""
    rows = await session.execute(
        select(XMention.tweet_id, XMention.intent, XMention.slug, XMention.received_at,
               XMention.reply_state, XMention.reply_tweet_id, XMention.replied_at)
        .where(XMention.supporter_id == supporter_id).order_by(XMention.id)
    )
    return {"x_mentions": [
        {"tweet_id": str(tid), "command": intent, "petition": slug, "at": at.isoformat(),
         "reply": state, "reply_tweet_id": str(rid) if rid else None,
         "replied_at": rat.isoformat() if rat else None}
        for tid, intent, slug, at, state, rid, rat in rows.all()
    ]}


async def erase_supporter(session: AsyncSession, supporter_id: int) -> None:
    """Forget a supporter's mentions; keep only what stops a mention being handled twice.

    A mention at or below its bot's cursor can never be read again, so its row goes.
    One above the cursor (a read in progress) keeps its bare tweet id, so it is not
    handled again as a new mention, with nothing that links it to anyone.
    """
    m = MENTION
    mine = select(m.c.id, m.c.bot_id, m.c.tweet_id).where(m.c.supporter_id == supporter_id)
    rows = (await session.execute(mine)).all()
    if not rows:
        return
    ids = [int(r[0]) for r in rows]
    keys = [reply_key(i) for i in ids]
    p = POST
    # Our replies to them are public posts addressed to them: their ids would lead back.
    # The rows stay (without ids) because they count against X's limits for a day.
    await session.execute(update(p).where(p.c.key.in_(keys)).values(in_reply_to=None,
                                                                     tweet_id=0))
    cursors = {int(b): c for b, c in (await session.execute(
        select(XCursor.bot_id, XCursor.since_id))).all()}
    gone = []
    for i, b, tid in rows:
        since = cursors.get(int(b))
        if since is not None and int(tid) <= int(since):
            gone.append(int(i))
    if gone:
        await session.execute(delete(m).where(m.c.id.in_(gone)))
    kept = [i for i in ids if i not in set(gone)]
    if kept:
        await session.execute(
            update(m).where(m.c.id.in_(kept))
            .values(supporter_id=None, author_id=None, intent=None, slug=None, reply_text=None,
                    reply_tweet_id=None)
        )
        # Nothing more may be sent to them: a reply still owed is dropped.
        await session.execute(
            update(m).where(m.c.id.in_(kept), m.c.reply_state == "pending")
            .values(reply_state="failed", reply_error="erased")
        )


# --- accounts and their credentials -----------------------------------------------------------
# An account's keys and tokens are one JSON object, sealed with the database's keyring
# (storage.secrets: the same keys as the bot tokens), never in clear.

def seal_credentials(session: AsyncSession, values: Mapping[str, str]) -> str:
    """``values`` (credential name -> value) as the stored, encrypted string."""
    text = json.dumps(dict(values), separators=(",", ":"), sort_keys=True)
    sealed = keyring_of(session).seal(text)
    assert sealed is not None
    return sealed


def reveal_credentials(keyring: Keyring, stored: str) -> dict[str, str]:
    """The credentials `seal_credentials` stored; SecretKeyError (one line, no secret) if the
    keyring cannot read them."""
    if is_legacy(stored):
        raise SecretKeyError("its credentials are still sealed with NALGAE_SECRET_KEY by an "
                             "earlier version: run `nalgae db upgrade` once with that "
                             "NALGAE_SECRET_KEY set")
    text = keyring.reveal(stored) or "{}"
    try:
        values = json.loads(text)
    except ValueError:
        raise SecretKeyError("its stored credentials are in an unknown format") from None
    return {str(k): str(v) for k, v in values.items()}


@dataclass
class Sealed:
    """What `seal_accounts` did: rows rewritten, and the accounts it could not read."""

    changed: int = 0
    unreadable: list[str] = field(default_factory=list)  # the keyring's keys do not open them
    legacy: list[str] = field(default_factory=list)  # v1 rows NALGAE_SECRET_KEY does not open


async def seal_accounts(session: AsyncSession, *, rotate: bool = False,
                        legacy_key: str = "") -> Sealed:
    """Encrypt with the keyring every account's credentials still in plain text or in the
    earlier NALGAE_SECRET_KEY form (idempotent; at start and on upgrade); with ``rotate``,
    re-encrypt all of them with the first key (`nalgae bot rekey`)."""
    keyring, done = keyring_of(session), Sealed()
    rows = (await session.execute(
        select(XAccount, Bot.name).join(Bot, Bot.id == XAccount.bot_id).order_by(Bot.id))).all()
    for row, name in rows:
        stored = row.credentials
        if not stored:
            continue
        if is_legacy(stored):
            text = open_legacy(stored, legacy_key)
            if text is None:
                done.legacy.append(name)
                continue
            row.credentials = keyring.seal(text) or stored
        elif Keyring.is_sealed(stored) and not rotate:
            if not keyring.can_reveal(stored):
                done.unreadable.append(name)
            continue
        else:
            try:
                row.credentials = keyring.rotate(stored) or stored
            except SecretKeyError:
                done.unreadable.append(name)
                continue
        done.changed += 1
    if done.changed:
        # SQLite: the old pages are zeroed (secure_delete) and the WAL truncated, as for bots.
        session.info[CHECKPOINT_AFTER_COMMIT] = True
    await session.flush()
    return done


async def account(session: AsyncSession, bot_id: int) -> XAccount | None:
    return await session.get(XAccount, bot_id, populate_existing=True)


async def accounts(session: AsyncSession) -> dict[int, XAccount]:
    """Every account's credentials row, by bot id."""
    return {a.bot_id: a for a in (await session.execute(select(XAccount))).scalars()}


async def put_account(session: AsyncSession, *, bot_id: int, auth: str, credentials: str,
                      now: datetime, seed: str | None = None,
                      expires_at: datetime | None = None) -> None:
    """Set an account's credentials (sealed), forgetting any refresh state or failure."""
    values: dict[str, Any] = {"auth": auth, "credentials": credentials, "seed": seed,
                              "expires_at": expires_at, "refresh_error": None,
                              "refresh_claimed_by": None, "refresh_claimed_until": None,
                              "updated_at": now}
    await session.execute(
        upsert_insert(session, XAccount).values(bot_id=bot_id, **values)
        .on_conflict_do_update(index_elements=["bot_id"], set_=values)
    )


async def seed_account(session: AsyncSession, *, bot_id: int, auth: str, credentials: str,
                       seed: str, now: datetime) -> bool:
    """The settings' account from the settings' credentials, unless it already started from
    the same ones (then what it holds, e.g. a refreshed token, is newer). True if written."""
    a = ACCOUNT.c
    values: dict[str, Any] = {"auth": auth, "credentials": credentials, "seed": seed,
                              "expires_at": None, "refresh_error": None,
                              "refresh_claimed_by": None, "refresh_claimed_until": None,
                              "updated_at": now}
    inserted = await session.execute(
        upsert_insert(session, XAccount).values(bot_id=bot_id, **values)
        .on_conflict_do_nothing(index_elements=["bot_id"]).returning(a.bot_id))
    if inserted.first() is not None:
        return True
    changed = await session.execute(
        update(ACCOUNT).where(a.bot_id == bot_id, or_(a.seed.is_(None), a.seed != seed))
        .values(**values).returning(a.bot_id))
    return changed.first() is not None


async def claim_refresh(session: AsyncSession, *, bot_id: int, owner: str, now: datetime,
                        until: datetime, stale_before: datetime) -> str | None:
    """The right to refresh an OAuth 2.0 token (its sealed credentials); None if another
    process holds it, has just refreshed it (it expires after ``stale_before``), or the
    last refresh failed. The refresh token is single-use: one refresher at a time."""
    a = ACCOUNT.c
    row = (await session.execute(
        update(ACCOUNT)
        .where(a.bot_id == bot_id, a.refresh_error.is_(None),
               or_(a.expires_at.is_(None), a.expires_at <= stale_before),
               or_(a.refresh_claimed_until.is_(None), a.refresh_claimed_until < now))
        .values(refresh_claimed_by=owner, refresh_claimed_until=until)
        .returning(a.credentials)
    )).first()
    return str(row[0]) if row is not None else None


async def finish_refresh(session: AsyncSession, *, bot_id: int, owner: str, now: datetime,
                         credentials: str | None = None, expires_at: datetime | None = None,
                         error: str | None = None) -> bool:
    """Store the new tokens (or why the refresh failed) and hand the claim back.

    New tokens are written even if the claim ran out meanwhile: X has already retired the
    old refresh token, so they are the only ones that work. Anything else is written only
    by the claim's holder. False if nothing was written."""
    a = ACCOUNT.c
    values: dict[str, Any] = {"refresh_claimed_by": None, "refresh_claimed_until": None}
    where = [a.bot_id == bot_id]
    if credentials is not None:
        values.update(credentials=credentials, expires_at=expires_at, refreshed_at=now,
                      updated_at=now)
    else:
        where.append(a.refresh_claimed_by == owner)
    if error is not None:
        values.update(refresh_error=error[:MAX_ERROR], updated_at=now)
    done = await session.execute(update(ACCOUNT).where(*where).values(**values)
                                 .returning(a.bot_id))
    return done.first() is not None


async def add_x_bot(session: AsyncSession, *, name: str, chapter: str | None, max_rate: float,
                    now: datetime) -> Bot | None:
    """A new X bot row (it has no token: its credentials are its x_account row); None if the
    name is taken."""
    found = (await session.execute(
        select(Bot.id).where(Bot.channel == "x", Bot.name == name))).first()
    if found is not None:
        return None
    bot = Bot(channel="x", name=name, token=None, base_url=None, chapter=chapter,
              max_rate=max_rate, enabled=True, created_at=now)
    session.add(bot)
    await session.flush()
    return bot


async def delete_account(session: AsyncSession, bot_id: int) -> None:
    await session.execute(delete(ACCOUNT).where(ACCOUNT.c.bot_id == bot_id))


async def account_used(session: AsyncSession, bot_id: int) -> bool:
    """Whether anything but its credentials names this X bot (then it can only be disabled)."""
    for table in Base.metadata.sorted_tables:
        column = table.c.get("bot_id")
        if column is None or table.name == ACCOUNT.name:
            continue
        if (await session.execute(select(column).where(column == bot_id).limit(1))).first():
            return True
    return False
