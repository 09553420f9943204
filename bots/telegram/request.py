"""An aiohttp-backed request class for python-telegram-bot.

PTB talks to the network through ``telegram.request.BaseRequest``, "implementable
with different asyncio HTTP libraries"; its default is httpx. Plugging aiohttp in
lets the bot's own ``Application`` share the fast client the broadcast sender uses::

    request = AiohttpRequest(connection_pool_size=256)
    app = Application.builder().token(token).request(request).build()

PTB calls ``initialize`` and ``shutdown`` with the Application; the session is
created inside the running event loop, as aiohttp requires. A session passed in
by the caller is shared and left open on shutdown (its owner closes it).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


class AiohttpRequest(BaseRequest):
    """``BaseRequest`` over one ``aiohttp.ClientSession`` (see the module docstring)."""

    __slots__ = (
        "_connect_timeout",
        "_media_write_timeout",
        "_owns_session",
        "_pool_size",
        "_pool_timeout",
        "_read_timeout",
        "_session",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 256,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._session = session
        self._owns_session = session is None

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout in seconds (PTB adds it to long-polling timeouts)."""
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or (self._owns_session and self._session.closed):
            connector = aiohttp.TCPConnector(
                limit=self._pool_size, limit_per_host=self._pool_size, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": self.USER_AGENT},
            )
            self._owns_session = True

    async def shutdown(self) -> None:
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()

    def _timeout(
        self,
        read_timeout: ODVInput[float],
        write_timeout: ODVInput[float],
        connect_timeout: ODVInput[float],
        pool_timeout: ODVInput[float],
        has_files: bool,
    ) -> aiohttp.ClientTimeout:
        def pick(value: ODVInput[float], default: float | None) -> float | None:
            return default if isinstance(value, DefaultValue) else value

        read = pick(read_timeout, self._read_timeout)
        write = pick(write_timeout,
                     self._media_write_timeout if has_files else self._write_timeout)
        connect = pick(connect_timeout, self._connect_timeout)
        pool = pick(pool_timeout, self._pool_timeout)
        # `connect` in aiohttp covers waiting for a pooled connection and connecting.
        acquire = None if pool is None and connect is None else (pool or 0.0) + (connect or 0.0)
        # aiohttp has no write timeout: bound an upload as a whole instead (write + read).
        total = None
        if has_files and write is not None and read is not None:
            total = (acquire or 0.0) + write + read
        return aiohttp.ClientTimeout(total=total, connect=acquire, sock_connect=connect,
                                     sock_read=read)

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Send one Bot API request; returns (HTTP status, body)."""
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        has_files = bool(request_data and request_data.contains_files)
        timeout = self._timeout(read_timeout, write_timeout, connect_timeout, pool_timeout,
                                has_files)
        kwargs: dict[str, Any] = {"timeout": timeout}
        if request_data is not None:
            if has_files:
                form = aiohttp.FormData()
                for name, value in request_data.json_parameters.items():
                    form.add_field(name, value)
                for name, (filename, content, mimetype) in request_data.multipart_data.items():
                    form.add_field(name, content, filename=filename, content_type=mimetype)
                kwargs["data"] = form
            else:
                # Form-encoded, exactly as PTB's default client sends them (nested objects are
                # JSON strings per value). A JSON body with string-valued objects is accepted by
                # Telegram but not by every Bot API implementation.
                kwargs["data"] = request_data.json_parameters
        try:
            async with session.request(method, url, **kwargs) as resp:
                return resp.status, await resp.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            # The message names the exception class only: the URL would contain the token.
            raise NetworkError(f"aiohttp.{type(exc).__name__}") from exc
