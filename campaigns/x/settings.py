"""The X channel's settings and X's published rate limits (no network I/O).

X (API v2) limits requests per endpoint, per user token and per app, over 15-minute
and 24-hour windows. The figures below are the published ones for the endpoints
nalgae uses: ``POST /2/tweets`` (every post, thread part, poll and reply) and
``GET /2/users/:id/mentions``. Older "access tiers" had lower figures; pick the
tier with ``NALGAE_X_TIER`` or set each figure with ``NALGAE_X_LIMITS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class XLimits:
    """How much the account may do: posts per 15 minutes and per 24 hours, mention reads."""

    posts_15m: int = 100  # POST /2/tweets per user and 15 minutes
    posts_24h: int = 10_000  # POST /2/tweets per app and 24 hours
    mention_reads_15m: int = 180  # GET /2/users/:id/mentions per user and 15 minutes


TIERS: dict[str, XLimits] = {
    # The current published per-endpoint limits (also the former Pro tier).
    "pro": XLimits(posts_15m=100, posts_24h=10_000, mention_reads_15m=180),
    "basic": XLimits(posts_15m=100, posts_24h=100, mention_reads_15m=10),
    "free": XLimits(posts_15m=17, posts_24h=17, mention_reads_15m=1),
}
_LIMIT_KEYS = ("posts_15m", "posts_24h", "mention_reads_15m")


def parse_limits(tier: str, overrides: str) -> XLimits:
    """The tier's limits with ``key=value`` overrides, e.g. "posts_24h=500"; ValueError if bad."""
    base = TIERS.get(tier.strip().lower() or "pro")
    if base is None:
        raise ValueError(f"NALGAE_X_TIER must be one of {', '.join(TIERS)}")
    changes: dict[str, int] = {}
    for part in (p.strip() for p in overrides.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in _LIMIT_KEYS:
            raise ValueError(f"NALGAE_X_LIMITS: {part!r}; use {', '.join(_LIMIT_KEYS)}=N")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"NALGAE_X_LIMITS: {part!r} is not a whole number") from None
        if number < 1:
            raise ValueError(f"NALGAE_X_LIMITS: {key} must be at least 1")
        changes[key] = number
    return replace(base, **changes)


CREDENTIAL_FIELDS = ("api_key", "api_secret", "access_token", "access_secret", "bearer_token",
                     "client_id", "client_secret", "refresh_token")


