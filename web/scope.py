"""A dashboard organiser's chapter scope (campaigns.chapters) at the web's doors."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request

from campaigns import chapters
from campaigns.chapters import Scope
from web.auth import Session
from web.pages import database, language


async def scope_of(request: Request, me: Session) -> Scope:
    async with database(request).session() as s:
        return await chapters.scope_of(s, me.organiser.id)


async def forbidden(request: Request, me: Session, what: str,
                    details: dict[str, Any] | None = None) -> HTTPException:
    """A 403 for a page outside the organiser's chapters, the refusal audited."""
    refused = await chapters.refuse(database(request), request.app.state.clock,
                                    actor=me.actor, what=what, details=details)
    return HTTPException(403, refused.message(language(request)))


async def national_only(request: Request, me: Session, what: str) -> None:
    """Raise OutOfScope (a RuleError, shown as the form's error) unless `me` is national."""
    await chapters.require_national(database(request), request.app.state.clock,
                                    actor=me.actor, what=what)
