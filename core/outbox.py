"""The outbox worker: leases due jobs (one per lane at a time, so order holds per conversation), runs
them, and retries transient failures with exponential backoff and jitter until `retry_for` runs out."""
from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Sequence

from core import logs
from core.errors import CredentialsRefused, PermanentDeliveryError, TransientDeliveryError
from core.metrics import Metrics
from core.models import Job, Retention
from core.store import SqlStore

log = logs.get("outbox")
POLL_SECONDS = 1.0
MAX_BACKOFF = 300.0
PRUNE_EVERY = 3600.0
MIN_DRAIN_SECONDS = 0.5  # a drain with less time than this left starts nothing new
BUSY_CONCURRENCY = 2  # jobs at once while pushes are arriving: acks come first, the backlog waits
UNEXPECTED_TRIES = 5  # a job failing with an unexpected error (a bug, a malformed answer) is dead after this


def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Seconds to wait after `attempts` failures: 1, 2, 4 … 300, with jitter in [50 %, 100 %]."""
    delay = min(MAX_BACKOFF, 2.0 ** attempts) * random.uniform(0.5, 1.0)
    return max(delay, retry_after or 0.0)


class Outbox:
    def __init__(self, store: SqlStore, handler: Callable[[Job], Awaitable[None]], metrics: Metrics, *,
                 concurrency: int, lease: float, retry_for: float, retention: Retention,
                 clock: Callable[[], float] = time.time, busy: Callable[[], bool] = lambda: False,
                 housekeeping: Sequence[Callable[[float], Awaitable[None]]] = ()) -> None:
        """`busy` says whether requests are arriving now: the worker then keeps to BUSY_CONCURRENCY jobs,
        leaving the event loop to the acknowledgements, and catches up when intake is quiet. `housekeeping`:
        others' periodic work (desks forgetting what they keep), run with the store's pruning."""
        self.store, self.handler, self.metrics, self.clock, self.busy = store, handler, metrics, clock, busy
        self.concurrency, self.lease, self.retry_for, self.retention = concurrency, lease, retry_for, retention
        self.upkeep = tuple(housekeeping)  # others' periodic work (desks forgetting what they keep)
        self.owner = f"{socket.gethostname()[:64]}:{os.getpid()}:{random.getrandbits(32):08x}"
        self._wake = asyncio.Event()
        self._running: dict[asyncio.Task[None], int] = {}  # task -> job id
        self._pruned_at = 0.0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; on cancel, let running jobs finish for a moment."""
        try:
            while True:
                self._wake.clear()
                await self._housekeeping()  # on the clock, busy or idle
                started = await self._start_due()
                if started and len(self._running) < self._limit():
                    continue  # there may be more due right now
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_SECONDS):  # unlike wait_for on 3.11, never eats a cancel
                        await self._wake.wait()
        except asyncio.CancelledError:
            if self._running:
                await asyncio.wait(self._running, timeout=5)
            raise

    async def drain(self, budget: float) -> int:
        """Run due jobs until none are left or `budget` seconds have passed (cloud functions). Returns jobs
        finished. A job cut off by the deadline counts as an attempt and is due again at once."""
        deadline, done = time.monotonic() + budget, 0
        while deadline - time.monotonic() >= MIN_DRAIN_SECONDS:
            jobs = await self.store.claim(self.owner, self.clock(), self.concurrency, self.lease)
            if not jobs:
                break
            tasks = {asyncio.ensure_future(self._process(job)): job for job in jobs}
            finished, cut_off = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
            for task in cut_off:
                task.cancel()
            await asyncio.gather(*cut_off, return_exceptions=True)
            for task in cut_off:
                log.warning("job cut off by the time budget", extra={"job": tasks[task].id})
                await self.store.retry_later(tasks[task], self.owner, self.clock(), "cut off by the time budget")
            done += len(finished)
        await self._housekeeping()
        return done

    def _limit(self) -> int:
        return min(BUSY_CONCURRENCY, self.concurrency) if self.busy() else self.concurrency

    async def _start_due(self) -> int:
        free = self._limit() - len(self._running)
        if free <= 0:
            return 0
        try:
            jobs = await self.store.claim(self.owner, self.clock(), free, self.lease)
        except Exception:
            log.exception("outbox claim failed; the store may be unreachable")
            return 0
        # A job still running here past its lease was just renewed by this claim: run it once.
        fresh = [job for job in jobs if job.id not in self._running.values()]
        for job in fresh:
            task = asyncio.create_task(self._process(job))
            self._running[task] = job.id
            task.add_done_callback(self._finished)
        return len(fresh)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self._wake.set()

    async def _process(self, job: Job) -> None:
        try:
            await self._run(job)
        except asyncio.CancelledError:
            raise
        except Exception:  # the store failed to record the outcome: the lease expires and the job runs again
            log.exception("recording a job outcome failed", extra={"job": job.id})

    async def _run(self, job: Job) -> None:
        fields = {"job": job.id, "kind": job.kind, "lane": job.lane, "attempt": job.attempts + 1}
        try:
            await self.handler(job)
        except CredentialsRefused as exc:  # a configuration fault: loud every time, kept until it is fixed
            log.error("a peer refused the relay's credentials: fix the configuration; the job waits",
                      extra={**fields, "error": str(exc)})
            await self._retry(job, str(exc), exc.retry_after, fields)
        except TransientDeliveryError as exc:
            await self._retry(job, str(exc), exc.retry_after, fields)
        except PermanentDeliveryError as exc:
            await self._give_up(job, str(exc), {**fields, "errcode": exc.errcode})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a malformed answer: retried a few times, then a dead letter
            log.exception("job failed unexpectedly", extra=fields)
            error = logs.describe(exc)
            if job.attempts + 1 >= UNEXPECTED_TRIES:
                await self._give_up(job, error, fields)
            else:
                await self._retry(job, error, None, fields)
        else:
            self.metrics.deliveries.labels(job.kind, "ok").inc()
            await self.store.complete(job, self.owner)

    async def _retry(self, job: Job, error: str, retry_after: float | None, fields: dict[str, object]) -> None:
        now = self.clock()
        if now - job.first_at >= self.retry_for:
            await self._give_up(job, error, fields)
            return
        delay = backoff(job.attempts, retry_after)
        self.metrics.deliveries.labels(job.kind, "retry").inc()
        log.warning("job will be retried", extra={**fields, "error": error, "in_seconds": round(delay, 1)})
        await self.store.retry_later(job, self.owner, now + delay, error)

    async def _give_up(self, job: Job, error: str, fields: dict[str, object]) -> None:
        self.metrics.deliveries.labels(job.kind, "dead").inc()
        log.error("job dead-lettered", extra={**fields, "error": error})
        await self.store.give_up(job, self.owner, error, self.clock())

    async def _housekeeping(self) -> None:
        """Forget what is past its retention, once every PRUNE_EVERY seconds (docs: README, retention)."""
        now = self.clock()
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        try:
            pruned = await self.store.prune(now, self.retention)
        except Exception as exc:
            log.error("pruning failed; tried again in an hour", extra={"error": logs.describe(exc)})
        else:
            log.info("pruned what is past its retention", extra=pruned)
        for upkeep in self.upkeep:
            try:
                await upkeep(now)
            except Exception as exc:
                log.error("periodic upkeep failed; tried again in an hour", extra={"error": logs.describe(exc)})