@dataclass(frozen=True)
class XSettings:
    """Credentials and knobs of the X channel. Without credentials the channel is off."""

    api_key: str = ""
    api_secret: str = ""
    access_token: str = ""
    access_secret: str = ""
    bearer_token: str = ""
    # OAuth 2.0 user context kept fresh: the app's client id (and secret) and a refresh token.
    client_id: str = ""
    client_secret: str = ""
    refresh_token: str = ""
    user_id: str = ""
    mention_poll_seconds: float = 60.0
    tier: str = "pro"
    limits: XLimits = field(default_factory=XLimits)
    link_bot: str = ""
    privacy_url: str = ""

    @property
    def oauth1(self) -> bool:
        """OAuth 1.0a user context: all four keys are set."""
        return all((self.api_key, self.api_secret, self.access_token, self.access_secret))

    @property
    def refreshable(self) -> bool:
        """OAuth 2.0 user context whose access token nalgae refreshes before it expires."""
        return not self.oauth1 and bool(self.refresh_token and self.client_id)

    @property
    def enabled(self) -> bool:
        return self.oauth1 or bool(self.bearer_token) or self.refreshable

    def credentials(self) -> dict[str, str]:
        """The credential fields that are set (what an x_account row keeps, sealed)."""
        return {k: getattr(self, k) for k in CREDENTIAL_FIELDS if getattr(self, k)}

    def with_credentials(self, values: Mapping[str, str]) -> XSettings:
        """These settings with another account's credentials (unknown keys ignored)."""
        changes: dict[str, Any] = {k: str(values.get(k) or "") for k in CREDENTIAL_FIELDS}
        return replace(self, **changes)

    def __repr__(self) -> str:
        # Credentials must never reach a log line through a repr.
        return (f"XSettings(enabled={self.enabled}, oauth1={self.oauth1}, "
                f"refreshable={self.refreshable}, "
                f"user_id={self.user_id!r}, tier={self.tier!r})")

    @classmethod
    def from_env(cls, get: Callable[[str], str]) -> XSettings:
        """Read the NALGAE_X_* settings through ``get`` (name -> value or its default)."""
        try:
            poll_seconds = float(get("NALGAE_X_MENTION_POLL_SECONDS"))
        except ValueError:
            raise ValueError("NALGAE_X_MENTION_POLL_SECONDS must be a number") from None
        if poll_seconds < 1:
            raise ValueError("NALGAE_X_MENTION_POLL_SECONDS must be at least 1")
        user_id = get("NALGAE_X_USER_ID")
        if user_id and not user_id.isdigit():
            raise ValueError("NALGAE_X_USER_ID is the account's numeric id, not its @name")
        tier = get("NALGAE_X_TIER").lower() or "pro"
        if get("NALGAE_X_REFRESH_TOKEN") and not get("NALGAE_X_CLIENT_ID"):
            raise ValueError("NALGAE_X_REFRESH_TOKEN needs NALGAE_X_CLIENT_ID (the X app's "
                             "OAuth 2.0 client id): X refreshes a token only for its app")
        return cls(
            api_key=get("NALGAE_X_API_KEY"),
            api_secret=get("NALGAE_X_API_SECRET"),
            access_token=get("NALGAE_X_ACCESS_TOKEN"),
            access_secret=get("NALGAE_X_ACCESS_SECRET"),
            bearer_token=get("NALGAE_X_BEARER_TOKEN"),
            client_id=get("NALGAE_X_CLIENT_ID"),
            client_secret=get("NALGAE_X_CLIENT_SECRET"),
            refresh_token=get("NALGAE_X_REFRESH_TOKEN"),
            user_id=user_id,
            mention_poll_seconds=poll_seconds,
            tier=tier,
            limits=parse_limits(tier, get("NALGAE_X_LIMITS")),
            link_bot=get("NALGAE_X_LINK_BOT").lstrip("@"),
            privacy_url=get("NALGAE_X_PRIVACY_URL"),
        )


# --- answers from X ---------------------------------------------------------------------------

def rate_limit_reset(headers: Mapping[str, str], now: datetime) -> tuple[datetime, str]:
    """When a 429 ends, from X's headers, and which limit it was ("15m", "24h-user", ...).

    X sends ``x-rate-limit-reset`` (the endpoint's 15-minute window, epoch seconds) and,
    when the daily cap of a user or app is what ran out, ``x-user-limit-24hour-*`` or
    ``x-app-limit-24hour-*``. The latest reset among the exhausted limits wins: retrying
    at the 15-minute reset while the 24-hour cap is spent only earns another 429.
    """
    lower = {k.lower(): v for k, v in headers.items()}

    def epoch(name: str) -> datetime | None:
        try:
            return datetime.fromtimestamp(int(lower[name]), UTC)
        except (KeyError, ValueError, OverflowError, OSError):
            return None

    def spent(prefix: str) -> bool:
        remaining = lower.get(f"{prefix}-remaining")
        try:
            return remaining is None or int(remaining) <= 0
        except ValueError:
            return True

    found: list[tuple[datetime, str]] = []
    for prefix, label in (("x-user-limit-24hour", "24h-user"), ("x-app-limit-24hour", "24h-app")):
        reset = epoch(f"{prefix}-reset")
        if reset is not None and spent(prefix):
            found.append((reset, label))
    reset = epoch("x-rate-limit-reset")
    if reset is not None and (not found or spent("x-rate-limit")):
        found.append((reset, "15m"))
    if not found:
        return now + timedelta(seconds=60), "unknown"
    at, label = max(found)
    return max(at, now + timedelta(seconds=1)), label
