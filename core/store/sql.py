"""SqlStore: every operation is one short transaction."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from core.errors import ConfigError
from core.models import Conversation, ConversationTouch, DeadLetter, Job, NewJob, Retention
from core.store.dialects import Dialect, dialect_for

T = TypeVar("T")
SCHEMA_VERSION = 4  # 2: links, signatures; 3: jobs.fresh; 4: the inbox (inbox_* tables)
_HEADS = ("SELECT id, lane, kind, payload, attempts, first_at FROM jobs j WHERE status = 'pending' AND fresh = {fresh}"
          " AND due_at <= ? AND (lease_until IS NULL OR lease_until < ?) AND NOT EXISTS (SELECT 1 FROM jobs p"
          " WHERE p.lane = j.lane AND p.status = 'pending' AND p.id < j.id) ORDER BY {order} LIMIT ?")
FRESH_HEADS = _HEADS.format(fresh=1, order="j.status, j.fresh, j.id")
OLDEST_HEADS = _HEADS.format(fresh=0, order="j.status, j.id")

class SqlStore:
    """SQLite runs inline on the event loop: its statements take microseconds and a thread handoff
    costs ~0.2 ms. MySQL statements are network round trips and run on a small thread pool, one
    connection per thread."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._pool = ThreadPoolExecutor(dialect.threads, thread_name_prefix="store") if dialect.threads else None
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------------
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self.dialect.name == "mysql":
            try:
                conn.ping()  # MySQL drops idle connections; reconnect rather than fail the call
            except Exception:
                conn = None
        if conn is None:
            conn = self._local.conn = self.dialect.connect()
            with self._lock:
                self._connections.append(conn)
        return conn

    def _exec(self, cur: Any, statement: str, params: Iterable[Any] = ()) -> Any:
        cur.execute(self.dialect.sql(statement), tuple(params))
        return cur

    async def _run(self, fn: Callable[[Any], T], *, write: bool = True) -> T:
        def work() -> T:
            conn = self._conn()
            cur = conn.cursor()
            try:
                if write:
                    if self.dialect.begin:
                        cur.execute(self.dialect.begin)
                    else:
                        conn.begin()
                result = fn(cur)
                if write:
                    conn.commit()
                return result
            except BaseException:
                if write:
                    conn.rollback()
                raise
            finally:
                cur.close()

        if self._pool is None:
            return work()
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    async def transaction(self, fn: Callable[[Any], T], *, write: bool = True) -> T:
        """Run `fn(cursor)` as one transaction (a read when `write` is False): for desks' own tables."""
        return await self._run(fn, write=write)

    def execute(self, cur: Any, statement: str, params: Iterable[Any] = ()) -> Any:
        """One statement with `?` placeholders, inside `transaction`."""
        return self._exec(cur, statement, params)

    def insert(self, cur: Any, statement: str, params: Iterable[Any] = ()) -> int:
        """An INSERT inside `transaction`; the new row's id."""
        return int(self._exec(cur, statement, params).lastrowid)

    async def open(self) -> None:
        """Create or upgrade the schema."""

        def migrate(cur: Any) -> None:
            for statement in self.dialect.ddl:
                cur.execute(statement)
            try:
                cur.execute("SELECT fresh FROM jobs WHERE 1 = 0")
            except Exception:  # a table made by schema 2 or before
                for statement in self.dialect.upgrade_jobs:
                    cur.execute(statement)
            row = self._exec(cur, "SELECT MAX(version) FROM schema_version").fetchone()
            if (row[0] or 0) < SCHEMA_VERSION:
                try:
                    self._exec(cur, "INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                except self.dialect.integrity_errors:
                    pass  # another replica migrated at the same moment

        await self._run(migrate, write=False)

    async def close(self) -> None:
        def close_all() -> None:
            with self._lock:
                for conn in self._connections:
                    try:
                        conn.close()
                    except Exception:  # noqa: S110 - closing at shutdown: a dead connection is already closed
                        pass
                self._connections.clear()

        if self._pool is None:
            return close_all()
        await asyncio.get_running_loop().run_in_executor(self._pool, close_all)
        self._pool.shutdown(wait=False)

    async def ping(self) -> None:
        await self._run(lambda cur: self._exec(cur, "SELECT 1").fetchone(), write=False)

    # -- intake -----------------------------------------------------------------------------------
    async def accept(self, dedupe_key: str, now: float, jobs: list[NewJob],
                     conversation: ConversationTouch | None = None) -> bool:
        """Record a push or a desk reply once, with its conversation touch and its jobs, atomically.
        False means a duplicate."""

        def tx(cur: Any) -> bool:
            if not self.accept_in(cur, dedupe_key, now, jobs):
                return False
            if conversation:
                self._exec(cur, self.dialect.upsert_conversation, (*dataclasses.astuple(conversation), now))
            return True

        return await self._run(tx)

    def accept_in(self, cur: Any, dedupe_key: str, now: float, jobs: list[NewJob]) -> bool:
        """`accept` inside the caller's transaction (a desk recording more in the same commit)."""
        try:
            self._exec(cur, "INSERT INTO received (dedupe_key, received_at) VALUES (?, ?)", (dedupe_key, now))
        except self.dialect.integrity_errors:
            return False
        self._insert_jobs(cur, jobs, now)
        return True

    def _insert_jobs(self, cur: Any, jobs: list[NewJob], now: float) -> None:
        """A job that starts an empty lane is `fresh`: claimed before the heads of a backlog."""
        for lane, kind, payload in jobs:
            self._exec(cur, (
                "INSERT INTO jobs (lane, kind, payload, due_at, first_at, fresh) SELECT ?, ?, ?, ?, ?,"
                " CASE WHEN EXISTS (SELECT 1 FROM jobs p WHERE p.lane = ? AND p.status = 'pending') THEN 0 ELSE 1 END"),
                (lane, kind, payload, now, now, lane))

    async def enqueue(self, jobs: list[NewJob], now: float) -> None:
        await self._run(lambda cur: self._insert_jobs(cur, jobs, now))

    # -- conversations ----------------------------------------------------------------------------
    async def conversation(self, app_id: str, openid: str) -> Conversation | None:
        def read(cur: Any) -> Conversation | None:
            row = self._exec(cur, "SELECT from_appid, desk, thread, window_until FROM conversations"
                                  " WHERE app_id = ? AND openid = ?", (app_id, openid)).fetchone()
            if row is None:
                return None
            return Conversation(app_id, openid, row[0], row[1], json.loads(row[2]) if row[2] else None, row[3])

        return await self._run(read, write=False)

    async def set_thread(self, app_id: str, openid: str, desk: str, thread: dict[str, Any]) -> None:
        await self._run(lambda cur: self._exec(
            cur, "UPDATE conversations SET desk = ?, thread = ? WHERE app_id = ? AND openid = ?",
            (desk, json.dumps(thread, ensure_ascii=False), app_id, openid)))

    async def close_window(self, app_id: str, openid: str, seen_until: float) -> None:
        """WeChat said the window is closed (45015) or its quota used (45047): until the user writes.
        A window the user reopened since `seen_until` was read stays open."""
        await self._run(lambda cur: self._exec(
            cur, "UPDATE conversations SET window_until = 0 WHERE app_id = ? AND openid = ? AND window_until <= ?",
            (app_id, openid, seen_until)))

    async def link(self, desk: str, key: str, app_id: str, openid: str, now: float) -> None:
        """Remember that `key` on `desk` names this user (the latest link wins)."""
        await self._run(lambda cur: self._exec(cur, self.dialect.upsert_link, (desk, key, app_id, openid, now)))

    async def linked(self, desk: str, key: str) -> tuple[str, str] | None:
        row = await self._run(lambda cur: self._exec(
            cur, "SELECT app_id, openid FROM links WHERE desk = ? AND link_key = ?", (desk, key)).fetchone(),
            write=False)
        return (row[0], row[1]) if row else None

    # -- outbox -----------------------------------------------------------------------------------
    async def claim(self, owner: str, now: float, limit: int, lease: float) -> list[Job]:
        """Lease up to `limit` due jobs, each the oldest pending one of its lane (order per lane).

        Fresh jobs (those that started an empty lane: a user who is not part of a backlog) come first, in
        order, so that a backlog in other conversations never delays them; then the oldest lane heads. Both
        scans walk an index in order and stop at `limit` (jobs_fresh, jobs_status): a backlog behind the
        heads costs one index probe each, not a sort of the table."""

        def tx(cur: Any) -> list[Job]:
            rows = self._exec(cur, FRESH_HEADS, (now, now, limit)).fetchall()
            if len(rows) < limit:
                rows += self._exec(cur, OLDEST_HEADS, (now, now, limit - len(rows))).fetchall()
            claimed = []
            for row in rows:
                cur2 = self._exec(cur, (
                    "UPDATE jobs SET lease_owner = ?, lease_until = ? WHERE id = ? AND status = 'pending'"
                    " AND (lease_until IS NULL OR lease_until < ?)"), (owner, now + lease, row[0], now))
                if cur2.rowcount == 1:
                    claimed.append(Job(*row))
            return claimed

        return await self._run(tx, write=self.dialect.name == "sqlite")

    async def complete(self, job: Job, owner: str) -> None:
        await self._run(lambda cur: self._exec(
            cur, "DELETE FROM jobs WHERE id = ? AND lease_owner = ?", (job.id, owner)))

    async def retry_later(self, job: Job, owner: str, due_at: float, error: str) -> None:
        await self._run(lambda cur: self._exec(cur, (
            "UPDATE jobs SET attempts = attempts + 1, due_at = ?, lease_owner = NULL, lease_until = NULL,"
            " last_error = ? WHERE id = ? AND lease_owner = ?"), (due_at, error[:2000], job.id, owner)))

    async def give_up(self, job: Job, owner: str, error: str, now: float) -> None:
        """Make the job a dead letter; `due_at` becomes when it died (its retention counts from there)."""
        await self._run(lambda cur: self._exec(cur, (
            "UPDATE jobs SET status = 'dead', attempts = attempts + 1, due_at = ?, lease_owner = NULL,"
            " lease_until = NULL, last_error = ? WHERE id = ? AND lease_owner = ?"), (now, error[:2000], job.id, owner)))

    async def depth(self) -> dict[str, int]:
        rows = await self._run(lambda cur: self._exec(
            cur, "SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall(), write=False)
        return {"pending": 0, "dead": 0, **{status: count for status, count in rows}}

    # -- dead letters -----------------------------------------------------------------------------
    async def dead_letters(self, limit: int = 100, before: int | None = None) -> list[DeadLetter]:
        """Dead jobs, newest first (without their payloads)."""
        rows = await self._run(lambda cur: self._exec(cur, (
            "SELECT id, lane, kind, attempts, first_at, last_error FROM jobs WHERE status = 'dead' AND id < ?"
            " ORDER BY status, id DESC LIMIT ?"), (before or 2 ** 62, limit)).fetchall(), write=False)
        return [DeadLetter(*row) for row in rows]

    async def dead_letter(self, job_id: int) -> tuple[DeadLetter, str] | None:
        """One dead job and its payload."""
        row = await self._run(lambda cur: self._exec(cur, (
            "SELECT id, lane, kind, attempts, first_at, last_error, payload FROM jobs"
            " WHERE id = ? AND status = 'dead'"), (job_id,)).fetchone(), write=False)
        return (DeadLetter(*row[:6]), row[6]) if row else None

    async def retry_dead(self, job_id: int | None, now: float) -> int:
        """Put one dead job (or every one, `job_id` None) back in its lane, due now, with a fresh retry
        period; returns how many."""
        return await self._run(lambda cur: int(self._exec(cur, (
            "UPDATE jobs SET status = 'pending', due_at = ?, first_at = ?, lease_owner = NULL, lease_until = NULL"
            " WHERE status = 'dead' AND (? IS NULL OR id = ?)"), (now, now, job_id, job_id)).rowcount))

    async def drop_dead(self, job_id: int) -> bool:
        return bool(await self._run(lambda cur: self._exec(
            cur, "DELETE FROM jobs WHERE id = ? AND status = 'dead'", (job_id,)).rowcount))

    async def signature_serves(self, key: str, request_digest: str, now: float) -> bool:
        """Record the request (its digest) a signature first came with; False when it comes with another."""

        def tx(cur: Any) -> bool:
            try:
                self._exec(cur, "INSERT INTO signatures (signature_key, request_digest, seen_at) VALUES (?, ?, ?)",
                           (key, request_digest, now))
                return True
            except self.dialect.integrity_errors:
                row = self._exec(cur, "SELECT request_digest FROM signatures WHERE signature_key = ?",
                                 (key,)).fetchone()
                return bool(row) and row[0] == request_digest

        return await self._run(tx)

    async def prune(self, now: float, keep: Retention) -> dict[str, int]:
        """Forget what is past its retention; returns how many rows of each kind went. Links go with
        their conversation, never while it lives."""
        dedupe, dead, gone = now - keep.dedupe, now - keep.dead_letters, now - keep.conversations
        statements: dict[str, tuple[str, tuple[float, ...]]] = {
            "dedupe_keys": ("DELETE FROM received WHERE received_at < ?", (dedupe,)),
            "signatures": ("DELETE FROM signatures WHERE seen_at < ?", (dedupe,)),
            "dead_letters": ("DELETE FROM jobs WHERE status = 'dead' AND due_at < ?", (dead,)),
            "conversations": ("DELETE FROM conversations WHERE window_until < ? AND created_at < ?", (gone, gone)),
            "links": ("DELETE FROM links WHERE updated_at < ? AND NOT EXISTS (SELECT 1 FROM conversations c"
                      " WHERE c.app_id = links.app_id AND c.openid = links.openid)", (gone,)),
        }

        def delete(statement: str, before: tuple[float, ...]) -> Callable[[Any], int]:
            return lambda cur: int(self._exec(cur, statement, before).rowcount)

        # One short transaction each, so that a long prune never holds up intake.
        return {name: await self._run(delete(statement, before)) for name, (statement, before) in statements.items()}


def check_store(url: str) -> None:
    """Connect once, so that start-up stops with one line naming the cause and the variable to fix
    instead of a traceback on the first push."""
    dialect = dialect_for(url)
    try:
        conn = dialect.connect()
        try:
            conn.cursor().execute("SELECT 1")
        finally:
            conn.close()
    except Exception as exc:
        raise ConfigError(dialect.explain(exc)) from None


async def open_store(url: str) -> SqlStore:
    store = SqlStore(dialect_for(url))
    await store.open()
    return store
