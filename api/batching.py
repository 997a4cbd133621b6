"""Dynamic batching: a bounded queue per model and one inference worker that empties it in batches.

Requests ``submit`` an already-decoded input and await its result. The worker takes the first waiting job, then
keeps taking jobs until it has ``max_batch_size`` of them or ``max_wait_s`` has passed since the first, and runs
the batch in its own thread, so the event loop never blocks on inference and a GPU sees many images per call.
Jobs only batch with jobs of the same ``key`` (e.g. the same test-time augmentation). A full queue answers 503
with Retry-After at once; a job whose request timed out (504) is dropped before it reaches the model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from api.errors import APIError


@dataclass
class Job:
    item: Any
    key: Hashable
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)
    started: float = 0.0  # when its batch went to the model


@dataclass
class Result:
    value: Any
    queue_s: float  # waiting in the queue and for the batch to fill
    inference_s: float  # the batch's model time (shared by the jobs in it)
    batch_size: int


class BatchWorker:
    """``run_batch(items, key) -> list of results`` (same order) runs in a dedicated thread."""

    def __init__(
        self,
        name: str,
        run_batch: Callable[[list[Any], Hashable], list[Any]],
        *,
        max_batch_size: int,
        max_wait_s: float,
        queue_size: int,
        retry_after_s: int = 1,
        on_batch: Callable[[int, float], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
    ):
        self.name = name
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.retry_after_s = retry_after_s
        self.on_batch = on_batch or (lambda size, seconds: None)
        self.on_queue = on_queue or (lambda depth: None)
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{name}")
        self._task: asyncio.Task | None = None
        self._busy = 0  # jobs taken from the queue and not yet answered

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batch-worker-{self.name}")

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    async def submit(self, item: Any, *, key: Hashable = None, timeout_s: float) -> Result:
        loop = asyncio.get_running_loop()
        job = Job(item, key, loop.create_future())
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            raise APIError(
                503,
                "overloaded",
                f"model {self.name!r} has {self.queue.maxsize} images waiting; retry later",
                headers={"Retry-After": str(self.retry_after_s)},
            ) from None
        self.on_queue(self.queue.qsize())
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout_s)
        except TimeoutError:
            job.future.cancel()  # the worker skips it if it has not started
            raise APIError(504, "timeout", f"no answer from model {self.name!r} within {timeout_s:g} s") from None

    async def _next_batch(self) -> list[Job]:
        first = await self.queue.get()
        batch = [first]
        self._busy = 1  # counted from here so that drain() also waits for a batch still being gathered
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            try:
                batch.append(self.queue.get_nowait())
                self._busy = len(batch)
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
                self._busy = len(batch)
            except TimeoutError:
                break
        self.on_queue(self.queue.qsize())
        return [job for job in batch if not job.future.done()]  # drop the ones that timed out while waiting

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            self._busy = len(batch)
            groups: dict[Hashable, list[Job]] = {}
            for job in batch:
                groups.setdefault(job.key, []).append(job)
            for key, jobs in groups.items():
                start = time.perf_counter()
                for job in jobs:
                    job.started = start
                try:
                    values = await loop.run_in_executor(self._executor, self.run_batch, [j.item for j in jobs], key)
                except Exception as exc:  # answer every waiting request instead of leaving it to time out
                    for job in jobs:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    continue
                seconds = time.perf_counter() - start
                self.on_batch(len(jobs), seconds)
                for job, value in zip(jobs, values):
                    if not job.future.done():
                        job.future.set_result(Result(value, start - job.enqueued, seconds, len(jobs)))
            self._busy = 0

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until every queued job has been answered (graceful shutdown), then stop the worker."""
        deadline = time.perf_counter() + timeout_s
        while (self.queue.qsize() or self._busy) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)
