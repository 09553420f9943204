"""A lean HTTP/1.1 front for the Bot API hot path, in front of the aiohttp application.

On the 2-core benchmark box aiohttp answers a few thousand trivial requests per second,
while benchmarks drive sendMessage at up to 10,000 per second. This protocol parses the
simple requests bots make (``/bot...`` with a Content-Length body that is urlencoded or
JSON) itself and runs them through ``Sandbox.dispatch``, which answers synchronously for
every method that does not wait. Anything else (multipart uploads, chunked bodies,
``/sandbox`` and file URLs, HTTP/1.0, malformed input) makes the connection switch to
aiohttp's own protocol at a request boundary, so aiohttp stays the reference behaviour and
the fast path never has to be complete.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from functools import partial
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, unquote

import orjson

from .server import ApiError

if TYPE_CHECKING:
    from .server import ApiAnswer, Sandbox

__all__ = ["FastProtocol"]

log = logging.getLogger(__name__)

_INTERNAL_ERROR = b'{"ok":false,"error_code":500,"description":"Internal Server Error"}'
_MAX_HEAD = 64 * 1024
_MAX_BODY = 50 * 1024 * 1024
_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    409: b"Conflict",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    504: b"Gateway Timeout",
}


class _Clock:
    """The Date header changes once a second; formatting it per request would be waste."""

    second = 0
    value = b""

    @classmethod
    def date(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second = now
            cls.value = formatdate(now, usegmt=True).encode("ascii")
        return cls.value


class _Handoff(Exception):
    """The request at the head of the buffer is for aiohttp."""


class _Answered(Exception):
    """The request was consumed and already answered (with an error)."""


class FastProtocol(asyncio.Protocol):
    """One client connection; requests are answered strictly in order (HTTP pipelining)."""

    def __init__(self, sandbox: Sandbox, fallback: Callable[[], Any],
                 connections: set[FastProtocol], tasks: set[asyncio.Future[Any]]) -> None:
        self._sandbox = sandbox
        self._fallback = fallback
        self._connections = connections
        self._tasks = tasks
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._busy = False
        self._closed = False
        self._sent_continue = False

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._busy:
            self._process()

    def eof_received(self) -> bool | None:
        self._closed = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._connections.discard(self)

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    # --- request handling ----------------------------------------------------------------------

    def _is_gone(self) -> bool:
        return self._closed or self._transport is None or self._transport.is_closing()

    def _process(self) -> None:
        while not self._busy and not self._closed and self._buffer:
            try:
                request = self._parse()
            except _Handoff:
                self._handoff()
                return
            except _Answered:
                continue
            if request is None:
                return
            token, method, params, keep_alive = request
            try:
                outcome = self._sandbox.dispatch(token, method, params, self._is_gone)
            except Exception:
                # A bug in a handler: answer like the real server's 500 and keep serving.
                log.exception("sandbox: %s failed", method)
                self._respond(500, _INTERNAL_ERROR, False)
                return
            if isinstance(outcome, tuple):
                self._respond(outcome[0], outcome[1], keep_alive)
            else:
                self._busy = True
                task = asyncio.ensure_future(outcome)
                self._tasks.add(task)
                task.add_done_callback(partial(self._finished, keep_alive=keep_alive))

    def _finished(self, task: asyncio.Future[ApiAnswer], *, keep_alive: bool) -> None:
        self._tasks.discard(task)
        self._busy = False
        if task.cancelled():
            self.close()
            return
        error = task.exception()
        if error is not None:
            log.error("sandbox: request failed", exc_info=error)
            self._respond(500, _INTERNAL_ERROR, False)
            return
        status, body = task.result()
        self._respond(status, body, keep_alive)
        if not self._closed:
            self._process()

    def _respond(self, status: int, body: bytes, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        reason = _REASONS.get(status, b"Error")
        head = (
            b"HTTP/1.1 %d %s\r\nServer: nalgae-sandbox\r\nDate: %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n"
            % (status, reason, _Clock.date(), len(body))
        )
        if not keep_alive:
            head += b"Connection: close\r\n"
        transport.write(head + b"\r\n" + body)
        if not keep_alive:
            transport.close()
            self._closed = True

    def _parse(self) -> tuple[str, str, dict[str, Any], bool] | None:
        """The next complete request, None if more bytes are needed; _Handoff if not ours."""
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > _MAX_HEAD:
                raise _Handoff
            return None
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[2] != "HTTP/1.1" or not parts[1].startswith("/bot"):
            raise _Handoff
        length = 0
        mime = ""
        keep_alive = True
        expect = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            if key == "content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise _Handoff from None
                if not 0 <= length <= _MAX_BODY:
                    raise _Handoff
            elif key == "content-type":
                mime = value.split(";", 1)[0].strip().lower()
            elif key == "connection":
                keep_alive = value.strip().lower() != "close"
            elif key == "expect":
                expect = value.strip().lower() == "100-continue"
            elif key in ("transfer-encoding", "upgrade"):
                raise _Handoff
        if mime.startswith("multipart/"):
            raise _Handoff
        total = end + 4 + length
        if len(buffer) < total:
            if expect and not self._sent_continue and self._transport is not None:
                self._sent_continue = True
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return None
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        self._sent_continue = False
        target = parts[1]
        path, _, query = target.partition("?")
        if "%" in path:
            path = unquote(path)
        route = path[4:].split("/")
        if len(route) != 2 or not route[0] or not route[1]:
            # aiohttp's router would not match either; Telegram answers a JSON 404.
            return "", "", {}, keep_alive
        params: dict[str, Any] = {}
        try:
            if query:
                params.update(parse_qsl(query, keep_blank_values=True))
            if body:
                if mime == "application/x-www-form-urlencoded":
                    params.update(parse_qsl(body.decode("utf-8", "replace"),
                                            keep_blank_values=True))
                elif mime == "application/json":
                    data = orjson.loads(body)
                    if not isinstance(data, dict):
                        raise ApiError(400, "Bad Request: parameters must be a JSON object")
                    params.update(data)
        except (ApiError, orjson.JSONDecodeError) as exc:
            error = exc if isinstance(exc, ApiError) else ApiError(
                400, "Bad Request: can't parse JSON object"
            )
            self._respond(error.code, error.body(), keep_alive)
            raise _Answered from None
        return route[0], route[1], params, keep_alive

    def _handoff(self) -> None:
        """Give the connection to aiohttp, replaying the bytes it has not seen yet."""
        transport = self._transport
        self._connections.discard(self)
        if transport is None or transport.is_closing():
            return
        handler = self._fallback()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        data = bytes(self._buffer)
        self._buffer.clear()
        self._closed = True  # this object no longer owns the connection
        if data:
            handler.data_received(data)


async def start_fast_server(
    sandbox: Sandbox, fallback: Callable[[], Any], host: str, port: int
) -> tuple[asyncio.AbstractServer, Callable[[], Awaitable[None]]]:
    """Listen on host:port with the fast front; returns the server and a closer."""
    connections: set[FastProtocol] = set()
    tasks: set[asyncio.Future[Any]] = set()
    loop = asyncio.get_running_loop()

    def factory() -> FastProtocol:
        return FastProtocol(sandbox, fallback, connections, tasks)

    server = await loop.create_server(factory, host, port, backlog=1024)

    async def close() -> None:
        server.close()
        for task in list(tasks):
            task.cancel()
        for connection in list(connections):
            connection.close()
        if tasks:
            await asyncio.wait(list(tasks), timeout=1.0)
        await server.wait_closed()

    return server, close
