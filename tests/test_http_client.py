"""The lean keep-alive client (bots/http.py) against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from bots.http import HTTPClientError, KeepAlivePool, NotSent, RequestTimeout
from tests.conftest import RawServer


@dataclass
class Server:
    url: str
    peers: set[tuple[str, int]] = field(default_factory=set)
    bodies: list[bytes] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server(url="")

    async def echo(request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        state.peers.add(peer)
        body = await request.read()
        state.bodies.append(body)
        state.in_flight += 1
        state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            if request.path == "/slow":
                await asyncio.sleep(2)
            elif request.path == "/pause":
                await asyncio.sleep(0.05)
        finally:
            state.in_flight -= 1
        if request.path == "/chunked":
            resp = web.StreamResponse(status=200)
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for part in (b'{"ok":', b"true,", b'"result":1}'):
                await resp.write(part)
            await resp.write_eof()
            return resp
        if request.path == "/close":
            return web.Response(status=200, body=b"bye", headers={"Connection": "close"})
        status = 429 if request.path == "/limited" else 200
        return web.Response(status=status, body=b"echo:" + body,
                            content_type="application/json")

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", echo)
    runner = web.AppRunner(app, keepalive_timeout=0.3)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


async def test_many_requests_share_one_kept_alive_connection(server: Server) -> None:
    pool = KeepAlivePool(server.url, size=4)
    head = pool.head("/bot123:ABC/sendMessage")
    for i in range(50):
        status, body = await pool.post(head, b'{"n":%d}' % i)
        assert (status, body) == (200, b'echo:{"n":%d}' % i)
    assert len(server.peers) == 1
    status, _ = await pool.post(pool.head("/limited"), b"{}")
    assert status == 429
    await pool.aclose()


async def test_chunked_answers_and_connection_close_are_read_whole(server: Server) -> None:
    pool = KeepAlivePool(server.url, size=2)
    assert await pool.post(pool.head("/chunked"), b"{}") == (200, b'{"ok":true,"result":1}')
    assert await pool.post(pool.head("/close"), b"{}") == (200, b"bye")
    assert await pool.post(pool.head("/x"), b"1") == (200, b"echo:1")
    await pool.aclose()


async def test_a_connection_the_server_closed_while_idle_is_replaced_unnoticed(
    server: Server,
) -> None:
    pool = KeepAlivePool(server.url, size=1)
    assert (await pool.post(pool.head("/a"), b"1"))[0] == 200
    await asyncio.sleep(1.0)  # past the server's keep-alive timeout: it hangs up
    assert await pool.post(pool.head("/a"), b"2") == (200, b"echo:2")
    assert server.bodies == [b"1", b"2"], "each body arrives exactly once"
    await pool.aclose()


async def test_a_connection_idle_past_max_idle_is_not_reused(server: Server) -> None:
    # The server might be closing it at this very moment; a request written on it then
    # may or may not have arrived, and the client never sends one twice.
    pool = KeepAlivePool(server.url, size=1, max_idle=0.05)
    await pool.post(pool.head("/a"), b"1")
    await pool.post(pool.head("/a"), b"2")
    assert len(server.peers) == 1
    await asyncio.sleep(0.1)
    await pool.post(pool.head("/a"), b"3")
    assert len(server.peers) == 2
    await pool.aclose()


async def test_concurrency_is_bounded_by_the_pool_size(server: Server) -> None:
    pool = KeepAlivePool(server.url, size=3)
    head = pool.head("/pause")
    answers = await asyncio.gather(*(pool.post(head, b"%d" % i) for i in range(12)))
    assert sorted(b for _, b in answers) == sorted(b"echo:%d" % i for i in range(12))
    assert server.most_in_flight == 3
    assert len(server.peers) == 3
    await pool.aclose()


async def test_timeouts_and_refused_connections_raise_clear_errors(server: Server) -> None:
    pool = KeepAlivePool(server.url, size=1, timeout=0.5)
    with pytest.raises(RequestTimeout):
        await pool.post(pool.head("/slow"), b"{}")
    assert await pool.post(pool.head("/x"), b"ok") == (200, b"echo:ok")
    await pool.aclose()
    closed = KeepAlivePool("http://127.0.0.1:9", size=1, timeout=3)  # discard port: closed
    started = time.monotonic()
    # Both callers hear at once that nothing was sent (the second one is not left
    # waiting for the connection slot the first one's failed connect held).
    errors = await asyncio.gather(*(closed.post(closed.head("/x"), b"{}") for _ in range(2)),
                                  return_exceptions=True)
    assert all(isinstance(e, NotSent) for e in errors), errors
    assert time.monotonic() - started < 1
    await closed.aclose()
    with pytest.raises(ValueError):
        KeepAlivePool("ftp://example.org")


def test_it_works_on_uvloop_as_the_production_processes_run_it() -> None:
    # The webhook process runs on uvloop, whose transports differ from asyncio's.
    import uvloop

    async def exchange() -> list[tuple[int, bytes]]:
        app = web.Application()

        async def echo(request: web.Request) -> web.Response:
            return web.Response(body=await request.read())

        app.router.add_post("/echo", echo)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        pool = KeepAlivePool(f"http://127.0.0.1:{port}", size=2, timeout=5)
        try:
            return await asyncio.gather(*(pool.post(pool.head("/echo"), b"%d" % i)
                                          for i in range(5)))
        finally:
            await pool.aclose()
            await runner.cleanup()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        answers = runner.run(exchange())
    assert answers == [(200, b"%d" % i) for i in range(5)]


def answer(body: bytes, *extra: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
            + b"".join(h + b"\r\n" for h in extra) + b"\r\n" + body)


async def test_informational_answers_are_skipped_and_answers_stay_in_step(
    raw: RawServer,
) -> None:
    raw.script = [b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + answer(b"for:A"),
                  answer(b"for:B")]
    pool = KeepAlivePool(raw.url, size=1)
    assert await pool.post(pool.head("/a"), b"A") == (200, b"for:A")
    assert await pool.post(pool.head("/b"), b"B") == (200, b"for:B")
    await pool.aclose()


async def test_an_answer_ended_by_closing_the_connection_is_read_whole(raw: RawServer) -> None:
    raw.script = [b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"ok\":true}"]
    pool = KeepAlivePool(raw.url, size=1)
    assert await pool.post(pool.head("/a"), b"A") == (200, b'{"ok":true}')
    await pool.aclose()


async def test_a_request_lost_after_it_was_written_is_never_sent_again(
    raw: RawServer,
) -> None:
    # The server read the second request, then the connection broke: it may have acted
    # on it, so the client reports it and does not write it again.
    raw.script = [answer(b"one"), None]
    pool = KeepAlivePool(raw.url, size=1)
    assert await pool.post(pool.head("/a"), b"msg-1") == (200, b"one")
    with pytest.raises(HTTPClientError) as failure:
        await pool.post(pool.head("/a"), b"msg-2")
    assert not isinstance(failure.value, NotSent)
    await asyncio.sleep(0.1)
    assert raw.received == [b"msg-1", b"msg-2"]
    await pool.aclose()


async def test_an_answer_nobody_asked_for_retires_the_connection(raw: RawServer) -> None:
    # E.g. a proxy's idle-timeout notice: the next request must not get it as its answer.
    raw.script = [(answer(b"one"), b"HTTP/1.1 408 Request Timeout\r\n\r\n"), answer(b"two")]
    pool = KeepAlivePool(raw.url, size=1)
    assert await pool.post(pool.head("/a"), b"1") == (200, b"one")
    await asyncio.sleep(0.2)
    assert await pool.post(pool.head("/a"), b"2") == (200, b"two")
    await pool.aclose()
