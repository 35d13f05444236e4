"""The inbox's tables on SQLite and MariaDB: event ids in commit order, duplicates, pruning."""
from __future__ import annotations

import asyncio

import pytest

from core.desks.inbox.store import InboxStore, NewMessage, Picture
from core.models import ConversationTouch
from core.store import open_store

NOW = 1_800_000_000.0
DAY = 86400.0


@pytest.fixture
async def inbox(database_url):
    store = await open_store(database_url)
    yield InboxStore(store)
    await store.close()


async def user_writes(inbox: InboxStore, openid: str, ref: str, at: float, text: str = "hi") -> bool:
    await inbox.sql.accept(f"touch:{ref}", at, [], ConversationTouch("app", openid, None, None, at + 2 * DAY))
    return await inbox.record_in("app", openid, NewMessage("in", "text", text, ref=ref), at)


async def test_a_message_recorded_twice_is_kept_once(inbox):
    assert await user_writes(inbox, "u1", "app:1", NOW)
    assert not await user_writes(inbox, "u1", "app:1", NOW)
    assert [m["text"] for m in await inbox.messages("app", "u1", None, None, 50)] == ["hi"]


async def test_concurrent_changes_get_event_ids_in_commit_order(inbox):
    await asyncio.gather(*(user_writes(inbox, f"u{n % 3}", f"app:{n}", NOW, f"m{n}") for n in range(30)))
    events = await inbox.events_after(0, 100)
    assert [e["id"] for e in events] == list(range(1, 31))
    assert sorted(e["message"]["text"] for e in events) == sorted(f"m{n}" for n in range(30))
    assert await inbox.event_bounds() == (1, 30)


async def test_prune_forgets_old_messages_pictures_and_idle_conversations(inbox):
    await user_writes(inbox, "old", "app:1", NOW - 100 * DAY)
    await inbox.record_in("app", "old", NewMessage("in", "image", None, ref="app:2",
                                                   picture=Picture("image/png", b"png")), NOW - 95 * DAY)
    await user_writes(inbox, "mixed", "app:3", NOW - 91 * DAY, "gone")
    await user_writes(inbox, "mixed", "app:4", NOW - DAY, "kept")
    assert await inbox.prune(NOW - 90 * DAY, NOW - DAY / 2, NOW, NOW) == 3
    assert await inbox.messages("app", "old", None, None, 50) is None
    assert [m["text"] for m in await inbox.messages("app", "mixed", None, None, 50)] == ["kept"]
    assert await inbox.picture(2) is None
    assert [c["id"] for c in await inbox.conversations(1, NOW, None, None, None, 100)] == ["app:mixed"]
    assert await inbox.events_after(0, 100) == []  # events older than half a day are gone too


async def test_concurrent_writers_of_one_conversation_never_deadlock(inbox):
    await user_writes(inbox, "u", "app:0", NOW)
    agent = await inbox.add_agent("a", "scrypt$x", False, NOW)
    work = []
    for n in range(1, 101):
        work += [user_writes(inbox, "u", f"app:{n}", NOW + n),
                 inbox.update_conversation("app", "u", NOW + n, status="closed" if n % 2 else "open"),
                 inbox.mark_read(agent.id, "app", "u", NOW + n),
                 inbox.record_note("app", "u", NewMessage("note", "text", f"n{n}", agent.id), NOW + n)]
    await asyncio.gather(*work)
    assert len(await inbox.messages("app", "u", None, None, 500)) == 201
    ids = [e["id"] for e in await inbox.events_after(0, 1000)]
    assert ids == list(range(1, len(ids) + 1))
