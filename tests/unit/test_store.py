"""The store and outbox on SQLite and MariaDB: dedupe, order per lane, leases, retries, dead letters."""
from __future__ import annotations

import asyncio

import pytest

from core.models import ConversationTouch, JobKind, NewJob, Retention
from core.store import open_store

NOW = 1_800_000_000.0


@pytest.fixture
async def store(database_url):
    store = await open_store(database_url)
    yield store
    await store.close()


async def test_accept_is_atomic_and_dedupes(store):
    conv = ConversationTouch("wxapp", "user1", None, None, NOW + 100)
    assert await store.accept("wxapp:1", NOW, [("in:wxapp:user1", "deliver", "{}")], conversation=conv)
    assert not await store.accept("wxapp:1", NOW, [("in:wxapp:user1", "deliver", "{}")], conversation=conv)
    assert (await store.depth())["pending"] == 1
    conversation = await store.conversation("wxapp", "user1")
    assert (conversation.window_until, conversation.desk) == (NOW + 100, None)


async def test_concurrent_duplicates_accepted_once(store):
    results = await asyncio.gather(*(store.accept("k", NOW, [("lane", "deliver", "{}")]) for _ in range(10)))
    assert sorted(results) == [False] * 9 + [True]
    assert (await store.depth())["pending"] == 1


async def test_conversation_upsert_keeps_desk_and_moves_window_forward(store):
    await store.accept("a", NOW, [], conversation=ConversationTouch("app", "u", "wxfrom", "webhook", NOW + 500))
    await store.accept("b", NOW, [], conversation=ConversationTouch("app", "u", None, None, NOW + 100))
    conversation = await store.conversation("app", "u")
    assert (conversation.from_appid, conversation.desk, conversation.window_until) == ("wxfrom", "webhook", NOW + 500)
    await store.close_window("app", "u", NOW + 500)
    assert (await store.conversation("app", "u")).window_until == 0
    await store.set_thread("app", "u", "webhook", {"ticket": "42"})
    assert (await store.conversation("app", "u")).thread == {"ticket": "42"}


async def test_claim_gives_one_job_per_lane_in_order(store):
    await store.enqueue([("A", "k", "a1"), ("A", "k", "a2"), ("B", "k", "b1")], NOW)
    first = sorted(await store.claim("w1", NOW, 10, 30), key=lambda job: job.payload)
    assert [job.payload for job in first] == ["a1", "b1"]
    assert await store.claim("w2", NOW, 10, 30) == []  # a2 waits behind the leased a1
    await store.complete(first[0], "w1")
    assert [job.payload for job in await store.claim("w2", NOW, 10, 30)] == ["a2"]


async def test_retry_later_blocks_its_lane_until_due(store):
    await store.enqueue([("A", "k", "a1"), ("A", "k", "a2")], NOW)
    [job] = await store.claim("w1", NOW, 10, 30)
    await store.retry_later(job, "w1", NOW + 60, "HTTP 503")
    assert await store.claim("w1", NOW + 59, 10, 30) == []  # order: a2 must not overtake a1
    [again] = await store.claim("w1", NOW + 60, 10, 30)
    assert (again.payload, again.attempts) == ("a1", 1)


async def test_expired_lease_is_taken_over_and_late_complete_is_ignored(store):
    await store.enqueue([("A", "k", "a1")], NOW)
    [job] = await store.claim("dead-replica", NOW, 10, 30)
    assert await store.claim("live", NOW + 29, 10, 30) == []
    [taken] = await store.claim("live", NOW + 31, 10, 30)
    assert taken.id == job.id
    await store.complete(job, "dead-replica")  # the old owner wakes up: no effect
    assert (await store.depth())["pending"] == 1
    await store.complete(taken, "live")
    assert (await store.depth())["pending"] == 0


async def test_dead_letter_frees_the_lane(store):
    await store.enqueue([("A", "k", "a1"), ("A", "k", "a2")], NOW)
    [job] = await store.claim("w", NOW, 10, 30)
    await store.give_up(job, "w", "HTTP 400", NOW)
    assert (await store.depth()) == {"pending": 1, "dead": 1}
    assert [j.payload for j in await store.claim("w", NOW, 10, 30)] == ["a2"]


