"""`python -m core.admin` as an operator runs it: a subprocess against a SQLite file."""
from __future__ import annotations

import asyncio
import json

from core.desks.inbox import passwords
from core.desks.inbox.store import InboxStore
from core.store import open_store
from tests.inbox import PASSWORD, admin_tool

NOW = 1_800_000_000.0


def _in_store(url: str, work):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        store = await open_store(url)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def test_agents_added_listed_disabled(tmp_path):
    url = f"sqlite:///{tmp_path}/relay.db"
    added = admin_tool(url, "agent", "add", "alice", "--admin", stdin=PASSWORD + "\n")
    assert (added.returncode, added.stdout) == (0, "added admin alice\n")
    assert PASSWORD not in added.stdout + added.stderr
    generated = admin_tool(url, "agent", "add", "bob", "--generate")
    assert generated.returncode == 0
    password = generated.stdout.split("password (shown once): ")[1].strip()
    assert len(password) == 20
    assert admin_tool(url, "agent", "add", "bob", stdin=PASSWORD + "\n").returncode == 1  # the name is taken
    short = admin_tool(url, "agent", "add", "carol", stdin="short\n")
    assert short.returncode == 1 and "10 to 256" in short.stdout
    assert admin_tool(url, "agent", "list").stdout == "alice\tadmin\nbob\n"
    stored = _in_store(url, lambda store: InboxStore(store).credentials("bob"))
    assert stored[1].startswith("scrypt$16384$8$1$") and passwords.verify_password(password, stored[1])
    assert admin_tool(url, "agent", "disable", "alice").returncode == 1  # the last enabled admin
    assert admin_tool(url, "agent", "disable", "bob").stdout == "disabled bob\n"
    assert admin_tool(url, "agent", "list").stdout == "alice\tadmin\nbob\tdisabled\n"
    assert admin_tool(url, "agent", "disable", "nobody").returncode == 1


def test_dead_letters_listed_shown_retried_dropped(tmp_path):
    url = f"sqlite:///{tmp_path}/relay.db"

    async def kill_two(store):  # type: ignore[no-untyped-def]
        await store.enqueue([("in:a", "deliver", json.dumps({"text": "first"})),
                             ("in:b", "deliver", json.dumps({"text": "second"}))], NOW)
        for job in await store.claim("w", NOW, 10, 30):
            await store.give_up(job, "w", "HTTP 400: refused", NOW)

    _in_store(url, kill_two)
    listed = admin_tool(url, "dead", "list").stdout.splitlines()
    assert [line.split("\t")[:3] for line in listed] == [["2", "deliver", "in:b"], ["1", "deliver", "in:a"]]
    assert "HTTP 400: refused" in listed[0]
    shown = json.loads(admin_tool(url, "dead", "show", "1").stdout)
    assert (shown["payload"], shown["error"]) == ({"text": "first"}, "HTTP 400: refused")
    assert admin_tool(url, "dead", "show", "9").returncode == 1
    assert admin_tool(url, "outbox").stdout == "pending 0\ndead 2\n"
    assert admin_tool(url, "dead", "retry", "1").stdout == "1 dead letter back in the outbox\n"
    assert admin_tool(url, "outbox").stdout == "pending 1\ndead 1\n"
    assert admin_tool(url, "dead", "drop", "2").returncode == 0
    assert admin_tool(url, "dead", "drop", "2").returncode == 1
    assert admin_tool(url, "dead", "list").stdout == "no dead letters\n"
    assert admin_tool(url, "dead", "retry", "--all").stdout == "0 dead letters back in the outbox\n"
    [job] = _in_store(url, lambda store: store.claim("w", NOW + 10, 10, 30))
    assert json.loads(job.payload) == {"text": "first"}


def test_bad_configuration_and_usage_exit_2(tmp_path):
    assert admin_tool("postgres://x", "outbox").returncode == 2
    assert admin_tool(f"sqlite:///{tmp_path}/r.db", "dead", "retry").returncode == 2
    assert admin_tool(f"sqlite:///{tmp_path}/r.db", "agent", "add", " spaced ").returncode == 2
