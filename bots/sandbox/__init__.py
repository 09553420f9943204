"""A local Telegram Bot API server with simulated users, for the demo, tests and benchmarks.

The bot side speaks the real Bot API wire format (https://core.telegram.org/bots/api), so a
bot developed against the sandbox behaves the same against api.telegram.org or another
emulator: same methods, objects, error codes and descriptions.

Python API (in-process)::

    from bots.sandbox import Sandbox

    async with Sandbox.serve(host="127.0.0.1", port=0) as sb:
        app = Application.builder().token(sb.default_token).base_url(sb.base_url).build()
        user = sb.user(1001, "민지", language_code="ko")
        await user.send("/start ref_abc")          # Update with a bot_command entity
        reply = await user.next_message(timeout=5)  # what the bot sent back
        await user.press_button("Sign")            # callback_query from an inline button
        await user.answer_poll(poll_id, [0])       # poll_answer (+ poll) updates
        await user.block()                         # my_chat_member; sends now answer 403
        sb.faults.per_chat_rate = 1                # flood limits, 5xx, delays... (Faults)
        sb.counters()                              # sent, rate_limited, duplicates, ...

Bot side: ``POST|GET /bot<token>/<method>`` (query string, urlencoded, multipart or JSON
parameters) and ``GET /file/bot<token>/<file_path>`` (getFile downloads). Any token shaped
like ``123:ABCDEFGHIJ`` is a bot of its own; the sandbox can host several. ``sb.app`` is an
ordinary aiohttp application serving all of it; ``Sandbox.start`` additionally puts a lean
HTTP/1.1 front (``fastpath.py``) before it for plain ``/bot`` requests, which answers about
10,000 sendMessage calls per second on the 2-core box (aiohttp alone: about 3,000).

User side over HTTP, under ``/sandbox`` (JSON in and out, CORS enabled; ``token`` in the query
or body selects a bot, or ``bot``: the numeric id of a bot the sandbox hosts; default
``Sandbox.default_token``):

=======  ====================================================  ===================================
GET      /sandbox                                              bots and settings
POST     /sandbox/users                                        {user_id, first_name?, last_name?,
                                                               username?, language_code?} -> user
GET      /sandbox/users/{user_id}                              user, chat, blocked
POST     /sandbox/users/{user_id}/messages                     {text, reply_to_message_id?}
POST     /sandbox/users/{user_id}/documents                    {file_name, data_base64, mime_type?,
                                                               caption?}
POST     /sandbox/users/{user_id}/press                        {message_id, data} or {text,
                                                               message_id?} -> {callback_query_id}
GET      /sandbox/users/{user_id}/callbacks/{query_id}?wait=s  answerCallbackQuery result
POST     /sandbox/users/{user_id}/poll_answers                 {poll_id, option_ids}
POST     /sandbox/users/{user_id}/block | /unblock
GET      /sandbox/chats/{chat_id}/messages?after=v&wait=s      changed messages since cursor ``v``
                                                               (long poll; ``all=1`` adds the
                                                               user's own) -> {messages, cursor}
POST     /sandbox/groups                                       {chat_id, title?, type?}
POST     /sandbox/groups/{chat_id}/messages                    {user_id, text, first_name?}
POST     /sandbox/groups/{chat_id}/migrate                     {to_chat_id?} -> supergroup
GET      /sandbox/faults                                       current fault settings
POST     /sandbox/faults                                       merge settings (``Faults`` fields;
                                                               ``"reset": true`` clears first)
GET      /sandbox/counters?chats=1&chat_id=N                   counters (+ per-chat deliveries)
POST     /sandbox/counters/reset
GET      /sandbox/files/{file_id}                              bytes of a sent/received file
=======  ====================================================  ===================================

Standalone: ``python -m bots.sandbox --host 127.0.0.1 --port 8081 --auto-create-chats``
(``--help`` lists fault options). ``python -m bots.sandbox.loadgen`` measures throughput.

With ``auto_create_private_chats`` every positive chat id is a private chat of a synthetic
user; such chats keep counters only (no message history), so a million sends do not grow
memory per message (duplicate detection keeps the last 32 text hashes per chat).
"""

from .faults import Faults
from .markup import EntityParseError, parse_text
from .server import DEFAULT_TOKEN, ApiError, Sandbox
from .state import BotState, ChatState, Counters, SandboxMessage, StoredFile, UserProfile
from .users import SimGroup, SimUser

__all__ = [
    "DEFAULT_TOKEN",
    "ApiError",
    "BotState",
    "ChatState",
    "Counters",
    "EntityParseError",
    "Faults",
    "Sandbox",
    "SandboxMessage",
    "SimGroup",
    "SimUser",
    "StoredFile",
    "UserProfile",
    "parse_text",
]
