"""The outbox worker over a real store: pruning keeps its clock under steady traffic, and a job that
fails unexpectedly is retried a few times, then kept as a dead letter instead of blocking its lane."""
from __future__ import annotations

import asyncio
import time

import pytest

from core.metrics import Metrics
from core.models import Job, JobKind, NewJob, Retention
from core.outbox import PRUNE_EVERY, UNEXPECTED_TRIES, Outbox
from core.store import open_store


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(database_url):
    store = await open_store(database_url)
    yield store
    await store.close()


async def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_pruning_keeps_its_clock_while_jobs_keep_arriving(store):
    clock = Clock()

    async def handler(job: Job) -> None:
        return None

    outbox = Outbox(store, handler, Metrics(), concurrency=4, lease=30, retry_for=3600,
                    retention=Retention(dedupe=60), clock=clock)
    await store.accept("old-key", clock.now - 120, [])

    async def traffic() -> None:  # a job every 20 ms: the worker is never idle for a second
        for n in range(10_000):
            await store.enqueue([NewJob(f"lane{n}", JobKind.SEND, "{}")], clock.now)
            outbox.wake()
            clock.now += PRUNE_EVERY / 50
            await asyncio.sleep(0.02)

    worker, pushes = asyncio.create_task(outbox.run()), asyncio.create_task(traffic())
    try:
        await wait_until(lambda: store.accept("old-key", clock.now, []), timeout=3)  # forgotten: taken afresh
    finally:
        for task in (worker, pushes):
            task.cancel()
        await asyncio.gather(worker, pushes, return_exceptions=True)


async def test_a_job_failing_unexpectedly_becomes_a_dead_letter_and_frees_its_lane(store):
    clock = Clock()
    ran: list[str] = []

    async def handler(job: Job) -> None:
        ran.append(job.payload)
        if job.payload == "poison":
            raise KeyError("ObjectID")  # a malformed answer the code did not expect

    outbox = Outbox(store, handler, Metrics(), concurrency=4, lease=30, retry_for=86400,
                    retention=Retention(), clock=clock)
    await store.enqueue([NewJob("lane", JobKind.SEND, "poison"), NewJob("lane", JobKind.SEND, "next")], clock.now)
    for _ in range(UNEXPECTED_TRIES + 2):
        await outbox.drain(5)
        clock.now += 3600  # past any backoff
    assert ran.count("poison") == UNEXPECTED_TRIES and ran[-1] == "next"
    assert await store.depth() == {"pending": 0, "dead": 1}
