"""Settings: every one declared once, with its default and a help line.

They come from environment variables prefixed ``NALGAE_`` and an optional
``.env`` file. A test checks that the README documents each of them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from campaigns.x.settings import XSettings


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("NALGAE_DATABASE_URL", "sqlite:///var/nalgae.db",
            "Store: `sqlite:///path` or `postgresql://user@host:port/db`; "
            "nalgae picks the driver."),
    Setting("NALGAE_REDIS_URL", "",
            "Redis for shared rate limits, update dedup and live counters; empty = in-process."),
    Setting("NALGAE_TELEGRAM_TOKEN", "",
            "Bot token from @BotFather; empty = start the local sandbox Bot API instead."),
    Setting("NALGAE_TELEGRAM_BASE_URL", "https://api.telegram.org/bot",
            "Bot API base URL (a self-hosted Bot API server or any compatible emulator)."),
    Setting("NALGAE_TELEGRAM_WEBHOOK_URL", "",
            "Public HTTPS URL of `/telegram/webhook`; empty = long polling."),
    Setting("NALGAE_TELEGRAM_WEBHOOK_SECRET", "",
            "Secret Telegram echoes in `X-Telegram-Bot-Api-Secret-Token`; empty = derived "
            "from the token, so every web process agrees on it."),
    Setting("NALGAE_TELEGRAM_MAX_RATE", "30",
            "Messages per second per bot across all workers (0 = unpaced; up to 1000 for "
            "paid broadcasts)."),
    Setting("NALGAE_HTTP_HOST", "127.0.0.1",
            "Address the web app (dashboard, API, webhook) binds."),
    Setting("NALGAE_HTTP_PORT", "8000", "Port of the web app."),
    Setting("NALGAE_PUBLIC_URL", "",
            "The dashboard's public base URL (e.g. `https://nalgae.example.org`): every link "
            "nalgae sends is built from it, only its host is served, and https makes the "
            "session cookie Secure (with HSTS); empty = `http://127.0.0.1:<NALGAE_HTTP_PORT>`."),
    Setting("NALGAE_SANDBOX_PORT", "8081", "Port of the sandbox Bot API when no token is set."),
    Setting("NALGAE_ADMINS", "",
            "Comma-separated Telegram user ids who become admins (organisers) at start."),
    Setting("NALGAE_SECRET_KEY", "",
            "Key for sessions, login links and derived secrets; empty = a random key per start "
            "(sessions do not survive a restart)."),
    Setting("NALGAE_TOKEN_KEY", "",
            "Key(s) encrypting the stored bot tokens and X account credentials, "
            "comma-separated (the first encrypts, all decrypt); empty = a key generated once "
            "into token.key beside the SQLite database (or in ~/.local/share/nalgae). Set the "
            "same value on every machine."),
    Setting("NALGAE_LOG_LEVEL", "INFO", "Log level (DEBUG, INFO, WARNING, ERROR)."),
    Setting("NALGAE_X_API_KEY", "", "X app's API key (OAuth 1.0a user context, with the next "
            "three); no X credentials at all = the X channel is off."),
    Setting("NALGAE_X_API_SECRET", "", "X app's API key secret (OAuth 1.0a)."),
    Setting("NALGAE_X_ACCESS_TOKEN", "", "The X account's access token (OAuth 1.0a)."),
    Setting("NALGAE_X_ACCESS_SECRET", "", "The X account's access token secret (OAuth 1.0a)."),
    Setting("NALGAE_X_BEARER_TOKEN", "",
            "Instead of the OAuth 1.0a keys: an OAuth 2.0 user access token of the account "
            "(scopes tweet.read tweet.write users.read)."),
    Setting("NALGAE_X_CLIENT_ID", "",
            "OAuth 2.0: the X app's client id, with NALGAE_X_REFRESH_TOKEN: the access token "
            "is then refreshed before it expires."),
    Setting("NALGAE_X_CLIENT_SECRET", "",
            "OAuth 2.0: the X app's client secret (a confidential client; empty for a public "
            "one)."),
    Setting("NALGAE_X_REFRESH_TOKEN", "",
            "OAuth 2.0: the account's refresh token (scope offline.access); single-use, so "
            "nalgae keeps the newest one in the database, encrypted."),
    Setting("NALGAE_X_USER_ID", "",
            "The X account's numeric user id (mentions are read for it); empty = asked from X."),
    Setting("NALGAE_X_MENTION_POLL_SECONDS", "60",
            "Seconds between two reads of the account's mentions (also bounded by X's limits)."),
    Setting("NALGAE_X_TIER", "pro",
            "X rate limits to respect: pro (the published per-endpoint limits), basic or free."),
    Setting("NALGAE_X_LIMITS", "",
            "Override the tier's limits, e.g. `posts_15m=100,posts_24h=10000,"
            "mention_reads_15m=180`."),
    Setting("NALGAE_X_LINK_BOT", "",
            "Telegram bot @username X posts link to (`https://t.me/<name>?start=sign_<slug>`)."),
    Setting("NALGAE_X_PRIVACY_URL", "",
            "Privacy notice linked from X replies; empty = the Telegram bot, whose /start "
            "shows it."),
)

_DEFAULTS = {s.name: s.default for s in SETTINGS}


def _env(env: dict[str, str], name: str) -> str:
    return env.get(name, _DEFAULTS[name]).strip()


def database_url_for_driver(url: str) -> str:
    """Map a plain URL to the async driver nalgae uses (aiosqlite, asyncpg)."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    return url