async def test_two_workers_claim_disjoint_jobs(store):
    await store.enqueue([(f"lane{i}", "k", str(i)) for i in range(40)], NOW)
    a, b = await asyncio.gather(store.claim("a", NOW, 40, 30), store.claim("b", NOW, 40, 30))
    ids_a, ids_b = {j.id for j in a}, {j.id for j in b}
    assert not ids_a & ids_b and len(ids_a | ids_b) == 40


async def test_prune_forgets_old_dedupe_keys(store):
    await store.accept("old", NOW - 10, [])
    await store.accept("new", NOW, [])
    assert (await store.prune(NOW, Retention(dedupe=5)))["dedupe_keys"] == 1
    assert await store.accept("old", NOW, [])
    assert not await store.accept("new", NOW, [])


async def test_prune_keeps_each_kind_for_its_retention(store):
    keep = Retention(dedupe=100, dead_letters=1000, conversations=5000)
    await store.enqueue([NewJob("A", JobKind.SEND, "old"), NewJob("B", JobKind.SEND, "young"),
                         NewJob("C", JobKind.SEND, "pending")], NOW - 9000)
    old, young = await store.claim("w", NOW - 9000, 2, 30)
    await store.give_up(old, "w", "HTTP 400", NOW - 1001)
    await store.give_up(young, "w", "HTTP 400", NOW - 999)
    for openid, window_until in (("gone", NOW - 5001), ("live", NOW - 4999)):
        await store.accept(openid, NOW - 9000, [], ConversationTouch("app", openid, None, None, window_until))
        await store.link("c4c", openid, "app", openid, NOW - 9000)
    pruned = await store.prune(NOW, keep)
    assert (pruned["dead_letters"], pruned["conversations"], pruned["links"]) == (1, 1, 1)
    assert await store.depth() == {"pending": 1, "dead": 1}  # a pending job is never pruned, however old
    assert await store.conversation("app", "gone") is None and await store.linked("c4c", "gone") is None
    assert await store.conversation("app", "live") is not None
    assert await store.linked("c4c", "live") == ("app", "live")  # an old link lives while its conversation does


async def test_claimers_racing_on_one_database_never_share_a_job(database_url):
    """Replicas claim with their own connections at the same moment: each job runs in one of them."""
    stores = [await open_store(database_url) for _ in range(4)]
    try:
        await stores[0].enqueue([NewJob(f"lane{i % 25}", JobKind.SEND, str(i)) for i in range(100)], NOW)
        claimed: list[int] = []
        for _ in range(6):  # rounds: each replica claims, completes what it got, claims again
            rounds = await asyncio.gather(*(s.claim(f"r{n}", NOW, 10, 30) for n, s in enumerate(stores)))
            claimed += [job.id for jobs in rounds for job in jobs]
            for n, jobs in enumerate(rounds):
                for job in jobs:
                    await stores[n].complete(job, f"r{n}")
        assert len(claimed) == len(set(claimed))
    finally:
        for s in stores:
            await s.close()


async def test_accept_is_all_or_nothing(store):
    """A failure after the dedupe key is written (here the job cannot be stored) leaves neither, so
    WeChat's resend is taken afresh."""
    with pytest.raises(Exception):  # noqa: B017 - the database's own integrity error
        await store.accept("msg-1", NOW, [NewJob("A", JobKind.DELIVER, None)])  # type: ignore[arg-type]
    assert await store.depth() == {"pending": 0, "dead": 0}
    assert await store.accept("msg-1", NOW, [NewJob("A", JobKind.DELIVER, "{}")])


async def test_schema_open_is_idempotent(database_url):
    first = await open_store(database_url)
    await first.accept("k", NOW, [("l", "k", "p")])
    await first.close()
    second = await open_store(database_url)  # upgrade path: tables exist, data kept
    assert (await second.depth())["pending"] == 1
    await second.close()


