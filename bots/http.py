"""A lean HTTP/1.1 client for one origin: JSON POSTs over persistent connections.

The fast lane answers every signature with one Bot API call, so the client's own
cost per request decides how many signatures one process takes: aiohttp's
general-purpose client (cookies, redirects, auto headers, a timer and several
objects per request) was 29 % of the webhook process's time under load. This one
writes a prebuilt request head and parses the answer with httptools (the parser
uvicorn already uses), one request at a time per connection, no pipelining.

What it does not do, on purpose: redirects, cookies, compression, proxies. The
Bot API needs none of them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import cast
from urllib.parse import urlsplit

import httptools


class HTTPClientError(ConnectionError):
    """The request got no complete answer (refused, reset, closed early, unparsable)."""


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
        self.received = False  # any byte of the current answer
        self.deadline = 0.0
        self.served = 0
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HTTPClientError(f"bad answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._forget(self)
        self._fail(HTTPClientError("connection closed before the answer was complete"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        status = self.parser.get_status_code()
        keep = self.parser.should_keep_alive()
        body, self.body = b"".join(self.body), []
        self.served += 1
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body))
        if keep and not self.closed:
            self.pool._release(self)
        else:
            self.close()

    # ours
    def request(self, head: bytes, body: bytes,
                deadline: float) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = self.pool.loop.create_future()
        self.received = False
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
    ``timeout`` bounds connecting plus the whole exchange.
    """

    def __init__(self, origin: str, *, size: int = 64, timeout: float = 10.0,
                 content_type: str = "application/json") -> None:
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
        self.size, self.timeout = size, timeout
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
        """(status, body) of one POST; raises HTTPClientError or RequestTimeout."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep())
        deadline = self.loop.time() + self.timeout
        for _ in range(2):
            conn = await self._acquire(deadline)
            reused = conn.served > 0
            try:
                return await conn.request(head, body, deadline)
            except HTTPClientError:
                # A kept-alive connection the server had just closed: nothing of ours was
                # read, so sending again on a fresh connection cannot duplicate anything.
                if not (reused and not conn.received):
                    raise
        raise HTTPClientError("connection closed before the answer was complete")

    async def _acquire(self, deadline: float) -> _Connection:
        while True:
            if self._closed:
                raise HTTPClientError("client closed")
            while self._idle:
                conn = self._idle.pop()  # the most recently used: least likely to be stale
                if not conn.closed:
                    self._busy.add(conn)
                    return conn
            if len(self._busy) + self._connecting < self.size:
                return await self._connect(deadline)
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(0.0, deadline - self.loop.time()))
            except TimeoutError:
                raise RequestTimeout("no free connection in time") from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _connect(self, deadline: float) -> _Connection:
        self._connecting += 1
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await self.loop.create_connection(
                    lambda: _Connection(self), self.host, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None)
        except TimeoutError:
            raise RequestTimeout("connect timed out") from None
        except OSError as exc:
            raise HTTPClientError(f"connect failed: {type(exc).__name__}") from None
        finally:
            self._connecting -= 1
        self._busy.add(conn)
        return conn

    def _release(self, conn: _Connection) -> None:
        self._busy.discard(conn)
        self._idle.append(conn)
        self._wake()

    def _forget(self, conn: _Connection) -> None:
        self._busy.discard(conn)
        if conn in self._idle:
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
            now = self.loop.time()
            for conn in [c for c in self._busy if c.waiter is not None and c.deadline < now]:
                conn._fail(RequestTimeout("no answer in time"))

    async def aclose(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in [*self._idle, *self._busy]:
            conn.close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