@dataclass(frozen=True)
class Settings:
    database_url: str = _DEFAULTS["NALGAE_DATABASE_URL"]
    redis_url: str = ""
    telegram_token: str = ""
    telegram_base_url: str = _DEFAULTS["NALGAE_TELEGRAM_BASE_URL"]
    telegram_webhook_url: str = ""
    telegram_webhook_secret: str = ""
    telegram_max_rate: float = 30.0
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    public_url: str = ""
    sandbox_port: int = 8081
    admins: tuple[str, ...] = field(default_factory=tuple)
    secret_key: str = ""
    token_key: str = ""
    log_level: str = "INFO"
    x: XSettings = field(default_factory=XSettings)

    @classmethod
    def from_env(
        cls, environ: dict[str, str] | None = None, dotenv: Path | None = None
    ) -> Settings:
        """Read settings from the environment, over an optional `.env` file."""
        env: dict[str, str] = {}
        dotenv_path = dotenv if dotenv is not None else Path(".env")
        if dotenv_path.is_file():
            env.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
        env.update(os.environ if environ is None else environ)
        secret_key = _env(env, "NALGAE_SECRET_KEY")
        x = XSettings.from_env(lambda name: _env(env, name))
        try:
            max_rate = float(_env(env, "NALGAE_TELEGRAM_MAX_RATE"))
            http_port = int(_env(env, "NALGAE_HTTP_PORT"))
            sandbox_port = int(_env(env, "NALGAE_SANDBOX_PORT"))
        except ValueError as exc:
            raise ValueError(f"invalid numeric setting: {exc}") from None
        public_url = _env(env, "NALGAE_PUBLIC_URL").rstrip("/")
        if public_url and (urlsplit(public_url).scheme not in ("http", "https")
                           or not urlsplit(public_url).hostname):
            raise ValueError("NALGAE_PUBLIC_URL must start with https:// (or http://)")
        if any(0 < len(k.strip()) < 16 for k in _env(env, "NALGAE_TOKEN_KEY").split(",")):
            raise ValueError("NALGAE_TOKEN_KEY: every key needs at least 16 characters")
        if max_rate < 0:
            raise ValueError("NALGAE_TELEGRAM_MAX_RATE must be 0 (unpaced) or positive")
        admins = tuple(a.strip() for a in _env(env, "NALGAE_ADMINS").split(",") if a.strip())
        return cls(
            database_url=_env(env, "NALGAE_DATABASE_URL"),
            redis_url=_env(env, "NALGAE_REDIS_URL"),
            telegram_token=_env(env, "NALGAE_TELEGRAM_TOKEN"),
            telegram_base_url=_env(env, "NALGAE_TELEGRAM_BASE_URL"),
            telegram_webhook_url=_env(env, "NALGAE_TELEGRAM_WEBHOOK_URL"),
            telegram_webhook_secret=_env(env, "NALGAE_TELEGRAM_WEBHOOK_SECRET"),
            telegram_max_rate=max_rate,
            http_host=_env(env, "NALGAE_HTTP_HOST"),
            http_port=http_port,
            public_url=public_url,
            sandbox_port=sandbox_port,
            admins=admins,
            secret_key=secret_key or os.urandom(32).hex(),
            token_key=_env(env, "NALGAE_TOKEN_KEY"),
            log_level=_env(env, "NALGAE_LOG_LEVEL").upper(),
            x=x,
        )

    @property
    def base_url(self) -> str:
        """Where the dashboard is reached: NALGAE_PUBLIC_URL, else the local address."""
        return self.public_url.rstrip("/") or f"http://127.0.0.1:{self.http_port}"

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        """The Host headers the web app answers: the public URL's host (and, for the local
        default, the loopback names a browser on this machine uses)."""
        host = urlsplit(self.base_url).hostname or "127.0.0.1"
        if self.public_url:
            return (host,)
        return (host, "localhost", "127.0.0.1")

    @property
    def driver_database_url(self) -> str:
        return database_url_for_driver(self.database_url)

    def webhook_secret_for(self, token: str) -> str:
        """The webhook secret: configured, or derived so that it survives restarts."""
        if self.telegram_webhook_secret:
            return self.telegram_webhook_secret
        # Derived from the token alone so that N web processes behind a load
        # balancer agree without coordination; Telegram allows [A-Za-z0-9_-]{1,256}.
        return hashlib.sha256(f"nalgae-webhook:{token}".encode()).hexdigest()

    def webhook_secret_for_bot(self, name: str, token: str) -> str:
        """The default bot's secret as above; every other bot's its own, derived from its
        token (and the configured secret, if any), so no two bots share one."""
        if name == "default":
            return self.webhook_secret_for(token)
        seed = f"nalgae-webhook:{self.telegram_webhook_secret}:{name}:{token}"
        return hashlib.sha256(seed.encode()).hexdigest()