async def test_dedupe_keys_compare_exactly_on_every_database(store):
    assert await store.accept("reply:webhook:AbC1", NOW, [])
    assert await store.accept("reply:webhook:abc1", NOW, [])  # MySQL's default collation would say duplicate
    assert await store.accept("reply:webhook:r1 ", NOW, [])
    assert await store.accept("reply:webhook:r1", NOW, [])


async def test_close_window_spares_a_window_the_user_reopened(store):
    await store.accept("a", NOW, [], conversation=ConversationTouch("app", "u", None, None, NOW + 100))
    await store.accept("b", NOW, [], conversation=ConversationTouch("app", "u", None, None, NOW + 500))  # the user wrote meanwhile
    await store.close_window("app", "u", NOW + 100)  # WeChat's 45015 answered a send made before
    assert (await store.conversation("app", "u")).window_until == NOW + 500
    await store.close_window("app", "u", NOW + 500)
    assert (await store.conversation("app", "u")).window_until == 0


async def test_links_map_desk_keys_to_users_latest_wins(store):
    assert await store.linked("echat", "uid-1") is None
    await store.link("echat", "uid-1", "app", "user1", NOW)
    await store.link("c4c", "uid-1", "app", "other", NOW)  # keys are per desk
    assert await store.linked("echat", "uid-1") == ("app", "user1")
    await store.link("echat", "uid-1", "app2", "user2", NOW + 1)
    assert await store.linked("echat", "uid-1") == ("app2", "user2")
    assert await store.linked("echat", "UID-1") is None  # exact keys
    assert await store.linked("c4c", "uid-1") == ("app", "other")


async def test_a_signature_serves_one_request(store):
    assert await store.signature_serves("echat:1:n:sig", "a" * 64, NOW)
    assert await store.signature_serves("echat:1:n:sig", "a" * 64, NOW + 1)  # a resend
    assert not await store.signature_serves("echat:1:n:sig", "b" * 64, NOW + 2)  # another request
    assert await store.signature_serves("echat:1:n:SIG", "b" * 64, NOW)  # exact keys
    await store.prune(NOW + 10, Retention(dedupe=0))
    assert await store.signature_serves("echat:1:n:sig", "b" * 64, NOW + 20)  # forgotten after pruning


async def test_a_job_that_starts_an_empty_lane_is_claimed_before_a_backlog(store):
    """A user outside a backlog is not queued behind it: fresh lanes first, in order; then the oldest heads."""
    await store.enqueue([NewJob(f"busy{i % 5}", JobKind.SEND, f"b{i}") for i in range(50)], NOW)
    for job in await store.claim("w", NOW, 5, 30):  # each busy lane's first job started it: fresh
        await store.complete(job, "w")
    await store.enqueue([NewJob("quiet", JobKind.SEND, "q1")], NOW + 1)
    assert [job.payload for job in await store.claim("w", NOW + 1, 1, 30)] == ["q1"]
    rest = await store.claim("w", NOW + 1, 10, 30)
    assert sorted(job.payload for job in rest) == ["b5", "b6", "b7", "b8", "b9"]  # still one per lane, in order


async def test_a_schema_2_jobs_table_is_upgraded_in_place(tmp_path):
    import sqlite3
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, lane VARCHAR(255) NOT NULL,"
                   " kind VARCHAR(32) NOT NULL, payload TEXT NOT NULL, status VARCHAR(16) NOT NULL DEFAULT 'pending',"
                   " attempts INTEGER NOT NULL DEFAULT 0, due_at DOUBLE NOT NULL, first_at DOUBLE NOT NULL,"
                   " lease_owner VARCHAR(128), lease_until DOUBLE, last_error TEXT)")
        db.execute("INSERT INTO jobs (lane, kind, payload, due_at, first_at) VALUES ('A', 'send', 'kept', 0, 0)")
    store = await open_store(f"sqlite:///{path}")
    try:
        [job] = await store.claim("w", NOW, 10, 30)
        assert job.payload == "kept"
    finally:
        await store.close()
