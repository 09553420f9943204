"""The delivery engine: drains the outbox through each bot's channel.

``nalgae worker`` runs ``Worker.run`` forever; ``nalgae worker --burst``
(``Worker.run_burst``) delivers everything due and exits, as arq's burst mode does.
Per bot there is one lane (lanes.py): a feeder (feeder.py) claims batches of rows
with a lease (storage.outbox), reserves send times from the shared rate limiter
(storage.ratelimit) and queues them; a pool of senders (sender.py) sends them
through the bot's channel (bots/channel.py) and classifies each result
(outcomes.classify); a recorder writes the outcomes in bulk every few
milliseconds. A worker never sends a row whose lease is about to run out, so a row
is only ever sent twice if its worker died (or lost the database) between sending
and recording it.
"""

from __future__ import annotations

from bots.channel import BotInfo, Channel, ChannelFactory, Limits
from campaigns.settings import Settings
from storage.db import Database

from .engine import Worker
from .options import DeliveryStats, WorkerOptions

__all__ = ["DeliveryStats", "Worker", "WorkerOptions", "make_worker"]


def make_worker(settings: Settings, db: Database, *, options: WorkerOptions | None = None
                ) -> Worker:
    """A worker from settings: Redis pacing when NALGAE_REDIS_URL is set."""
    from storage.ratelimit import rate_limiter

    channels: dict[str, ChannelFactory] = {"x": _x_lanes(settings, db)}
    return Worker(db, limiter=rate_limiter(settings.redis_url or None), options=options,
                  channels=channels)


def _x_lanes(settings: Settings, db: Database) -> ChannelFactory:
    """X lanes, for the settings' account and those added as rows (`nalgae x account add`).

    tweepy is imported at the first X lane only: a deployment without X never pays for it.
    """
    made: list[ChannelFactory] = []

    def make(info: BotInfo, limits: Limits) -> Channel:
        if not made:
            from bots.x.channel import channel_factory

            made.append(channel_factory(settings.x, db))
        return made[0](info, limits)

    return make
