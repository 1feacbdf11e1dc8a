"""Micro-batching: requests wait in an asyncio queue, one worker thread runs the model on many at once.

The dispatcher never delays a lone request: when the worker is idle and one job waits, it runs at once. While
a batch runs (torch releases the GIL), new jobs gather in the queue and go together into the next forward
pass, up to `max_batch` items. Only when several jobs are already waiting (concurrent load) does it linger,
at most `max_wait_ms` after the oldest of them arrived and only while more keep arriving, to fill the batch.
A job is never split: one larger than `max_batch` runs alone.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


class QueueFull(Exception):
    """The queue holds `max_queue` jobs already; the client should retry later (503, Retry-After)."""


class ShuttingDown(Exception):
    """The server is stopping and takes no new jobs (503)."""


@dataclass
class Job:
    """One request: its converted inputs, how many items they hold, and the future its answer goes to."""

    payload: Any
    n: int
    future: asyncio.Future
    arrived: float = field(default_factory=time.perf_counter)


@dataclass
class Stats:
    """What the batcher did: forward passes, requests and items, and how many passes had each batch size."""

    forward_passes: int = 0
    requests: int = 0
    items: int = 0
    rejected: int = 0
    largest_batch: int = 0
    model_seconds: float = 0.0
    batch_sizes: collections.Counter = field(default_factory=collections.Counter)  # items per pass -> passes
    requests_per_pass: collections.Counter = field(default_factory=collections.Counter)

    def to_dict(self) -> dict:
        return {"forward_passes": self.forward_passes, "requests": self.requests, "items": self.items,
                "rejected_queue_full": self.rejected, "largest_batch": self.largest_batch,
                "batched_passes": sum(v for k, v in self.requests_per_pass.items() if k > 1),
                "mean_items_per_pass": round(self.items / self.forward_passes, 2) if self.forward_passes else 0.0,
                "mean_forward_ms": round(1000 * self.model_seconds / self.forward_passes, 3)
                if self.forward_passes else 0.0,
                "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
                "requests_per_pass": {str(k): v for k, v in sorted(self.requests_per_pass.items())}}


class Batcher:
    """`await batcher.submit(payload, n)` returns `process([jobs])[i]` for its job, computed in the worker thread.

    `process(jobs)` gets the jobs of one batch and returns one result per job, or an exception instance for a
    job that failed alone (it is raised to that job's caller only). `max_batch=1` turns batching off: one
    forward pass per request.
    """

    def __init__(self, process: Callable[[list[Job]], list[Any]], max_batch: int = 64, max_wait_ms: float = 5.0,
                 max_queue: int = 1024):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be at least 1 and max_wait_ms at least 0")
        self.process, self.max_batch, self.max_wait, self.max_queue = process, max_batch, max_wait_ms / 1000, max_queue
        self.stats = Stats()
        self._queue: collections.deque[Job] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self.busy = False

    # ---- life cycle
    def start(self) -> None:
        """Start the dispatcher on the running event loop and the model's worker thread."""
        if self._task is not None:
            return
        self._closing = False
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="layerwise-model")
        self._task = asyncio.get_running_loop().create_task(self._dispatch(), name="layerwise-batcher")

    async def close(self) -> None:
        """Take no new jobs, finish the queued ones, then stop the worker thread."""
        self._closing = True
        if self._task is None:
            return
        self._wake.set()
        await self._task
        self._task = None
        self._executor.shutdown(wait=True)
        self._executor = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._closing

    # ---- jobs
    async def submit(self, payload: Any, n: int) -> Any:
        if self._closing or self._task is None:
            raise ShuttingDown("the server is shutting down; send the request again to a running server.")
        if len(self._queue) >= self.max_queue:
            self.stats.rejected += 1
            raise QueueFull(f"the server is busy ({len(self._queue)} requests queued); retry in a moment.")
        job = Job(payload, n, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self._wake.set()
        return await job.future

    def _take(self, batch: list[Job], items: int) -> int:
        """Move queued jobs into `batch` while they fit in max_batch items (the first job always fits)."""
        while self._queue:
            job = self._queue[0]
            if job.future.done():  # the caller went away before its turn
                self._queue.popleft()
                continue
            if batch and items + job.n > self.max_batch:
                break
            batch.append(self._queue.popleft())
            items += job.n
        return items

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
            batch: list[Job] = []
            items = self._take(batch, 0)
            if len(batch) > 1 and self.max_wait > 0:  # concurrent load: fill the batch while jobs keep coming
                items = await self._linger(batch, items)
            if not batch:
                continue
            self.busy = True
            t0 = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self.process, batch)
            except Exception as e:  # noqa: BLE001 (an unexpected failure answers every job of the batch)
                results = [e] * len(batch)
            finally:
                self.busy = False
            self._record(batch, items, time.perf_counter() - t0)
            for job, result in zip(batch, results):
                if job.future.done():
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)

    async def _linger(self, batch: list[Job], items: int) -> int:
        deadline = batch[0].arrived + self.max_wait
        gap = self.max_wait / 5  # a pause this long between arrivals ends the wait
        while items < self.max_batch and not self._closing:
            timeout = min(gap, deadline - time.perf_counter())
            if timeout <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                break
            items = self._take(batch, items)
            if self._queue:  # the next job does not fit
                break
        return items

    def _record(self, batch: list[Job], items: int, seconds: float) -> None:
        s = self.stats
        s.forward_passes += 1
        s.requests += len(batch)
        s.items += items
        s.model_seconds += seconds
        s.largest_batch = max(s.largest_batch, items)
        s.batch_sizes[items] += 1
        s.requests_per_pass[len(batch)] += 1
