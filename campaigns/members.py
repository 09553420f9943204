"""Member codes: random, easy to type from paper, stored only as hashes, shown once."""

from __future__ import annotations

import secrets
from random import Random

from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.clock import Clock
from campaigns.signup import hash_member_code
from storage import members as store
from storage import supporters

# No 0/O, 1/I/L or U/V: nothing a person could misread on a printed card.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
CODE_LENGTH = 10  # 29**10 ≈ 4e14 (48 bits): guessing one is hopeless at Telegram's rate
GROUPS = (4, 4, 2)  # shown as ABCD-EFGH-JK
MAX_COUNT = 100_000

hash_code = hash_member_code  # one definition, shared with `/member CODE`


def generate_code(rng: Random | None = None) -> str:
    """A fresh code such as ``7KQM-X2HD-PW``."""
    choose = (rng or secrets.SystemRandom()).choice
    raw = "".join(choose(ALPHABET) for _ in range(CODE_LENGTH))
    parts, start = [], 0
    for size in GROUPS:
        parts.append(raw[start : start + size])
        start += size
    return "-".join(parts)


async def issue_codes(
    session: AsyncSession, count: int, clock: Clock, *, actor: str = "cli",
    rng: Random | None = None,
) -> list[str]:
    """Create ``count`` new codes; the clear codes are returned here and nowhere else."""
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f"count must be between 1 and {MAX_COUNT}")
    now = clock.now()
    issued: list[str] = []
    while len(issued) < count:
        wanted: dict[str, str] = {}
        while len(wanted) < count - len(issued):
            code = generate_code(rng)
            wanted[hash_code(code)] = code
        stored = await store.insert_code_hashes(session, list(wanted), now)
        # A clash with an existing code is astronomically rare; it is simply drawn again.
        issued.extend(code for digest, code in wanted.items() if digest in stored)
    await supporters.audit(session, actor=actor, action="member_codes.issued", now=now,
                           details={"count": count})
    return issued
