"""The outbox worker over a real store: outcomes, backoff, the retry budget, time-boxed drains, concurrency,
leases and housekeeping (in-process, on SQLite: the worker's behaviour is not the store's); pruning keeps
its clock under steady traffic, and a job that fails unexpectedly is retried a few times, then kept as a
dead letter instead of blocking its lane (on both databases). Handlers are plain coroutines the tests script."""
from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from core.errors import PermanentDeliveryError, TransientDeliveryError
from core.metrics import Metrics
from core.models import Job, JobKind, NewJob, Retention
from core.outbox import PRUNE_EVERY, UNEXPECTED_TRIES, Outbox, backoff
from core.store import open_store
from tests.records import captured

NOW = 1_800_000_000.0
RETRY_FOR = 3600.0
WEEK = 7 * 86400.0  # how long dedupe keys are kept
Handler = Callable[[Job], Awaitable[None]]


class Clock:
    """A pinned clock that counts its readings (the worker reads it once per claim and per housekeeping)."""

    def __init__(self) -> None:
        self.now, self.readings = NOW, 0

    def __call__(self) -> float:
        self.readings += 1
        return self.now


@pytest.fixture
async def store(database_url):
    store = await open_store(database_url)
    yield store
    await store.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path):
    store = await open_store(f"sqlite:///{tmp_path}/relay.db")
    yield store
    await store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def make_outbox(store, handler: Handler, clock: Clock, *, concurrency: int = 4, lease: float = 30) -> Outbox:
    return Outbox(store, handler, Metrics(), concurrency=concurrency, lease=lease, retry_for=RETRY_FOR,
                  retention=Retention(dedupe=WEEK), clock=clock)


def deliveries(outbox: Outbox, result: str, kind: str = "k") -> float:
    return outbox.metrics.registry.get_sample_value("relay_deliveries_total", {"kind": kind, "result": result}) or 0


def failing(*errors: Exception) -> tuple[Handler, list[Job]]:
    """A handler that raises `errors` in turn, then succeeds; and the jobs it was called with."""
    calls: list[Job] = []

    async def handler(job: Job) -> None:
        calls.append(job)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]

    return handler, calls


async def only_job(store, at: float) -> Job | None:
    """The one pending job, if it can be claimed at `at` (a probe owner leases it for a second)."""
    jobs = await store.claim("probe", at, 10, 1)
    assert len(jobs) <= 1
    return jobs[0] if jobs else None


# -- backoff ------------------------------------------------------------------------------------

def test_backoff_doubles_from_one_second_with_jitter_between_half_and_whole():
    for attempts in range(9):
        samples = [backoff(attempts) for _ in range(500)]
        assert 2 ** attempts * 0.5 <= min(samples) < 2 ** attempts * 0.6
        assert 2 ** attempts * 0.9 < max(samples) <= 2 ** attempts


def test_backoff_stops_growing_at_five_minutes():
    samples = [backoff(30) for _ in range(5000)]
    assert 150 <= min(samples) < 151
    assert 299 < max(samples) <= 300


def test_backoff_honours_a_longer_retry_after_only():
    assert backoff(0, 120) == 120
    assert all(16 <= backoff(5, 1) <= 32 for _ in range(100))
    assert min(backoff(0, None) for _ in range(200)) < 0.6


# -- outcomes (drain runs each job once and stops when nothing is due) -------------------------

async def test_a_delivered_job_is_completed_and_counted(sqlite_store, clock):
    handler, calls = failing()
    await sqlite_store.enqueue([NewJob("A", "k", "a1")], NOW)
    outbox = make_outbox(sqlite_store, handler, clock)
    assert await outbox.drain(5) == 1
    assert [job.payload for job in calls] == ["a1"]
    assert await sqlite_store.depth() == {"pending": 0, "dead": 0}
    assert (deliveries(outbox, "ok"), deliveries(outbox, "retry"), deliveries(outbox, "dead")) == (1, 0, 0)


