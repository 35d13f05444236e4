"""The store's plumbing on SQLite and MariaDB: the schema version it records, connections (MariaDB dropping
one, SQLite keeping one, made on any thread and closed with the store), the parts of a MySQL URL, and the
bounds it keeps on what it stores. Read back with the store's own dialect, as a second client."""
from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from core.errors import ConfigError
from core.models import ConversationTouch, JobKind, NewJob
from core.store import open_store
from core.store.dialects import dialect_for
from core.store.sql import SCHEMA_VERSION, check_store

NOW = 1_800_000_000.0


def query(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of our own (autocommit on both databases)."""
    dialect = dialect_for(url)
    conn = dialect.connect()
    try:
        cur = conn.cursor()
        cur.execute(dialect.sql(statement), params)
        rows = [tuple(row) for row in cur.fetchall()]
        cur.close()
        return rows
    finally:
        conn.close()


@pytest.fixture
async def store(database_url):
    store = await open_store(database_url)
    yield store
    await store.close()


async def test_a_fresh_database_records_the_schema_version_once(database_url):
    for _ in range(2):
        await (await open_store(database_url)).close()
    assert query(database_url, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]


async def test_an_older_schema_is_upgraded_and_a_newer_one_left_alone(database_url):
    await (await open_store(database_url)).close()
    query(database_url, "DELETE FROM schema_version")
    query(database_url, "INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION - 1,))
    await (await open_store(database_url)).close()
    assert sorted(query(database_url, "SELECT version FROM schema_version")) == [(SCHEMA_VERSION - 1,), (SCHEMA_VERSION,)]
    query(database_url, "DELETE FROM schema_version")
    query(database_url, "INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    await (await open_store(database_url)).close()  # an older release during a rolling deploy
    assert query(database_url, "SELECT version FROM schema_version") == [(SCHEMA_VERSION + 1,)]


@pytest.fixture
def root() -> Iterator[Any]:
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    yield conn
    conn.close()


async def test_a_connection_mariadb_dropped_is_replaced(mariadb_url, root):
    store = await open_store(mariadb_url)
    try:
        await store.ping()
        database = mariadb_url.rsplit("/", 1)[1]
        cur = root.cursor()
        cur.execute("SELECT id FROM information_schema.processlist WHERE db = %s", (database,))
        ids = [row[0] for row in cur.fetchall()]
        assert ids
        for connection_id in ids:
            cur.execute(f"KILL {int(connection_id)}")  # as wait_timeout or a failover would
        for _ in range(8):  # every thread of the pool finds its connection dead
            await store.ping()
        assert await store.accept("k", NOW, [NewJob("A", JobKind.DELIVER, "{}")])
    finally:
        await store.close()


async def test_stored_errors_are_cut_to_2000_characters(store, database_url):
    await store.enqueue([NewJob("A", JobKind.SEND, "a1"), NewJob("B", JobKind.SEND, "b1")], NOW)
    retried, dead = await store.claim("w", NOW, 10, 30)
    await store.retry_later(retried, "w", NOW + 60, "r" * 3000)
    await store.give_up(dead, "w", "d" * 3000, NOW)
    errors = query(database_url, "SELECT payload, last_error FROM jobs ORDER BY id")
    assert [(payload, len(error)) for payload, error in errors] == [("a1", 2000), ("b1", 2000)]


def open_descriptors(path: Path) -> int:
    """How many descriptors this process holds on the database file (and its -wal and -shm)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(str(path))
    return count


async def test_sqlite_runs_on_one_connection_however_many_calls(tmp_path):
    store = await open_store(f"sqlite:///{tmp_path}/relay.db")
    try:
        await store.ping()
        before = open_descriptors(tmp_path / "relay.db")
        await asyncio.gather(*(store.depth() for _ in range(20)))
        for _ in range(20):
            await store.ping()
        assert open_descriptors(tmp_path / "relay.db") == before
    finally:
        await store.close()
    assert open_descriptors(tmp_path / "relay.db") == 0


async def test_sqlite_reads_do_not_wait_for_a_writer(tmp_path):
    """WAL: health checks and lookups go on while another connection writes."""
    url = f"sqlite:///{tmp_path}/relay.db"
    store = await open_store(url)
    await store.accept("k", NOW, [], ConversationTouch("app", "u", None, None, NOW))
    writer = sqlite3.connect(tmp_path / "relay.db", isolation_level=None, timeout=0)
    writer.execute("BEGIN IMMEDIATE")  # holds the write lock; a read asking for it would wait 10 s, then fail
    try:
        await store.ping()
        assert await store.depth() == {"pending": 0, "dead": 0}
        assert (await store.conversation("app", "u")).openid == "u"
        assert await store.linked("c4c", "nobody") is None
        assert await store.dead_letters() == [] and await store.dead_letter(1) is None
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        await store.close()


async def test_a_signature_refuses_another_request_whichever_digest_sorts_first(store):
    assert await store.signature_serves("wechat:1:n:sig", "b" * 64, NOW)
    assert not await store.signature_serves("wechat:1:n:sig", "a" * 64, NOW + 1)
    assert not await store.signature_serves("wechat:1:n:sig", "c" * 64, NOW + 2)


# -- dialects ---------------------------------------------------------------------------------------

def database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def connects(url: str) -> bool:
    try:
        dialect_for(url).connect().close()
    except pymysql.err.OperationalError:
        return False
    return True


def test_a_mysql_url_without_user_password_or_port_means_root_on_3306(mariadb_url):
    assert connects(f"mysql://127.0.0.1/{database_of(mariadb_url)}")
    assert connects(f"mysql://root:@127.0.0.1:3306/{database_of(mariadb_url)}")


@pytest.mark.parametrize("netloc", ["root:@127.0.0.2:3306", "root:@127.0.0.1:3307", "nobody:@127.0.0.1:3306",
                                    "root:wrong@127.0.0.1:3306"], ids=["host", "port", "user", "password"])
def test_every_part_of_a_mysql_url_is_used(mariadb_url, netloc):
    assert not connects(f"mysql://{netloc}/{database_of(mariadb_url)}")  # MariaDB is on 127.0.0.1:3306, root, no password


async def test_sqlite_connections_made_on_other_threads_are_closed_with_the_store(tmp_path):
    store = await open_store(f"sqlite:///{tmp_path}/relay.db")
    worker = threading.Thread(target=lambda: asyncio.run(store.ping()))  # as a function runtime's threads would
    worker.start()
    worker.join()
    await store.close()
    assert open_descriptors(tmp_path / "relay.db") == 0


# -- start-up check -----------------------------------------------------------------------------

@pytest.mark.parametrize("netloc,database,says", [
    ("root:@127.0.0.1:3307", None, "cannot reach MySQL at 127.0.0.1:3307"),
    ("nobody:@127.0.0.1:3306", None, "MySQL refused user 'nobody'"),
    ("root:@127.0.0.1:3306", "relay_missing_db", "MySQL has no database 'relay_missing_db'"),
], ids=["unreachable", "refused", "no-database"])
def test_start_up_names_what_to_fix_when_mysql_cannot_be_used(mariadb_url, netloc, database, says):
    with pytest.raises(ConfigError) as refused:
        check_store(f"mysql://{netloc}/{database or database_of(mariadb_url)}")
    assert str(refused.value).startswith(says)


def test_start_up_passes_a_usable_database_and_names_an_sqlite_file_it_cannot_open(mariadb_url, tmp_path):
    check_store(mariadb_url)
    check_store(f"sqlite:///{tmp_path}/relay.db")
    with pytest.raises(ConfigError, match="cannot open the SQLite file"):
        check_store(f"sqlite:///{tmp_path}/missing/relay.db")


# -- dead letters and desks' own tables -----------------------------------------------------------

async def test_dead_letters_are_listed_newest_first_shown_retried_and_dropped(store):
    await store.enqueue([NewJob(lane, JobKind.SEND, f"payload {lane}") for lane in "ABC"], NOW - 100)
    jobs = await store.claim("w", NOW - 100, 10, 30)
    for job in jobs:
        await store.give_up(job, "w", f"HTTP 400 for {job.lane}", NOW - 50)
    a, b, c = (job.id for job in jobs)
    newest = await store.dead_letters(limit=2)
    assert [(d.id, d.lane, d.error) for d in newest] == [(c, "C", "HTTP 400 for C"), (b, "B", "HTTP 400 for B")]
    assert [d.id for d in await store.dead_letters(limit=2, before=b)] == [a]
    shown = await store.dead_letter(b)
    assert shown is not None and (shown[0].attempts, shown[1]) == (1, "payload B")
    assert await store.retry_dead(b, NOW) == 1
    assert await store.dead_letter(b) is None  # pending again
    [again] = await store.claim("w", NOW, 10, 30)
    assert (again.id, again.first_at) == (b, NOW)  # due now, with a fresh retry period
    assert await store.retry_dead(None, NOW) == 2
    assert await store.depth() == {"pending": 3, "dead": 0}
    await store.give_up(again, "w", "HTTP 400", NOW)
    assert await store.drop_dead(b) and not await store.drop_dead(b)
    assert await store.depth() == {"pending": 2, "dead": 0}


async def test_a_desk_runs_its_own_statements_in_one_transaction(store):
    def add(cur: Any) -> list[int]:
        return [store.insert(cur, "INSERT INTO inbox_canned (title, text, updated_at) VALUES (?, ?, ?)", (title, "x", NOW))
                for title in ("hello", "bye")]

    first, second = await store.transaction(add)
    assert second == first + 1
    rows = await store.transaction(lambda cur: store.execute(cur, "SELECT title FROM inbox_canned ORDER BY id").fetchall(),
                                   write=False)
    assert [tuple(row) for row in rows] == [("hello",), ("bye",)]


async def test_dead_letters_come_100_at_a_time_whatever_their_ids(store):
    await store.enqueue([NewJob(f"lane{n}", JobKind.SEND, "{}") for n in range(130)], NOW)
    for job in await store.claim("w", NOW, 130, 30):
        await store.give_up(job, "w", "HTTP 400", NOW)
    listed = await store.dead_letters()
    assert len(listed) == 100 and listed[0].id == max(d.id for d in listed) >= 130


async def test_a_desks_transaction_that_fails_leaves_nothing(store):
    def add_then_fail(cur: Any) -> None:
        store.insert(cur, "INSERT INTO inbox_canned (title, text, updated_at) VALUES (?, ?, ?)", ("t", "x", NOW))
        raise RuntimeError("the desk changed its mind")

    with pytest.raises(RuntimeError):
        await store.transaction(add_then_fail)
    rows = await store.transaction(lambda cur: store.execute(cur, "SELECT COUNT(*) FROM inbox_canned").fetchone(),
                                   write=False)
    assert tuple(rows) == (0,)


async def test_a_claim_fills_its_limit_with_fresh_jobs_then_the_oldest_heads_and_no_more(store):
    await store.enqueue([NewJob(lane, JobKind.SEND, f"{lane}{n}") for lane in "AB" for n in (1, 2, 3)], NOW)
    for job in await store.claim("w", NOW, 10, 30):
        await store.complete(job, "w")  # A1 and B1: A2 and B2 head a backlog now
    await store.enqueue([NewJob("C", JobKind.SEND, "C1")], NOW)  # starts an empty lane: fresh
    claimed = await store.claim("w", NOW, 2, 30)
    assert [job.payload for job in claimed] == ["C1", "A2"]


@pytest.fixture
def mysql_user(root) -> Iterator[str]:
    """A user with the password "pw", no grants, made for one test; `ACCOUNT LOCK` on request."""
    name = f"relay_{uuid.uuid4().hex[:10]}"
    cur = root.cursor()
    cur.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY 'pw'")
    yield name
    cur.execute(f"DROP USER IF EXISTS '{name}'@'%'")


@pytest.mark.parametrize("netloc,says", [
    ("root:wrong@127.0.0.1:3306", "MySQL refused user 'root'"),
    ("127.0.0.2", "cannot reach MySQL at 127.0.0.2:3306"),  # no port: the default is named
], ids=["wrong-password", "default-port"])
def test_start_up_names_the_user_or_the_address_it_tried(mariadb_url, netloc, says):
    with pytest.raises(ConfigError) as refused:
        check_store(f"mysql://{netloc}/{database_of(mariadb_url)}")
    assert str(refused.value).startswith(says)


def test_start_up_names_a_database_the_user_may_not_use_or_any_other_refusal(mariadb_url, mysql_user, root):
    with pytest.raises(ConfigError) as refused:
        check_store(f"mysql://{mysql_user}:pw@127.0.0.1:3306/{database_of(mariadb_url)}")
    assert str(refused.value).startswith(f"MySQL user '{mysql_user}' may not use database '{database_of(mariadb_url)}'")
    root.cursor().execute(f"ALTER USER '{mysql_user}'@'%' ACCOUNT LOCK")
    with pytest.raises(ConfigError) as refused:
        check_store(f"mysql://{mysql_user}:pw@127.0.0.1:3306/{database_of(mariadb_url)}")
    assert str(refused.value) == "MySQL at 127.0.0.1:3306 failed: OperationalError 4151 Access denied, this account is locked"


# -- desks' tables: upserts and unique indexes ----------------------------------------------------

async def test_an_upsert_inserts_then_updates_the_row_with_the_same_keys(store):
    upsert = store.dialect.upsert("inbox_reads", ("agent_id", "conversation_id", "read_count"), ("agent_id", "conversation_id"))
    for count in (5, 7):
        await store.transaction(lambda cur, count=count: store.execute(cur, upsert, (1, 2, count)))
    rows = await store.transaction(lambda cur: store.execute(cur, "SELECT agent_id, conversation_id, read_count FROM"
                                                                  " inbox_reads").fetchall(), write=False)
    assert [tuple(row) for row in rows] == [(1, 2, 7)]


@pytest.mark.parametrize("statement,values,unique", [
    ("INSERT INTO inbox_agents (name, password_hash, created_at) VALUES (?, 'h', 0)", ("ann", "ann"), True),
    ("INSERT INTO inbox_conversations (app_id, openid) VALUES ('app', ?)", ("u1", "u1"), True),
    ("INSERT INTO inbox_messages (conversation_id, direction, kind, at, ref) VALUES (1, 'in', 'text', 0, ?)",
     ("r1", "r1"), True),
    ("INSERT INTO inbox_sessions (token_hash, agent_id, created_at, expires_at) VALUES (?, 1, 0, 1)", ("t1", "t2"), False),
    ("INSERT INTO inbox_messages (conversation_id, direction, kind, at) VALUES (1, 'in', ?, 5)", ("text", "image"), False),
    ("INSERT INTO inbox_events (id, at, kind) VALUES (?, 5, 'message')", (1, 2), False),
    ("INSERT INTO inbox_conversations (app_id, openid) VALUES ('app', ?)", ("new1", "new2"), False),
    ("INSERT INTO inbox_login_failures (throttle_key, failed_at) VALUES (?, 5)", ("ip:1", "ip:1"), False),
], ids=["agent-name", "conversation-user", "message-ref", "sessions-of-one-agent", "messages-at-one-time",
        "events-at-one-time", "new-conversations-alike", "failures-at-one-time"])
async def test_the_inbox_tables_keep_unique_only_what_must_be(store, statement, values, unique):
    await store.transaction(lambda cur: store.execute(cur, statement, (values[0],)))
    if unique:
        with pytest.raises(store.dialect.integrity_errors):
            await store.transaction(lambda cur: store.execute(cur, statement, (values[1],)))
    else:
        await store.transaction(lambda cur: store.execute(cur, statement, (values[1],)))
