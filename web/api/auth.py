"""Bearer tokens for scripts: `Authorization: Bearer nalgae_...`, scoped read or write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from campaigns import api as rules
from storage.db import Database
from storage.models import ApiToken
from web.api.errors import ApiProblem

bearer = HTTPBearer(
    auto_error=False,
    description="A token from `nalgae api-token create --scope read|write|identities`.",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def _token(request: Request,
                 credentials: HTTPAuthorizationCredentials | None) -> ApiToken:
    if credentials is None:
        raise ApiProblem(401, "unauthenticated",
                         "send a token: Authorization: Bearer <token>", _CHALLENGE)
    db: Database = request.app.state.db
    async with db.session() as session:
        token = await rules.authenticate(session, credentials.credentials,
                                         request.app.state.clock)
    if token is None:
        raise ApiProblem(401, "invalid_token", "the token is unknown, revoked or expired",
                         _CHALLENGE)
    return token


def scope(needed: str) -> Callable[..., Awaitable[ApiToken]]:
    """A dependency: the caller's token, which must allow ``needed`` (read or write)."""

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),  # noqa: B008
    ) -> ApiToken:
        token = await _token(request, credentials)
        if not rules.allows(token, needed):
            raise ApiProblem(403, "insufficient_scope",
                             f"this token is {token.scope}-only; this needs a {needed} token")
        return token

    return dependency


read = scope("read")
write = scope("write")