async def test_a_transient_failure_is_retried_after_the_backoff(sqlite_store, clock):
    handler, calls = failing(TransientDeliveryError("HTTP 503"))
    await sqlite_store.enqueue([NewJob("A", "k", "a1")], NOW)
    outbox = make_outbox(sqlite_store, handler, clock)
    assert await outbox.drain(5) == 1
    assert len(calls) == 1
    assert await only_job(sqlite_store, NOW + 0.49) is None  # backoff(0) waits 0.5 to 1 second
    again = await only_job(sqlite_store, NOW + 1)
    assert again is not None and (again.payload, again.attempts) == ("a1", 1)
    assert (deliveries(outbox, "ok"), deliveries(outbox, "retry"), deliveries(outbox, "dead")) == (0, 1, 0)


async def test_retry_after_from_the_peer_is_honoured(sqlite_store, clock):
    handler, _ = failing(TransientDeliveryError("HTTP 429", retry_after=120))
    await sqlite_store.enqueue([NewJob("A", "k", "a1")], NOW)
    await make_outbox(sqlite_store, handler, clock).drain(5)
    assert await only_job(sqlite_store, NOW + 119) is None
    assert await only_job(sqlite_store, NOW + 120) is not None


async def test_the_backoff_grows_with_the_attempts_made(sqlite_store, clock):
    handler, calls = failing(*[TransientDeliveryError("HTTP 503")] * 4)
    await sqlite_store.enqueue([NewJob("A", "k", "a1")], NOW)
    outbox = make_outbox(sqlite_store, handler, clock)
    for attempts in range(4):
        if attempts:
            clock.now += 2 ** (attempts - 1)  # the longest wait the backoff allows after `attempts` failures
        await outbox.drain(5)
        assert len(calls) == attempts + 1
    assert await only_job(sqlite_store, clock.now + 3.99) is None  # the fourth failure waits 4 to 8 seconds
    assert await only_job(sqlite_store, clock.now + 8) is not None


async def test_a_permanent_failure_is_dead_lettered_at_once(sqlite_store, clock):
    handler, calls = failing(PermanentDeliveryError("HTTP 400"))
    await sqlite_store.enqueue([NewJob("A", "k", "a1"), NewJob("A", "k", "a2")], NOW)
    outbox = make_outbox(sqlite_store, handler, clock)
    assert await outbox.drain(5) == 2  # the dead a1 frees its lane for a2
    assert [job.payload for job in calls] == ["a1", "a2"]
    assert await sqlite_store.depth() == {"pending": 0, "dead": 1}
    assert (deliveries(outbox, "ok"), deliveries(outbox, "retry"), deliveries(outbox, "dead")) == (1, 0, 1)


async def test_an_unexpected_error_keeps_the_job_for_a_retry(sqlite_store, clock):
    handler, _ = failing(ValueError("a bug"))
    await sqlite_store.enqueue([NewJob("A", "k", "a1")], NOW)
    outbox = make_outbox(sqlite_store, handler, clock)
    await outbox.drain(5)
    again = await only_job(sqlite_store, NOW + 1)
    assert again is not None and again.attempts == 1
    assert (deliveries(outbox, "retry"), deliveries(outbox, "dead")) == (1, 0)


@pytest.mark.parametrize("transient,dead", [(3, False), (4, True), (5, True)])
async def test_an_unexpected_error_on_the_fifth_attempt_or_later_is_dead_at_once(sqlite_store, clock, transient, dead):
    handler, calls = failing(*[TransientDeliveryError("HTTP 503")] * transient, KeyError("ObjectID"))
    await sqlite_store.enqueue([NewJob("A", "k", "a1")], NOW)
    outbox = make_outbox(sqlite_store, handler, clock)
    for _ in range(transient + 1):
        await outbox.drain(5)
        clock.now += 60  # past any backoff these attempts earn
    assert len(calls) == transient + 1
    assert await sqlite_store.depth() == {"pending": 0 if dead else 1, "dead": 1 if dead else 0}


@pytest.mark.parametrize("age,dead", [(RETRY_FOR - 0.001, False), (RETRY_FOR, True), (RETRY_FOR + 60, True)],
                         ids=["just-within", "just-spent", "long-spent"])
