"""The inbox's tables (DDL in core/store/dialects.py): conversations, messages and their pictures,
agents, sessions, login failures, canned replies and the change events the page follows. Every method
is one transaction on the relay's store; every change writes its event in the same commit."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from core.models import NewJob, conversation_id
from core.store import SqlStore

T = TypeVar("T")
QUOTA_AFTER_MESSAGE = 5  # WeChat: 5 messages within 48 h of the user's message
QUOTA_AFTER_SESSION = 2  # 2 messages within 1 minute of the user entering the chat
PREVIEW_CHARS = 200  # of a conversation's last message in the list


@dataclass(frozen=True)
class Agent:
    id: int
    name: str
    admin: bool
    disabled: bool = False

    def to_api(self) -> dict[str, Any]:
        return {"name": self.name, "admin": self.admin, "disabled": self.disabled}


@dataclass(frozen=True)
class Picture:
    content_type: str
    data: bytes


@dataclass(frozen=True)
class NewMessage:
    """A message to record: `ref` makes recording it twice a no-op (the user's message id, or an
    agent's own request id)."""

    direction: str  # in, out, note
    kind: str  # text, image, miniprogrampage, session, other
    text: str | None
    agent_id: int | None = None
    ref: str | None = None
    picture: Picture | None = None


_MESSAGE_FIELDS = "m.direction, m.kind, m.text, m.at, m.state, m.reason, m.detail, m.has_media, ma.name"
_MESSAGE_COLUMNS = f"m.id, mc.app_id, mc.openid, {_MESSAGE_FIELDS}"
_MESSAGE_JOINS = ("JOIN inbox_conversations mc ON mc.id = m.conversation_id"
                  " LEFT JOIN inbox_agents ma ON ma.id = m.agent_id")
_CONVERSATION_SELECT = (
    "SELECT c.id, c.app_id, c.openid, c.status, a.name, c.in_count - COALESCE(r.read_count, 0), c.quota_left,"  # noqa: S608 - constant fragments; values are bound
    f" COALESCE(v.window_until, 0), m.id, {_MESSAGE_FIELDS}"
    " FROM inbox_conversations c"
    " LEFT JOIN conversations v ON v.app_id = c.app_id AND v.openid = c.openid"
    " LEFT JOIN inbox_reads r ON r.agent_id = ? AND r.conversation_id = c.id"
    " LEFT JOIN inbox_agents a ON a.id = c.assignee_id"
    " LEFT JOIN inbox_messages m ON m.id = c.last_message_id"
    " LEFT JOIN inbox_agents ma ON ma.id = m.agent_id"
)


def message_to_api(row: tuple[Any, ...], preview: bool = False) -> dict[str, Any]:
    """A message row (_MESSAGE_COLUMNS) as the API shows it."""
    message_id, app_id, openid, direction, kind, text, at, state, reason, detail, has_media, agent = row
    if preview and text and len(text) > PREVIEW_CHARS:
        text = text[:PREVIEW_CHARS] + "…"
    return {"id": str(message_id), "conversation_id": conversation_id(app_id, openid), "direction": direction,
            "type": kind, "text": text, "at": at, "state": state, "reason": reason, "detail": detail,
            "agent": agent, "image": f"/inbox/api/media/{message_id}" if has_media else None}


def conversation_to_api(row: tuple[Any, ...], now: float) -> dict[str, Any]:
    _, app_id, openid, status, assignee, unread, quota_left, window_until, *last = row
    return {"id": conversation_id(app_id, openid), "app_id": app_id, "openid": openid, "status": status,
            "assignee": assignee, "unread": max(0, unread), "can_reply": window_until > now and quota_left > 0,
            "window_until": window_until, "quota_left": quota_left,
            "last_message": message_to_api((last[0], app_id, openid, *last[1:]), preview=True) if last[0] else None}


class InboxStore:
    def __init__(self, store: SqlStore) -> None:
        self.sql = store

    async def _tx(self, fn: Callable[[Any], T], *, write: bool = True) -> T:
        return await self.sql.transaction(fn, write=write)

    def _one(self, cur: Any, statement: str, *params: Any) -> Any:
        return self.sql.execute(cur, statement, params).fetchone()

    def _event(self, cur: Any, kind: str, now: float, conversation: int | None = None,
               message: int | None = None) -> None:
        """A change the page hears of; its id is taken under the sequence row's lock, so ids commit in
        order. Always the transaction's last write: every transaction takes that lock last, so no two
        wait on each other (MySQL)."""
        self.sql.execute(cur, "UPDATE inbox_event_seq SET last_id = last_id + 1 WHERE id = 1")
        event_id = self._one(cur, "SELECT last_id FROM inbox_event_seq WHERE id = 1")[0]
        self.sql.execute(cur, "INSERT INTO inbox_events (id, at, kind, conversation_id, message_id) VALUES (?, ?, ?, ?, ?)",
                         (event_id, now, kind, conversation, message))

    def _conversation_id(self, cur: Any, app_id: str, openid: str) -> int | None:
        row = self._one(cur, "SELECT id FROM inbox_conversations WHERE app_id = ? AND openid = ?", app_id, openid)
        return int(row[0]) if row else None

    def _new_conversation_id(self, cur: Any, app_id: str, openid: str) -> int:
        found = self._conversation_id(cur, app_id, openid)
        if found is not None:
            return found
        try:
            return self.sql.insert(cur, "INSERT INTO inbox_conversations (app_id, openid) VALUES (?, ?)", (app_id, openid))
        except self.sql.dialect.integrity_errors:  # another replica's first message of this user, just now
            return self._new_conversation_id(cur, app_id, openid)

    def _insert_message(self, cur: Any, conversation: int, message: NewMessage, now: float,
                        state: str | None = None) -> int:
        message_id = self.sql.insert(cur, (
            "INSERT INTO inbox_messages (conversation_id, direction, kind, text, at, agent_id, state, has_media, ref)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"), (conversation, message.direction, message.kind, message.text, now,
                                                    message.agent_id, state, int(message.picture is not None),
                                                    message.ref))
        if message.picture:
            self.sql.execute(cur, "INSERT INTO inbox_media (message_id, content_type, data) VALUES (?, ?, ?)",
                             (message_id, message.picture.content_type, message.picture.data))
        return message_id

    def _by_ref(self, cur: Any, ref: str | None) -> int | None:
        row = self._one(cur, "SELECT id FROM inbox_messages WHERE ref = ?", ref) if ref else None
        return row[0] if row else None

    # -- messages ---------------------------------------------------------------------------------
    async def record_in(self, app_id: str, openid: str, message: NewMessage, now: float) -> bool:
        """A user's message: (re)opens the conversation and renews the reply quota. False: seen before."""

        def tx(cur: Any) -> bool:
            if self._by_ref(cur, message.ref) is not None:
                return False
            conversation = self._new_conversation_id(cur, app_id, openid)
            message_id = self._insert_message(cur, conversation, message, now)
            quota = QUOTA_AFTER_SESSION if message.kind == "session" else QUOTA_AFTER_MESSAGE  # at least this many
            self.sql.execute(cur, (
                "UPDATE inbox_conversations SET status = 'open', in_count = in_count + 1, last_message_id = ?,"
                " quota_left = CASE WHEN quota_left > ? THEN quota_left ELSE ? END WHERE id = ?"),
                (message_id, quota, quota, conversation))
            self._event(cur, "message", now, conversation, message_id)
            return True

        return await self._tx(tx)

    async def record_reply(self, app_id: str, openid: str, message: NewMessage, now: float, pieces: int,
                           jobs: Callable[[int], tuple[str, list[NewJob]]]) -> tuple[int, bool] | None:
        """An agent's reply and the outbox jobs that send it (`jobs(message_id)` gives the dedupe key and
        the jobs), in one commit. Returns (id, new); (id, False) for a request id seen before; None when
        the inbox has no such conversation."""

        def tx(cur: Any) -> tuple[int, bool] | None:
            seen = self._by_ref(cur, message.ref)
            if seen is not None:
                return seen, False
            conversation = self._conversation_id(cur, app_id, openid)
            if conversation is None:
                return None
            message_id = self._insert_message(cur, conversation, message, now, state="queued")
            self.sql.execute(cur, (
                "UPDATE inbox_conversations SET status = 'waiting', last_message_id = ?,"
                " quota_left = CASE WHEN quota_left > ? THEN quota_left - ? ELSE 0 END WHERE id = ?"),
                (message_id, pieces, pieces, conversation))
            self._read_all(cur, message.agent_id, conversation)
            dedupe_key, send_jobs = jobs(message_id)
            self.sql.accept_in(cur, dedupe_key, now, send_jobs)
            self._event(cur, "message", now, conversation, message_id)
            return message_id, True

        return await self._tx(tx)

    async def record_note(self, app_id: str, openid: str, message: NewMessage, now: float) -> int | None:
        def tx(cur: Any) -> int | None:
            conversation = self._conversation_id(cur, app_id, openid)
            if conversation is None:
                return None
            message_id = self._insert_message(cur, conversation, message, now)
            self._event(cur, "message", now, conversation, message_id)
            return message_id

        return await self._tx(tx)

    async def set_state(self, message_id: int, state: str, now: float, reason: str | None = None,
                        detail: str | None = None) -> None:
        """A reply's delivery state; `sent` only replaces `queued` (a refused piece stays refused)."""

        def tx(cur: Any) -> None:
            changed = self.sql.execute(cur, (
                "UPDATE inbox_messages SET state = ?, reason = ?, detail = ? WHERE id = ? AND direction = 'out'"
                " AND (? = 0 OR state = 'queued')"), (state, reason, (detail or "")[:255] or None, message_id,
                                                     int(state == "sent"))).rowcount
            if changed:
                row = self._one(cur, "SELECT conversation_id FROM inbox_messages WHERE id = ?", message_id)
                self._event(cur, "state", now, row[0], message_id)

        await self._tx(tx)

    async def messages(self, app_id: str, openid: str, before: int | None, after: int | None,
                       limit: int) -> list[dict[str, Any]] | None:
        """A page of a conversation's messages, oldest first: the newest `limit` before `before`, or the
        oldest `limit` after `after`. None when there is no such conversation."""

        def read(cur: Any) -> list[dict[str, Any]] | None:
            conversation = self._conversation_id(cur, app_id, openid)
            if conversation is None:
                return None
            if after is not None:
                where, order = "m.id > ?", "ASC"
            else:
                where, order = "m.id < ?", "DESC"
            rows = self.sql.execute(cur, (
                f"SELECT {_MESSAGE_COLUMNS} FROM inbox_messages m {_MESSAGE_JOINS}"  # noqa: S608 - constant fragments; values are bound
                f" WHERE m.conversation_id = ? AND {where} ORDER BY m.id {order} LIMIT ?"),
                (conversation, after if after is not None else (before or 2 ** 62), limit)).fetchall()
            found = [message_to_api(row) for row in rows]
            return found if after is not None else found[::-1]

        return await self._tx(read, write=False)

    async def picture(self, message_id: int) -> Picture | None:
        row = await self._tx(lambda cur: self._one(
            cur, "SELECT content_type, data FROM inbox_media WHERE message_id = ?", message_id), write=False)
        return Picture(row[0], bytes(row[1])) if row else None

    # -- conversations ----------------------------------------------------------------------------
    async def conversations(self, agent_id: int, now: float, status: str | None, assignee: int | str | None,
                            before: int | None, limit: int) -> list[dict[str, Any]]:
        """Most recent activity first; `assignee` an agent id, "none" (unassigned) or None (anyone)."""
        where, params = ["c.last_message_id < ?"], [before or 2 ** 62]  # type: tuple[list[str], list[Any]]
        if status:
            where.append("c.status = ?")
            params.append(status)
        if assignee == "none":
            where.append("c.assignee_id IS NULL")
        elif assignee is not None:
            where.append("c.assignee_id = ?")
            params.append(assignee)
        rows = await self._tx(lambda cur: self.sql.execute(cur, (
            f"{_CONVERSATION_SELECT} WHERE {' AND '.join(where)} ORDER BY c.last_message_id DESC LIMIT ?"),
            (agent_id, *params, limit)).fetchall(), write=False)
        return [conversation_to_api(row, now) for row in rows]

    async def conversation(self, agent_id: int, app_id: str, openid: str, now: float) -> dict[str, Any] | None:
        row = await self._tx(lambda cur: self._one(
            cur, f"{_CONVERSATION_SELECT} WHERE c.app_id = ? AND c.openid = ?", agent_id, app_id, openid), write=False)
        return conversation_to_api(row, now) if row else None

    async def update_conversation(self, app_id: str, openid: str, now: float, *, status: str | None = None,
                                  assignee: int | bool | None = False) -> bool:
        """Set the status and/or the assignee (an agent id, None to unassign; False leaves it)."""

        def tx(cur: Any) -> bool:
            conversation = self._conversation_id(cur, app_id, openid)
            if conversation is None:
                return False
            if status is not None:
                self.sql.execute(cur, "UPDATE inbox_conversations SET status = ? WHERE id = ?", (status, conversation))
            if assignee is not False:
                self.sql.execute(cur, "UPDATE inbox_conversations SET assignee_id = ? WHERE id = ?",
                                 (assignee, conversation))
            self._event(cur, "conversation", now, conversation)
            return True

        return await self._tx(tx)

    def _read_all(self, cur: Any, agent_id: int | None, conversation: int) -> None:
        if agent_id is None:
            return
        count = self._one(cur, "SELECT in_count FROM inbox_conversations WHERE id = ?", conversation)[0]
        self.sql.execute(cur, self.sql.dialect.upsert("inbox_reads", ("agent_id", "conversation_id", "read_count"),
                                                      ("agent_id", "conversation_id")), (agent_id, conversation, count))

    async def mark_read(self, agent_id: int, app_id: str, openid: str, now: float) -> bool:
        def tx(cur: Any) -> bool:
            conversation = self._conversation_id(cur, app_id, openid)
            if conversation is None:
                return False
            self._read_all(cur, agent_id, conversation)
            self._event(cur, "read", now, conversation)
            return True

        return await self._tx(tx)

    # -- agents -----------------------------------------------------------------------------------
    async def agent_count(self) -> int:
        return int((await self._tx(lambda cur: self._one(cur, "SELECT COUNT(*) FROM inbox_agents"), write=False))[0])

    async def add_agent(self, name: str, password_hash: str, admin: bool, now: float) -> Agent | None:
        """None when the name is taken."""

        def tx(cur: Any) -> Agent | None:
            try:
                agent_id = self.sql.insert(cur, (
                    "INSERT INTO inbox_agents (name, password_hash, admin, created_at) VALUES (?, ?, ?, ?)"),
                    (name, password_hash, int(admin), now))
            except self.sql.dialect.integrity_errors:
                return None
            self._event(cur, "agents", now)
            return Agent(agent_id, name, admin)

        return await self._tx(tx)

    async def agents(self) -> list[Agent]:
        rows = await self._tx(lambda cur: self.sql.execute(
            cur, "SELECT id, name, admin, disabled FROM inbox_agents ORDER BY name").fetchall(), write=False)
        return [Agent(row[0], row[1], bool(row[2]), bool(row[3])) for row in rows]

    async def credentials(self, name: str) -> tuple[Agent, str] | None:
        """The agent of this name (enabled or not) and its password hash."""
        row = await self._tx(lambda cur: self._one(
            cur, "SELECT id, name, admin, disabled, password_hash FROM inbox_agents WHERE name = ?", name), write=False)
        return (Agent(row[0], row[1], bool(row[2]), bool(row[3])), row[4]) if row else None

    async def set_disabled(self, name: str, disabled: bool, now: float) -> str:
        """`done`, `unknown`, or `last_admin` (the last enabled admin cannot be disabled). Disabling
        ends the agent's sessions in the same commit."""

        def tx(cur: Any) -> str:
            row = self._one(cur, "SELECT id, admin FROM inbox_agents WHERE name = ?", name)
            if row is None:
                return "unknown"
            if disabled and row[1] and self._one(
                    cur, "SELECT COUNT(*) FROM inbox_agents WHERE admin = 1 AND disabled = 0 AND id <> ?", row[0])[0] == 0:
                return "last_admin"
            self.sql.execute(cur, "UPDATE inbox_agents SET disabled = ? WHERE id = ?", (int(disabled), row[0]))
            if disabled:
                self.sql.execute(cur, "DELETE FROM inbox_sessions WHERE agent_id = ?", (row[0],))
            self._event(cur, "agents", now)
            return "done"

        return await self._tx(tx)

    async def set_password(self, agent_id: int, password_hash: str, keep_session: str | None) -> None:
        """A new password ends every other session of the agent."""

        def tx(cur: Any) -> None:
            self.sql.execute(cur, "UPDATE inbox_agents SET password_hash = ? WHERE id = ?", (password_hash, agent_id))
            self.sql.execute(cur, "DELETE FROM inbox_sessions WHERE agent_id = ? AND token_hash <> ?",
                             (agent_id, keep_session or ""))

        await self._tx(tx)

    # -- sessions and set-up tokens ---------------------------------------------------------------
    async def add_session(self, token_hash: str, agent_id: int, now: float, expires_at: float) -> None:
        await self._tx(lambda cur: self.sql.execute(cur, (
            "INSERT INTO inbox_sessions (token_hash, agent_id, created_at, expires_at) VALUES (?, ?, ?, ?)"),
            (token_hash, agent_id, now, expires_at)))

    async def session_agent(self, token_hash: str, now: float) -> Agent | None:
        """The enabled agent of an unexpired session."""
        row = await self._tx(lambda cur: self._one(cur, (
            "SELECT a.id, a.name, a.admin FROM inbox_sessions s JOIN inbox_agents a ON a.id = s.agent_id"
            " WHERE s.token_hash = ? AND s.expires_at > ? AND a.disabled = 0"), token_hash, now), write=False)
        return Agent(row[0], row[1], bool(row[2])) if row else None

    async def end_session(self, token_hash: str) -> None:
        await self._tx(lambda cur: self.sql.execute(cur, "DELETE FROM inbox_sessions WHERE token_hash = ?",
                                                    (token_hash,)))

    async def add_setup_token(self, token_hash: str, expires_at: float) -> None:
        await self._tx(lambda cur: self.sql.execute(
            cur, "INSERT INTO inbox_setup_tokens (token_hash, expires_at) VALUES (?, ?)", (token_hash, expires_at)))

    async def first_admin(self, token_hash: str, name: str, password_hash: str, now: float) -> Agent | None:
        """Spend a set-up token on the first admin: None when the token is unknown or expired, or an
        agent exists already. Every set-up token dies with the first agent."""

        def tx(cur: Any) -> Agent | None:
            valid = self._one(cur, "SELECT 1 FROM inbox_setup_tokens WHERE token_hash = ? AND expires_at > ?",
                              token_hash, now)
            if not valid or self._one(cur, "SELECT COUNT(*) FROM inbox_agents")[0]:
                return None
            self.sql.execute(cur, "DELETE FROM inbox_setup_tokens")
            agent_id = self.sql.insert(cur, (
                "INSERT INTO inbox_agents (name, password_hash, admin, created_at) VALUES (?, ?, 1, ?)"),
                (name, password_hash, now))
            self._event(cur, "agents", now)
            return Agent(agent_id, name, True)

        return await self._tx(tx)

    # -- failed logins ----------------------------------------------------------------------------
    async def failures(self, key: str, since: float) -> tuple[int, float | None]:
        """How many failures `key` had since `since`, and when the oldest of them was."""
        row = await self._tx(lambda cur: self._one(
            cur, "SELECT COUNT(*), MIN(failed_at) FROM inbox_login_failures WHERE throttle_key = ? AND failed_at > ?",
            key, since), write=False)
        return row[0], row[1]

    async def add_failure(self, keys: list[str], now: float) -> None:
        def tx(cur: Any) -> None:
            for key in keys:
                self.sql.execute(cur, "INSERT INTO inbox_login_failures (throttle_key, failed_at) VALUES (?, ?)",
                                 (key, now))

        await self._tx(tx)

    async def clear_failures(self, key: str) -> None:
        await self._tx(lambda cur: self.sql.execute(cur, "DELETE FROM inbox_login_failures WHERE throttle_key = ?",
                                                    (key,)))

    # -- canned replies ---------------------------------------------------------------------------
    async def canned(self) -> list[dict[str, Any]]:
        rows = await self._tx(lambda cur: self.sql.execute(
            cur, "SELECT id, title, text FROM inbox_canned ORDER BY title, id").fetchall(), write=False)
        return [{"id": str(row[0]), "title": row[1], "text": row[2]} for row in rows]

    async def save_canned(self, canned_id: int | None, title: str, text: str, now: float) -> int | None:
        """Add (`canned_id` None) or change one; None when there is no such canned reply."""

        def tx(cur: Any) -> int | None:
            if canned_id is None:
                new_id = self.sql.insert(cur, "INSERT INTO inbox_canned (title, text, updated_at) VALUES (?, ?, ?)",
                                         (title, text, now))
            elif self._one(cur, "SELECT 1 FROM inbox_canned WHERE id = ?", canned_id):
                self.sql.execute(cur, "UPDATE inbox_canned SET title = ?, text = ?, updated_at = ? WHERE id = ?",
                                 (title, text, now, canned_id))
                new_id = canned_id
            else:
                return None
            self._event(cur, "canned", now)
            return new_id

        return await self._tx(tx)

    async def delete_canned(self, canned_id: int, now: float) -> bool:
        def tx(cur: Any) -> bool:
            if not self.sql.execute(cur, "DELETE FROM inbox_canned WHERE id = ?", (canned_id,)).rowcount:
                return False
            self._event(cur, "canned", now)
            return True

        return await self._tx(tx)

    # -- events -----------------------------------------------------------------------------------
    async def events_after(self, after: int, limit: int) -> list[dict[str, Any]]:
        """Changes after event `after`, oldest first; a message's own events carry the message."""

        def read(cur: Any) -> list[dict[str, Any]]:
            rows = self.sql.execute(cur, (
                f"SELECT e.id, e.kind, e.at, c.app_id, c.openid, {_MESSAGE_COLUMNS}"  # noqa: S608 - constant fragments; values are bound
                " FROM inbox_events e LEFT JOIN inbox_conversations c ON c.id = e.conversation_id"
                " LEFT JOIN inbox_messages m ON m.id = e.message_id"
                " LEFT JOIN inbox_conversations mc ON mc.id = m.conversation_id"
                " LEFT JOIN inbox_agents ma ON ma.id = m.agent_id"
                " WHERE e.id > ? ORDER BY e.id LIMIT ?"), (after, limit)).fetchall()
            events = []
            for row in rows:
                event: dict[str, Any] = {"id": row[0], "type": row[1], "at": row[2]}
                if row[3] is not None:
                    event["conversation_id"] = conversation_id(row[3], row[4])
                if row[5] is not None:
                    event["message"] = message_to_api(row[5:])
                events.append(event)
            return events

        return await self._tx(read, write=False)

    async def event_bounds(self) -> tuple[int, int]:
        """The oldest event id kept (0 when none is) and the newest ever given."""

        def read(cur: Any) -> tuple[int, int]:
            oldest = self._one(cur, "SELECT MIN(id) FROM inbox_events")[0]
            newest = self._one(cur, "SELECT last_id FROM inbox_event_seq WHERE id = 1")[0]
            return oldest or 0, newest

        return await self._tx(read, write=False)

    # -- upkeep -----------------------------------------------------------------------------------
    async def prune(self, messages_before: float, events_before: float, failures_before: float, now: float) -> int:
        """Forget messages (text and pictures) and conversations idle since `messages_before`, old events,
        old login failures, expired sessions and set-up tokens. Returns messages forgotten."""

        def tx(cur: Any) -> int:
            self.sql.execute(cur, "DELETE FROM inbox_media WHERE message_id IN"
                                  " (SELECT id FROM inbox_messages WHERE at < ?)", (messages_before,))
            gone = int(self.sql.execute(cur, "DELETE FROM inbox_messages WHERE at < ?", (messages_before,)).rowcount)
            self.sql.execute(cur, "DELETE FROM inbox_conversations WHERE NOT EXISTS"
                                  " (SELECT 1 FROM inbox_messages m WHERE m.conversation_id = inbox_conversations.id)")
            self.sql.execute(cur, "DELETE FROM inbox_reads WHERE NOT EXISTS"
                                  " (SELECT 1 FROM inbox_conversations c WHERE c.id = inbox_reads.conversation_id)")
            self.sql.execute(cur, "DELETE FROM inbox_events WHERE at < ?", (events_before,))
            self.sql.execute(cur, "DELETE FROM inbox_login_failures WHERE failed_at < ?", (failures_before,))
            self.sql.execute(cur, "DELETE FROM inbox_sessions WHERE expires_at < ?", (now,))
            self.sql.execute(cur, "DELETE FROM inbox_setup_tokens WHERE expires_at < ?", (now,))
            return gone

        return await self._tx(tx)
