"""Every API error is `{"error": {"code": "...", "message": "..."}}` with a 4xx status.

Refusals from campaigns/ (the campaigns.errors.RuleError family) go through one handler:
the class's `code` and English `message`, 404 for not_found, 409 for conflict, else 422.
Validation errors are 422; a race on a unique key 409. Outside /api/ the app's usual
handlers answer.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from campaigns.errors import RuleError

API_PREFIX = "/api/"


class ApiProblem(Exception):
    """Raised by routes for an error answer."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def problem(status: int, code: str, message: str, *, details: Any = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status, headers=headers)


RULE_STATUS = {"not_found": 404, "conflict": 409, "forbidden": 403}


def refusal(exc: Exception) -> JSONResponse:
    """A refusal from campaigns/ as an API error (its message in English)."""
    if isinstance(exc, RuleError):
        return problem(RULE_STATUS.get(exc.code, 422), exc.code, exc.message("en"))
    raise exc


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX)


_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
               413: "too_large", 415: "unsupported_media_type", 422: "invalid_request",
               429: "too_many_requests"}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only plain fields: `ctx` may hold exception objects, and `input` echoes what was sent.
    return [{"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))} for e in exc.errors()]


def install(app: FastAPI) -> None:
    """Add the handlers (they only change answers under /api/)."""

    @app.exception_handler(ApiProblem)
    async def api_problem(request: Request, exc: ApiProblem) -> Response:
        return problem(exc.status, exc.code, exc.message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if not _is_api(request):
            return await request_validation_exception_handler(request, exc)
        details = _validation_details(exc)
        where = ".".join(details[0]["loc"]) if details else ""
        msg = str(details[0]["msg"]) if details else "invalid request"
        return problem(422, "invalid_request", f"{where}: {msg}" if where else msg,
                       details=details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not _is_api(request):
            return await http_exception_handler(request, exc)
        code = _HTTP_CODES.get(exc.status_code, "error")
        return problem(exc.status_code, code, str(exc.detail),
                       headers=dict(exc.headers) if exc.headers else None)

    async def rule(request: Request, exc: Exception) -> Response:
        return refusal(exc)

    app.add_exception_handler(RuleError, rule)

    @app.exception_handler(IntegrityError)
    async def integrity(request: Request, exc: IntegrityError) -> Response:
        # Two requests raced for the same unique name; the loser is told, not crashed.
        return problem(409, "conflict", "it was changed at the same time; try again")

    @app.exception_handler(DataError)
    async def data(request: Request, exc: DataError) -> Response:
        return problem(422, "invalid_value", "a value is out of range for the store")

    @app.exception_handler(OverflowError)
    async def overflow(request: Request, exc: OverflowError) -> Response:
        return problem(422, "out_of_range", "a date or number is out of range")