async def test_transient_failures_are_dead_lettered_once_retry_for_is_spent(sqlite_store, clock, age, dead):
    handler, _ = failing(TransientDeliveryError("HTTP 503"))
    await sqlite_store.enqueue([NewJob("A", "k", "a1")], NOW)
    clock.now = NOW + age
    outbox = make_outbox(sqlite_store, handler, clock)
    await outbox.drain(5)
    assert await sqlite_store.depth() == {"pending": 0 if dead else 1, "dead": 1 if dead else 0}
    assert (deliveries(outbox, "retry"), deliveries(outbox, "dead")) == ((0, 1) if dead else (1, 0))


async def test_a_retry_is_logged_with_its_attempt_and_wait(sqlite_store, clock):
    handler, _ = failing(*[TransientDeliveryError("HTTP 429", retry_after=12.345)] * 2)
    await sqlite_store.enqueue([NewJob("A", "k", "a1")], NOW)
    outbox = make_outbox(sqlite_store, handler, clock)
    with captured("relay.outbox") as logged:
        await outbox.drain(5)
        clock.now += 13
        await outbox.drain(5)
    retried = [r for r in logged.records if r.getMessage() == "job will be retried"]
    assert [(r.attempt, r.in_seconds, r.error) for r in retried] == [(1, 12.3, "HTTP 429"), (2, 12.3, "HTTP 429")]


async def test_housekeeping_runs_every_upkeep_even_after_one_fails(sqlite_store, clock):
    done: list[float] = []

    async def broken(now: float) -> None:
        raise RuntimeError("the desk's table is gone")

    async def upkeep(now: float) -> None:
        done.append(now)

    handler, _ = failing()
    outbox = Outbox(sqlite_store, handler, Metrics(), concurrency=4, lease=30, retry_for=RETRY_FOR,
                    retention=Retention(dedupe=WEEK), clock=clock, housekeeping=[broken, upkeep])
    with captured("relay.outbox") as logged:
        assert await outbox.drain(5) == 0  # a drain ends with housekeeping too: a function has no idle second
    assert done == [NOW]
    assert logged.messages() == ["pruned what is past its retention", "periodic upkeep failed; tried again in an hour"]


# -- drain: the cloud function's time-boxed run ---------------------------------------------------

async def test_drain_runs_every_due_job_across_rounds_and_counts_them(sqlite_store, clock):
    handler, calls = failing()
    await sqlite_store.enqueue([NewJob(lane, "k", lane) for lane in "ABC"] + [NewJob("A", "k", "A2")], NOW)
    assert await make_outbox(sqlite_store, handler, clock, concurrency=2).drain(5) == 4
    assert sorted(job.payload for job in calls) == ["A", "A2", "B", "C"]


