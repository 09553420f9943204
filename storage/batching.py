"""Group commit: callers await their own result while one statement serves many of them.

Requests arriving within a few milliseconds of each other are handed to `flush`
together, so per-request database cost (a transaction, a round trip) is paid once
per batch. Under light load a batch is a single request and waits at most
`max_delay`.
"""

from __future__ import annotations

import asyncio
from typing import Any


class GroupCommit:
    """Batches small writes: callers await their own result, one statement serves many."""

    def __init__(self, max_batch: int = 500, max_delay: float = 0.002) -> None:
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def submit(self, item: Any) -> Any:
        self.start()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_delay
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    # What already waits joins at once. (A timer per request made the
                    # loop so slow that a burst was cut into a first few and the rest:
                    # half the survey lane's batches held one or two answers.)
                    batch.append(self._queue.get_nowait())
                    continue
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except TimeoutError:
                    break
            try:
                results = await self.flush([item for item, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def flush(self, items: list[Any]) -> list[Any]:
        raise NotImplementedError
