"""Dynamic batching: admission, a bounded queue per model, and one inference worker that empties it in batches.

A request first takes a *slot* (``async with worker.slot() as slot``), before its body is read: when ``queue_size``
requests already wait for this model (reading, decoding or queued), it gets 503 with Retry-After at once, having
cost nothing. It then reads and decodes its upload and ``slot.submit``s the model input; the queued inputs' bytes
are bounded too (``max_queue_bytes``, 503 past it). The worker takes the first waiting job, then keeps taking jobs
until it has ``max_batch_size`` of them or ``max_wait_s`` has passed since the first, and runs the batch in its own
thread, so the event loop never blocks on inference. Jobs only batch with jobs of the same ``key`` (e.g. the same
test-time augmentation). A job whose request timed out (504) is dropped before it reaches the model.

Isolation: when a batch fails, its jobs are run again one by one, so one bad input answers its own request with
its own error and the others get their answers. An ``APIError`` raised for a job reaches its client as it is; any
other exception is a server fault, logged with its traceback and answered 500 ``inference_failed``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from api.errors import APIError
from api.memory import release_free_memory

log = logging.getLogger("api")


@dataclass
class Job:
    item: Any
    key: Hashable
    future: asyncio.Future
    nbytes: int = 0
    slot: Slot | None = None
    enqueued: float = field(default_factory=time.perf_counter)
    started: float = 0.0  # when its batch went to the model


@dataclass
class Result:
    value: Any
    queue_s: float  # waiting in the queue and for the batch to fill
    inference_s: float  # the batch's model time (shared by the jobs in it)
    batch_size: int


class Slot:
    """One admitted request's place among the waiting ones, until the worker takes its job (or it gives up)."""

    def __init__(self, worker: BatchWorker):
        self.worker, self.held = worker, True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.worker.waiting -= 1
            self.worker.on_queue(self.worker.waiting)

    async def submit(self, item: Any, *, key: Hashable = None, timeout_s: float, nbytes: int = 0) -> Result:
        """Queues ``item`` (``nbytes`` of it counted against the queue's memory budget) and awaits its result."""
        return await self.worker.submit(self, item, key=key, timeout_s=timeout_s, nbytes=nbytes)


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
        max_queue_bytes: int = 1 << 62,
        retry_after_s: int = 1,
        on_batch: Callable[[int, float], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
    ):
        self.name = name
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.queue_size, self.max_queue_bytes = queue_size, max_queue_bytes
        self.retry_after_s = retry_after_s
        self.on_batch = on_batch or (lambda size, seconds: None)
        self.on_queue = on_queue or (lambda depth: None)
        self.queue: asyncio.Queue[Job] = asyncio.Queue()  # bounded by admission, not by maxsize
        self.waiting = 0  # admitted requests the worker has not taken yet: reading, decoding or queued
        self.queued_bytes = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{name}")
        self._task: asyncio.Task | None = None
        self._busy = 0  # jobs taken from the queue and not yet answered

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batch-worker-{self.name}")

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    def _overloaded(self, why: str) -> APIError:
        return APIError(
            503,
            "overloaded",
            f"model {self.name!r} {why}; retry later",
            headers={"Retry-After": str(self.retry_after_s)},
        )

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """Admission: a Slot, or 503 at once when ``queue_size`` requests already wait for this model."""
        if self.waiting >= self.queue_size:
            raise self._overloaded(f"has {self.waiting} images waiting")
        self.waiting += 1
        self.on_queue(self.waiting)
        slot = Slot(self)
        try:
            yield slot
        finally:
            slot.release()  # a no-op once the worker took the job

    async def submit(self, slot: Slot, item: Any, *, key: Hashable, timeout_s: float, nbytes: int) -> Result:
        if self.queued_bytes + nbytes > self.max_queue_bytes and self.queued_bytes > 0:
            raise self._overloaded(f"has {self.queued_bytes / 2**20:.0f} MiB of images waiting")
        job = Job(item, key, asyncio.get_running_loop().create_future(), nbytes=nbytes, slot=slot)
        self.queued_bytes += nbytes
        self.queue.put_nowait(job)
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout_s)
        except TimeoutError:
            job.future.cancel()  # the worker skips it if it has not started
            raise APIError(504, "timeout", f"no answer from model {self.name!r} within {timeout_s:g} s") from None

    def _take(self, job: Job) -> Job:
        self.queued_bytes -= job.nbytes
        if job.slot is not None:
            job.slot.release()
        return job

    async def _next_batch(self) -> list[Job]:
        batch = [self._take(await self.queue.get())]
        self._busy = 1  # counted from here so that drain() also waits for a batch still being gathered
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            try:
                batch.append(self._take(self.queue.get_nowait()))
                self._busy = len(batch)
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(self._take(await asyncio.wait_for(self.queue.get(), remaining)))
                self._busy = len(batch)
            except TimeoutError:
                break
        return [job for job in batch if not job.future.done()]  # drop the ones that timed out while waiting

    async def _run(self, jobs: list[Job], key: Hashable) -> None:
        """Runs ``jobs`` as one batch; if it fails, each job alone, so each gets its own answer or error."""
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        for job in jobs:
            job.started = start
        try:
            values = await loop.run_in_executor(self._executor, self.run_batch, [j.item for j in jobs], key)
        except Exception as exc:
            if len(jobs) == 1:
                _fail(jobs[0], exc, self.name)
                return
            for job in jobs:
                await self._run([job], key)
            return
        seconds = time.perf_counter() - start
        self.on_batch(len(jobs), seconds)
        for job, value in zip(jobs, values):
            if not job.future.done():
                job.future.set_result(Result(value, start - job.enqueued, seconds, len(jobs)))

    async def _loop(self) -> None:
        while True:
            batch = await self._next_batch()
            self._busy = len(batch)
            groups: dict[Hashable, list[Job]] = {}
            for job in batch:
                groups.setdefault(job.key, []).append(job)
            for key, jobs in groups.items():
                await self._run(jobs, key)
            self._busy = 0
            del batch, groups
            if self.queue.empty():
                release_free_memory()  # idle: hand the batch's buffers back to the system

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


def _fail(job: Job, exc: Exception, model: str) -> None:
    if job.future.done():
        return
    if not isinstance(exc, APIError):
        log.error("model %r failed on one image", model, exc_info=exc)
        exc = APIError(
            500, "inference_failed", f"model {model!r} failed on this image; the error is in the server's log"
        )
    job.future.set_exception(exc)