async def test_drain_cuts_off_a_job_at_the_deadline_and_leaves_it_due_at_once(sqlite_store, clock):
    started = asyncio.Event()

    async def hangs(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    await sqlite_store.enqueue([NewJob("A", "k", "a1")], NOW)
    begun = time.monotonic()
    assert await make_outbox(sqlite_store, hangs, clock).drain(0.7) == 0
    assert started.is_set() and time.monotonic() - begun < 2
    again = await only_job(sqlite_store, NOW)
    assert again is not None and again.attempts == 1


async def test_drain_starts_nothing_with_less_than_half_a_second_left(sqlite_store, clock):
    async def slow(job: Job) -> None:
        await asyncio.sleep(0.4)

    await sqlite_store.enqueue([NewJob("A", "k", "a1"), NewJob("A", "k", "a2")], NOW)
    assert await make_outbox(sqlite_store, slow, clock).drain(0.8) == 1  # a1 leaves 0.4 s: a2 is not started
    untouched = await only_job(sqlite_store, NOW)
    assert untouched is not None and (untouched.payload, untouched.attempts) == ("a2", 0)


async def test_drain_with_nothing_due_returns_at_once(sqlite_store, clock):
    handler, calls = failing()
    begun = time.monotonic()
    assert await make_outbox(sqlite_store, handler, clock).drain(5) == 0
    assert time.monotonic() - begun < 1 and calls == []


# -- run: the long-lived worker ------------------------------------------------------------------

async def running(outbox: Outbox) -> asyncio.Task[None]:
    task = asyncio.create_task(outbox.run())
    await asyncio.sleep(0)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_run_delivers_jobs_queued_while_it_waits_when_woken(sqlite_store, clock):
    handler, calls = failing()
    outbox = make_outbox(sqlite_store, handler, clock, concurrency=1)
    task = await running(outbox)
    await sqlite_store.enqueue([NewJob("A", "k", "a1")], NOW)
    begun = time.monotonic()
    outbox.wake()
    await wait_until(lambda: _is(sqlite_store, {"pending": 0, "dead": 0}))
    assert time.monotonic() - begun < 0.5  # woken, not polled a second later
    await stop(task)
    assert [job.payload for job in calls] == ["a1"]


async def test_an_idle_run_polls_once_a_second_and_outlives_a_failed_prune(sqlite_store, clock, tmp_path):
    with sqlite3.connect(tmp_path / "relay.db") as db:
        db.execute("ALTER TABLE received RENAME TO received_away")  # pruning fails
    handler, _ = failing()
    task = await running(make_outbox(sqlite_store, handler, clock))
    await asyncio.sleep(1.5)  # a bounded wait: rounds at 0 s and 1 s, each housekeeping (the first prunes) and a claim
    assert not task.done()
    await stop(task)
    assert clock.readings == 4


async def test_run_keeps_at_most_concurrency_jobs_in_flight(sqlite_store, clock):
    """Three at once: an outbox told nothing about intake is never held to the busy limit of two."""
    gate, in_flight, peak = asyncio.Event(), [0], [0]

    async def blocked(job: Job) -> None:
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        await gate.wait()
        in_flight[0] -= 1

    await sqlite_store.enqueue([NewJob(f"lane{i}", "k", str(i)) for i in range(5)], NOW)
    outbox = make_outbox(sqlite_store, blocked, clock, concurrency=3)
    task = await running(outbox)
    await wait_until(lambda: _true(peak[0] == 3))
    outbox.wake()  # a claim now must find no free slot
    await asyncio.sleep(0.2)  # a bounded wait: nothing more may start while three are blocked
    assert peak[0] == 3
    gate.set()
    await wait_until(lambda: _is(sqlite_store, {"pending": 0, "dead": 0}))
    await stop(task)
    assert peak[0] == 3


async def test_while_intake_is_busy_the_worker_keeps_to_two_jobs(sqlite_store, clock):
    gate, in_flight, peak, busy = asyncio.Event(), [0], [0], [True]

    async def blocked(job: Job) -> None:
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        await gate.wait()
        in_flight[0] -= 1

    await sqlite_store.enqueue([NewJob(f"lane{i}", "k", str(i)) for i in range(6)], NOW)
    outbox = Outbox(sqlite_store, blocked, Metrics(), concurrency=4, lease=30, retry_for=RETRY_FOR,
                    retention=Retention(dedupe=WEEK), clock=clock, busy=lambda: busy[0])
    task = await running(outbox)
    await wait_until(lambda: _true(peak[0] == 2))
    outbox.wake()
    await asyncio.sleep(0.2)  # a bounded wait: nothing more may start while pushes arrive
    assert peak[0] == 2
    busy[0] = False
    outbox.wake()
    await wait_until(lambda: _true(peak[0] == 4))  # intake quiet: the worker catches up
    gate.set()
    await wait_until(lambda: _is(sqlite_store, {"pending": 0, "dead": 0}))
    await stop(task)


async def test_run_does_not_start_a_job_twice_when_it_renews_its_own_lease(sqlite_store, clock):
    gate, calls = asyncio.Event(), []

    async def blocked(job: Job) -> None:
        calls.append(job)
        await gate.wait()

    await sqlite_store.enqueue([NewJob("A", "k", "a1")], NOW)
    outbox = make_outbox(sqlite_store, blocked, clock, lease=10)
    task = await running(outbox)
    await wait_until(lambda: _true(len(calls) == 1))
    clock.now += 11  # the lease ran out while the job still runs: the next claim takes it again
    outbox.wake()
    await asyncio.sleep(0.2)  # a bounded wait: a second start would come right after the wake
    assert len(calls) == 1
    gate.set()
    await wait_until(lambda: _is(sqlite_store, {"pending": 0, "dead": 0}))
    await stop(task)


async def test_run_outlives_a_store_that_fails_for_a_while(sqlite_store, clock, tmp_path):
    handler, calls = failing()
    await sqlite_store.enqueue([NewJob("A", "k", "a1")], NOW)
    with sqlite3.connect(tmp_path / "relay.db") as db:
        db.execute("ALTER TABLE jobs RENAME TO jobs_away")  # every claim fails until it is back
    outbox = make_outbox(sqlite_store, handler, clock)
    task = await running(outbox)
    await asyncio.sleep(0.3)  # a bounded wait: the first claim fails meanwhile, and the worker waits its second
    assert clock.readings <= 2  # housekeeping and one claim: no busy loop against a failing store
    with sqlite3.connect(tmp_path / "relay.db") as db:
        db.execute("ALTER TABLE jobs_away RENAME TO jobs")
    outbox.wake()
    await wait_until(lambda: _true(len(calls) == 1))
    assert not task.done()
    await stop(task)


async def test_an_outcome_the_store_fails_to_record_is_logged_and_the_job_runs_after_its_lease(sqlite_store, clock, tmp_path):
    calls: list[Job] = []

    async def store_fails_meanwhile(job: Job) -> None:
        calls.append(job)
        if len(calls) == 1:
            with sqlite3.connect(tmp_path / "relay.db") as db:
                db.execute("ALTER TABLE jobs RENAME TO jobs_away")

    await sqlite_store.enqueue([NewJob("A", "k", "a1")], NOW)
    with captured("relay.outbox") as logged:
        task = await running(make_outbox(sqlite_store, store_fails_meanwhile, clock, lease=30))
        await wait_until(lambda: _true("recording a job outcome failed" in logged.messages()))
        with sqlite3.connect(tmp_path / "relay.db") as db:
            db.execute("ALTER TABLE jobs_away RENAME TO jobs")
        await stop(task)
    assert await only_job(sqlite_store, NOW + 29) is None  # still leased
    again = await only_job(sqlite_store, NOW + 31)
    assert again is not None and again.attempts == 0


async def test_cancelling_run_lets_a_running_job_finish(sqlite_store, clock):
    started = asyncio.Event()

    async def short(job: Job) -> None:
        started.set()
        await asyncio.sleep(0.3)

    await sqlite_store.enqueue([NewJob("A", "k", "a1")], NOW)
    task = await running(make_outbox(sqlite_store, short, clock))
    await asyncio.wait_for(started.wait(), 5)
    await stop(task)
    assert await sqlite_store.depth() == {"pending": 0, "dead": 0}


async def test_run_prunes_dedupe_keys_older_than_their_retention_once_an_hour(sqlite_store, clock, tmp_path):
    handler, _ = failing()
    await sqlite_store.accept("older", NOW - WEEK - 1, [])
    await sqlite_store.accept("newer", NOW - WEEK + 1, [])
    task = await running(make_outbox(sqlite_store, handler, clock))
    await wait_until(lambda: _true("older" not in received(tmp_path)))  # the first round prunes
    assert "newer" in received(tmp_path)
    await sqlite_store.accept("older2", NOW - WEEK - 1, [])
    await asyncio.sleep(1.3)  # a bounded wait past the next round: within the hour, no second prune
    assert "older2" in received(tmp_path)
    clock.now += 3600
    await wait_until(lambda: _true("older2" not in received(tmp_path)))
    await stop(task)


def received(tmp_path: Path) -> set[str]:
    with sqlite3.connect(tmp_path / "relay.db") as db:
        return {key for (key,) in db.execute("SELECT dedupe_key FROM received")}


async def _is(store, depth: dict[str, int]) -> bool:
    return await store.depth() == depth


async def _true(value: bool) -> bool:
    return value


# -- on both databases ------------------------------------------------------------------------------

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
