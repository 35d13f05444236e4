"""What differs between SQLite and MySQL/MariaDB: connecting, DDL, upserts, placeholders."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Dialect:
    name: str
    connect: Callable[[], Any]
    threads: int  # 0: run statements inline on the event loop (SQLite: a thread handoff costs more than the work)
    integrity_errors: tuple[type[BaseException], ...]
    ddl: tuple[str, ...]
    upsert_conversation: str
    upsert_link: str
    begin: str | None  # statement that opens a write transaction, or None to use conn.begin()
    explain: Callable[[BaseException], str]  # a connection failure as one line naming what to fix
    # Schema 3: jobs.fresh, set when a job starts an empty lane, so that it is not queued behind a backlog.
    upgrade_jobs: tuple[str, ...]

    def sql(self, statement: str) -> str:
        return statement if self.name == "sqlite" else statement.replace("?", "%s")

    def upsert(self, table: str, columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
        """INSERT of `columns` (placeholders in order) that updates the other columns when a row with the
        same `keys` exists: one statement, so concurrent writers of one row never collide."""
        insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "  # noqa: S608 - names are the caller's constants
        updated = [column for column in columns if column not in keys]
        if self.name == "sqlite":
            return insert + f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET " + \
                ", ".join(f"{column} = excluded.{column}" for column in updated)
        return insert + "ON DUPLICATE KEY UPDATE " + ", ".join(f"{column} = VALUES({column})" for column in updated)


_TABLES = {
    "schema_version": "(version INTEGER NOT NULL PRIMARY KEY)",
    "received": "(dedupe_key VARCHAR(255) NOT NULL PRIMARY KEY, received_at DOUBLE NOT NULL)",
    # Signatures that do not cover the whole request: each (timestamp, nonce, signature) serves one request.
    "signatures": "(signature_key VARCHAR(255) NOT NULL PRIMARY KEY, request_digest CHAR(64) NOT NULL,"
                  " seen_at DOUBLE NOT NULL)",
    "conversations": (
        "(app_id VARCHAR(64) NOT NULL, openid VARCHAR(128) NOT NULL, from_appid VARCHAR(64),"
        " desk VARCHAR(32), thread TEXT, window_until DOUBLE NOT NULL DEFAULT 0,"
        " created_at DOUBLE NOT NULL, PRIMARY KEY (app_id, openid))"
    ),
    # A desk-side key (an Echat visitor uid, a C4C account id) that names one WeChat user.
    "links": (
        "(desk VARCHAR(32) NOT NULL, link_key VARCHAR(255) NOT NULL, app_id VARCHAR(64) NOT NULL,"
        " openid VARCHAR(128) NOT NULL, updated_at DOUBLE NOT NULL, PRIMARY KEY (desk, link_key))"
    ),
}
_JOBS_COLUMNS = (
    "lane VARCHAR(255) NOT NULL, kind VARCHAR(32) NOT NULL, payload {payload} NOT NULL,"
    " status VARCHAR(16) NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,"
    " due_at DOUBLE NOT NULL, first_at DOUBLE NOT NULL, lease_owner VARCHAR(128), lease_until DOUBLE,"
    " last_error TEXT"
)

# The built-in inbox (core/desks/inbox): `{id}`, `{text}` and `{blob}` become each database's types;
# indexes are (name, columns, unique). Event ids come from inbox_event_seq, taken in the writing
# transaction, so they commit in order and a reader polling `id > last` never skips one.
_INBOX_TABLES: dict[str, tuple[str, tuple[tuple[str, str, bool], ...]]] = {
    "inbox_agents": (
        "({id}, name VARCHAR(64) NOT NULL, password_hash VARCHAR(255) NOT NULL, admin INTEGER NOT NULL DEFAULT 0,"
        " disabled INTEGER NOT NULL DEFAULT 0, created_at DOUBLE NOT NULL)",
        (("inbox_agents_name", "name", True),)),
    "inbox_sessions": (
        "(token_hash CHAR(64) NOT NULL PRIMARY KEY, agent_id BIGINT NOT NULL, created_at DOUBLE NOT NULL,"
        " expires_at DOUBLE NOT NULL)",
        (("inbox_sessions_agent", "agent_id", False),)),
    "inbox_setup_tokens": ("(token_hash CHAR(64) NOT NULL PRIMARY KEY, expires_at DOUBLE NOT NULL)", ()),
    "inbox_login_failures": (
        "({id}, throttle_key VARCHAR(255) NOT NULL, failed_at DOUBLE NOT NULL)",
        (("inbox_login_failures_key", "throttle_key, failed_at", False),)),
    "inbox_conversations": (
        "({id}, app_id VARCHAR(64) NOT NULL, openid VARCHAR(128) NOT NULL,"
        " status VARCHAR(16) NOT NULL DEFAULT 'open', assignee_id BIGINT, in_count INTEGER NOT NULL DEFAULT 0,"
        " quota_left INTEGER NOT NULL DEFAULT 0, last_message_id BIGINT NOT NULL DEFAULT 0)",
        (("inbox_conversations_user", "app_id, openid", True),
         ("inbox_conversations_status", "status, last_message_id", False),
         ("inbox_conversations_recent", "last_message_id", False))),
    "inbox_messages": (
        "({id}, conversation_id BIGINT NOT NULL, direction VARCHAR(8) NOT NULL, kind VARCHAR(32) NOT NULL,"
        " text {text}, at DOUBLE NOT NULL, agent_id BIGINT, state VARCHAR(16), reason VARCHAR(32),"
        " detail VARCHAR(255), has_media INTEGER NOT NULL DEFAULT 0, ref VARCHAR(255))",
        (("inbox_messages_page", "conversation_id, id", False), ("inbox_messages_at", "at", False),
         ("inbox_messages_ref", "ref", True))),
    "inbox_media": ("(message_id BIGINT NOT NULL PRIMARY KEY, content_type VARCHAR(64) NOT NULL, data {blob} NOT NULL)",
                    ()),
    "inbox_reads": (
        "(agent_id BIGINT NOT NULL, conversation_id BIGINT NOT NULL, read_count INTEGER NOT NULL,"
        " PRIMARY KEY (agent_id, conversation_id))", ()),
    "inbox_canned": ("({id}, title VARCHAR(100) NOT NULL, text {text} NOT NULL, updated_at DOUBLE NOT NULL)", ()),
    "inbox_events": (
        "(id BIGINT NOT NULL PRIMARY KEY, at DOUBLE NOT NULL, kind VARCHAR(16) NOT NULL, conversation_id BIGINT,"
        " message_id BIGINT)",
        (("inbox_events_at", "at", False),)),
    "inbox_event_seq": ("(id INTEGER NOT NULL PRIMARY KEY, last_id BIGINT NOT NULL)", ()),
}


def _inbox_ddl(types: dict[str, str], suffix: str, inline_indexes: bool) -> tuple[str, ...]:
    statements = []
    for name, (body, indexes) in _INBOX_TABLES.items():
        body = body.format(**types)
        if inline_indexes:
            body = body[:-1] + "".join(f", {'UNIQUE ' if unique else ''}INDEX {index} ({columns})"
                                       for index, columns, unique in indexes) + ")"
        statements.append(f"CREATE TABLE IF NOT EXISTS {name} {body}{suffix}")
        if not inline_indexes:
            statements += [f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS {index} ON {name} ({columns})"
                           for index, columns, unique in indexes]
    return tuple(statements)


_LINK_VALUES = "INSERT INTO links (desk, link_key, app_id, openid, updated_at) VALUES (?, ?, ?, ?, ?) "
_UPSERT_VALUES = "INSERT INTO conversations (app_id, openid, from_appid, desk, window_until, created_at) VALUES (?, ?, ?, ?, ?, ?) "


def sqlite_dialect(path: str) -> Dialect:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes; MySQL for machine crashes
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    ddl = tuple(f"CREATE TABLE IF NOT EXISTS {name} {body}" for name, body in _TABLES.items()) + (
        "CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        + _JOBS_COLUMNS.format(payload="TEXT") + ")",
        "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, id)",
        "CREATE INDEX IF NOT EXISTS jobs_lane ON jobs (lane, status, id)",
    ) + _inbox_ddl({"id": "id INTEGER PRIMARY KEY AUTOINCREMENT", "text": "TEXT", "blob": "BLOB"}, "", False) + (
        "INSERT OR IGNORE INTO inbox_event_seq (id, last_id) VALUES (1, 0)",
    )
    upgrade = ("ALTER TABLE jobs ADD COLUMN fresh SMALLINT NOT NULL DEFAULT 0",
               "CREATE INDEX IF NOT EXISTS jobs_fresh ON jobs (status, fresh, id)")
    return Dialect(
        name="sqlite",
        connect=connect,
        threads=0,
        integrity_errors=(sqlite3.IntegrityError,),
        ddl=ddl,
        upsert_conversation=_UPSERT_VALUES + (
            "ON CONFLICT (app_id, openid) DO UPDATE SET"
            " from_appid = COALESCE(excluded.from_appid, conversations.from_appid),"
            " desk = COALESCE(excluded.desk, conversations.desk),"
            " window_until = MAX(conversations.window_until, excluded.window_until)"
        ),
        upsert_link=_LINK_VALUES + (
            "ON CONFLICT (desk, link_key) DO UPDATE SET app_id = excluded.app_id, openid = excluded.openid,"
            " updated_at = excluded.updated_at"
        ),
        begin="BEGIN IMMEDIATE",
        upgrade_jobs=upgrade,
        explain=lambda exc: f"cannot open the SQLite file {path} (DATABASE_URL): {exc}",
    )


def mysql_dialect(url: str) -> Dialect:
    import pymysql

    parts = urlsplit(url)
    database = parts.path.lstrip("/") or "relay"

    def connect() -> Any:
        return pymysql.connect(
            host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
            user=unquote(parts.username or "root"), password=unquote(parts.password or ""),
            database=database, charset="utf8mb4", autocommit=True, connect_timeout=5,
            init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        )

    # Binary collation: keys compare exactly, as on SQLite ("AbC1" and "abc1" are two replies).
    suffix = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    # Dedupe keys are bytes: even a binary collation ignores trailing spaces on MariaDB ("r1 " = "r1").
    tables = {**_TABLES, **{name: _TABLES[name].replace("VARCHAR(255)", "VARBINARY(1020)")
                            for name in ("received", "signatures")}}
    ddl = tuple(f"CREATE TABLE IF NOT EXISTS {name} {body}{suffix}" for name, body in tables.items()) + (
        "CREATE TABLE IF NOT EXISTS jobs (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        + _JOBS_COLUMNS.format(payload="MEDIUMTEXT")
        + ", INDEX jobs_status (status, id), INDEX jobs_lane (lane, status, id))" + suffix,
    ) + _inbox_ddl({"id": "id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY", "text": "MEDIUMTEXT",
                    "blob": "MEDIUMBLOB"}, suffix, True) + (
        "INSERT IGNORE INTO inbox_event_seq (id, last_id) VALUES (1, 0)",
    )
    upgrade = ("ALTER TABLE jobs ADD COLUMN fresh SMALLINT NOT NULL DEFAULT 0, ADD INDEX jobs_fresh (status, fresh, id)",)
    return Dialect(
        name="mysql",
        connect=connect,
        threads=4,
        integrity_errors=(pymysql.err.IntegrityError,),
        ddl=ddl,
        upsert_conversation=_UPSERT_VALUES + (
            "ON DUPLICATE KEY UPDATE"
            " from_appid = COALESCE(VALUES(from_appid), from_appid),"
            " desk = COALESCE(VALUES(desk), desk),"
            " window_until = GREATEST(window_until, VALUES(window_until))"
        ),
        upsert_link=_LINK_VALUES + (
            "ON DUPLICATE KEY UPDATE app_id = VALUES(app_id), openid = VALUES(openid), updated_at = VALUES(updated_at)"
        ),
        begin=None,
        upgrade_jobs=upgrade,
        explain=lambda exc: _explain_mysql(exc, parts.hostname or "127.0.0.1", parts.port or 3306,
                                           unquote(parts.username or "root"), database),
    )


def _explain_mysql(exc: BaseException, host: str, port: int, user: str, database: str) -> str:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if code in (2002, 2003, 2005, 2013):
        return f"cannot reach MySQL at {host}:{port} (MYSQL_ADDRESS or DATABASE_URL): is MySQL enabled and running?"
    if code in (1045, 1698):  # access denied (1698: for a user without a password login)
        return f"MySQL refused user {user!r} (MYSQL_USERNAME and MYSQL_PASSWORD, or DATABASE_URL)"
    if code == 1044:
        return f"MySQL user {user!r} may not use database {database!r} (grant it, or set MYSQL_DATABASE)"
    if code == 1049:
        return f"MySQL has no database {database!r} (MYSQL_DATABASE or DATABASE_URL): create it first"
    message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    return f"MySQL at {host}:{port} failed: {type(exc).__name__} {code or ''} {message[:200]}".replace("  ", " ")


def dialect_for(url: str) -> Dialect:
    if url.startswith("sqlite:///"):
        return sqlite_dialect(url[len("sqlite:///"):])
    return mysql_dialect(url)
