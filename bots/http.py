"""A lean HTTP/1.1 client for one origin: POSTs over persistent connections.

The fast lane answers every signature with one Bot API call, so the client's own
cost per request decides how many signatures one process takes: aiohttp's
general-purpose client (cookies, redirects, auto headers, a timer and several
objects per request) was 29 % of the webhook process's time under load. This one
writes a prebuilt request head and parses the answer with httptools (the parser
uvicorn already uses), one request at a time per connection, no pipelining.

Failures say whether the request may have reached the server, because a Bot API
call is not idempotent (a resent sendMessage is a second message):

- ``NotSent``: nothing was written (no connection could be made or had in time):
  safe to try again;
- ``HTTPClientError`` (the other ones): the request was written but no complete
  answer came (reset, closed early, unparsable): it may have been handled;
- ``RequestTimeout``: written, no answer in time: it may have been handled.

The client never sends a request twice by itself. To keep the classic keep-alive
race (the server closes an idle connection just as a request is written on it)
rare, a connection idle for longer than ``max_idle`` is closed rather than reused.

What it does not do, on purpose: redirects, cookies, compression, proxies. The
Bot API needs none of them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from typing import cast
from urllib.parse import urlsplit

import httptools

log = logging.getLogger(__name__)


class HTTPClientError(ConnectionError):
    """The request was written but got no complete answer; it may have been handled."""


class NotSent(HTTPClientError):
    """Nothing was written: the request certainly did not reach the server."""


class RequestTimeout(TimeoutError):
    """No complete answer within the pool's timeout; the request may have been handled."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, pool: KeepAlivePool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.status = 0
        self.informational = False  # a 1xx answer: skipped, the real one follows
        self.framed = False  # the answer's length is known (Content-Length or chunked)
        self.headers_done = False
        self.deadline = 0.0
        self.idle_since = 0.0
        self.idle = False
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            # Bytes nobody asked for (e.g. an idle-timeout notice): the connection is out
            # of step, and the next request written on it would get this answer.
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HTTPClientError(f"bad answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None and self.headers_done and not self.framed and not self.informational:
            # An answer delimited by a clean end of the connection is complete now
            # (after a reset it may be cut short: that is a failure, below).
            self._finish(keep=False)
        self.closed = True
        self.pool._forget(self)
        self._fail(HTTPClientError("connection closed before the answer was complete"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"content-length" or (lower == b"transfer-encoding"
                                          and b"chunked" in value.lower()):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.informational = 100 <= self.status < 200
        self.headers_done = True
        if self.status in (204, 304):
            self.framed = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.informational:  # 100 Continue, 103 Early Hints: wait for the answer
            self._reset_message()
            return
        self._finish(keep=self.parser.should_keep_alive())

    # ours
    def _reset_message(self) -> None:
        self.body, self.status = [], 0
        self.informational = self.framed = self.headers_done = False

    def _finish(self, *, keep: bool) -> None:
        waiter, self.waiter = self.waiter, None
        status, body = self.status, b"".join(self.body)
        self._reset_message()
        if waiter is None:
            # An answer nobody asked for: the connection is out of step; drop it.
            self.close()
            return
        if not waiter.done():
            waiter.set_result((status, body))
        if keep and not self.closed:
            self.pool._release(self)
        else:
            self.close()

    def request(self, head: bytes, body: bytes,
                deadline: float) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = self.pool.loop.create_future()
        self.deadline = deadline
        self.transport.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        return self.waiter

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool._forget(self)
            if self.transport is not None:
                self.transport.close()


class KeepAlivePool:
    """POST bodies to paths of one origin (``http://host:port`` or ``https://host``).

    At most ``size`` connections; a caller beyond that waits for one to come free.
    ``timeout`` bounds the wait for a connection plus the whole exchange.
    """

    def __init__(self, origin: str, *, size: int = 64, timeout: float = 10.0,
                 max_idle: float = 4.0, content_type: str = "application/json") -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("origin must be http(s)://host[:port]")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if parts.scheme == "https" else None)
        host_header = parts.netloc.rsplit("@", 1)[-1]
        self._head_tail = (f" HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: {content_type}"
                           "\r\nConnection: keep-alive\r\nContent-Length: ").encode()
        self.size, self.timeout, self.max_idle = size, timeout, max_idle
        self.loop = asyncio.get_running_loop()
        self._idle: deque[_Connection] = deque()
        self._busy: set[_Connection] = set()
        self._connecting = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    def head(self, path: str) -> bytes:
        """The request head up to the Content-Length value; build it once per path."""
        return b"POST " + path.encode() + self._head_tail

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        """(status, body) of one POST; raises NotSent, HTTPClientError or RequestTimeout."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep())
        deadline = self.loop.time() + self.timeout
        conn = await self._acquire(deadline)
        return await conn.request(head, body, deadline)

    async def _acquire(self, deadline: float) -> _Connection:
        while True:
            if self._closed:
                raise NotSent("client closed")
            now = self.loop.time()
            while self._idle:
                conn = self._idle.pop()  # the most recently used: least likely to be stale
                conn.idle = False
                if conn.closed:
                    continue
                if now - conn.idle_since > self.max_idle:
                    conn.close()  # the server may be closing it right now
                    continue
                self._busy.add(conn)
                return conn
            if len(self._busy) + self._connecting < self.size:
                return await self._connect(deadline)
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException as exc:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    # Woken, but leaving (timeout or cancellation) at the same moment:
                    # hand the wakeup to the next caller instead of losing it.
                    self._wake()
                if isinstance(exc, TimeoutError):
                    raise NotSent("no free connection in time") from None
                raise

    async def _connect(self, deadline: float) -> _Connection:
        self._connecting += 1
        conn: _Connection | None = None
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await self.loop.create_connection(
                    lambda: _Connection(self), self.host, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None)
        except TimeoutError:
            raise NotSent("connect timed out") from None
        except OSError as exc:
            raise NotSent(f"connect failed: {type(exc).__name__}") from None
        finally:
            self._connecting -= 1
            if conn is None:
                self._wake()  # the slot this connect held is free again
        if self._closed or conn.closed:
            conn.close()
            raise NotSent("client closed" if self._closed else "connection closed at once")
        self._busy.add(conn)
        return conn

    def _release(self, conn: _Connection) -> None:
        self._busy.discard(conn)
        if not conn.idle:
            conn.idle, conn.idle_since = True, self.loop.time()
            self._idle.append(conn)
        self._wake()

    def _forget(self, conn: _Connection) -> None:
        self._busy.discard(conn)
        if conn.idle:
            conn.idle = False
            self._idle.remove(conn)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _sweep(self) -> None:
        # One timer for the whole pool instead of one per request: overdue exchanges
        # are failed here, at most a quarter of a second late.
        while True:
            await asyncio.sleep(0.25)
            try:
                now = self.loop.time()
                for conn in [c for c in self._busy
                             if c.waiter is not None and c.deadline < now]:
                    conn._fail(RequestTimeout("no answer in time"))
            except Exception:  # the sweeper must outlive any surprise
                log.exception("HTTP client sweep failed")

    async def aclose(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in [*self._idle, *self._busy]:
            conn.close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
