"""The fast lane's thank-you replies under Telegram's flood limits and broken connections."""

from __future__ import annotations

import asyncio

from bots.sandbox import Sandbox
from bots.telegram.fastlane import ReplySender
from campaigns.replies import Reply
from tests.conftest import RawServer
from tests.test_http_client import answer


async def test_under_a_sustained_flood_limit_every_thank_you_arrives_once() -> None:
    async with Sandbox.serve(auto_create_private_chats=True) as sb:
        # Telegram allows this bot 20 messages a second; 80 signatures arrive at once.
        sb.faults.max_rate = 20
        sb.faults.max_burst = 5
        replies = ReplySender(sb.base_url, sb.default_token, pool_size=16, per_second=20)
        for i in range(80):
            replies.send(880_000 + i, [Reply(f"Thank you {i}")])
        counters = sb.bot(sb.default_token).counters
        for _ in range(200):
            if counters.sent >= 80:
                break
            await asyncio.sleep(0.05)
        await replies.aclose()
        assert counters.sent == 80
        assert all(counters.delivered.get(880_000 + i) == 1 for i in range(80))
        # After the first 429 the replies are paced instead of all retried at once.
        assert counters.rate_limited <= 20, counters.rate_limited


async def test_a_reply_whose_connection_broke_after_sending_is_not_sent_twice(
    raw: RawServer,
) -> None:
    # The first call is answered 502 (Telegram did not send it: tried again); the
    # second is read and then the connection drops (it may have been sent: not again).
    spare = answer(b'{"ok":true,"result":{"message_id":1}}')
    raw.script = [b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", None, spare]
    replies = ReplySender(raw.url + "/bot", "1:T", pool_size=1)
    replies.BACKOFF_S = 0.01
    replies.send(5, [Reply("Thank you")])
    await asyncio.sleep(0.5)
    await replies.aclose()
    assert len(raw.received) == 2
    assert raw.script == [spare], "a third copy was sent"


async def test_an_unreadable_ok_answer_is_not_taken_for_a_failure_to_send(
    raw: RawServer,
) -> None:
    spare = answer(b'{"ok":true,"result":{"message_id":2}}')
    raw.script = [answer(b'{"ok":true,"result":{"mess'), spare]
    replies = ReplySender(raw.url + "/bot", "1:T", pool_size=1)
    replies.BACKOFF_S = 0.01
    replies.send(5, [Reply("Thank you")])
    await asyncio.sleep(0.3)
    await replies.aclose()
    assert raw.script == [spare], "the 200 was delivered: no second copy"


async def test_a_flood_wait_longer_than_a_thank_you_is_worth_drops_the_replies(
    raw: RawServer,
) -> None:
    limited = (b'{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 30",'
               b'"parameters":{"retry_after":30}}')
    spare = answer(b'{"ok":true,"result":{"message_id":3}}')
    raw.script = [b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: "
                  + str(len(limited)).encode() + b"\r\n\r\n" + limited, spare, spare]
    replies = ReplySender(raw.url + "/bot", "1:T", pool_size=1)
    replies.MAX_AGE_S = 5
    started = asyncio.get_running_loop().time()
    replies.send(5, [Reply("Thank you")])
    replies.send(6, [Reply("Thank you")])
    await asyncio.sleep(0.3)
    await replies.aclose()
    # Neither waits out the 30 s (nor holds a worker that long), and nothing more is sent.
    assert asyncio.get_running_loop().time() - started < 3
    assert len(raw.received) == 1 and raw.script == [spare, spare]
