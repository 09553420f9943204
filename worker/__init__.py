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

from campaigns.settings import Settings
from storage.db import Database

from .engine import Worker
from .options import DeliveryStats, WorkerOptions

__all__ = ["DeliveryStats", "Worker", "WorkerOptions", "make_worker"]


def make_worker(settings: Settings, db: Database, *, options: WorkerOptions | None = None
                ) -> Worker:
    """A worker from settings: Redis pacing when NALGAE_REDIS_URL is set."""
    from bots.channel import ChannelFactory
    from storage.ratelimit import rate_limiter

    channels: dict[str, ChannelFactory] = {}
    if settings.x.enabled:
        from bots.x.channel import channel_factory

        channels["x"] = channel_factory(settings.x, db)
    return Worker(db, limiter=rate_limiter(settings.redis_url or None), options=options,
                  channels=channels)
