"""The operators' tool: `python -m core.admin ...` (docs/inbox.md). Inbox agents, dead letters of every
desk, outbox depth; it reads the service's own configuration (DATABASE_URL or MYSQL_*)."""
from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from core.config import Settings
from core.desks.inbox import passwords
from core.desks.inbox.api import agent_name
from core.desks.inbox.store import InboxStore
from core.errors import BadRequest, ConfigError
from core.store import SqlStore, open_store

OK, FAILED, USAGE = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m core.admin", description=__doc__)
    groups = top.add_subparsers(dest="group", required=True)
    agent = groups.add_parser("agent", help="inbox agents").add_subparsers(dest="action", required=True)
    add = agent.add_parser("add", help="add an agent; password from stdin, or generated and printed once")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="may manage agents, canned replies, dead letters")
    add.add_argument("--generate", action="store_true", help="generate the password and print it once")
    agent.add_parser("list", help="list agents")
    for action in ("disable", "enable"):
        agent.add_parser(action, help=f"{action} an agent").add_argument("name")
    dead = groups.add_parser("dead", help="dead letters of every desk").add_subparsers(dest="action", required=True)
    dead.add_parser("list", help="list dead letters, newest first")
    dead.add_parser("show", help="one dead letter with its payload").add_argument("id", type=int)
    retry = dead.add_parser("retry", help="put dead letters back in their lane")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", type=int)
    which.add_argument("--all", action="store_true")
    dead.add_parser("drop", help="delete a dead letter").add_argument("id", type=int)
    groups.add_parser("outbox", help="pending and dead job counts")
    return top


class Admin:
    def __init__(self, store: SqlStore, out: TextIO, stdin: TextIO) -> None:
        self.store, self.inbox, self.out, self.stdin = store, InboxStore(store), out, stdin

    def say(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out)

    async def run(self, args: argparse.Namespace) -> int:
        handler = getattr(self, f"{args.group}_{args.action}" if getattr(args, "action", None) else args.group)
        return int(await handler(args))

    # -- agents -----------------------------------------------------------------------------------
    async def agent_add(self, args: argparse.Namespace) -> int:
        name = agent_name(args.name)
        password = "" if args.generate else self._read_password()
        generated = not password
        password = password or passwords.generate_password()
        problem = passwords.password_problem(password)
        if problem:
            self.say(f"refused: {problem}")
            return FAILED
        agent = await self.inbox.add_agent(name, passwords.hash_password(password), args.admin, time.time())
        if agent is None:
            self.say(f"refused: an agent named {name!r} exists")
            return FAILED
        self.say(f"added {'admin' if args.admin else 'agent'} {name}")
        if generated:
            self.say(f"password (shown once): {password}")
        return OK

    def _read_password(self) -> str:
        """One line of stdin; at a terminal, asked for without echo. Empty: generate one."""
        if self.stdin.isatty():
            return getpass.getpass("password (empty: generate one): ")
        return self.stdin.readline().rstrip("\r\n")

    async def agent_list(self, args: argparse.Namespace) -> int:
        for agent in await self.inbox.agents():
            flags = [flag for flag, on in (("admin", agent.admin), ("disabled", agent.disabled)) if on]
            self.say(f"{agent.name}\t{' '.join(flags)}".rstrip())
        return OK

    async def _set_disabled(self, name: str, disabled: bool) -> int:
        outcome = await self.inbox.set_disabled(name, disabled, time.time())
        messages = {"done": f"{'disabled' if disabled else 'enabled'} {name}",
                    "unknown": f"no agent named {name!r}",
                    "last_admin": "refused: the last enabled admin cannot be disabled"}
        self.say(messages[outcome])
        return OK if outcome == "done" else FAILED

    async def agent_disable(self, args: argparse.Namespace) -> int:
        return await self._set_disabled(args.name, True)

    async def agent_enable(self, args: argparse.Namespace) -> int:
        return await self._set_disabled(args.name, False)

    # -- dead letters and the outbox --------------------------------------------------------------
    async def dead_list(self, args: argparse.Namespace) -> int:
        found = await self.store.dead_letters(limit=1000)
        for dead in found:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(dead.first_at))
            self.say(f"{dead.id}\t{dead.kind}\t{dead.lane}\t{dead.attempts} attempts\tsince {when} UTC\t"
                     f"{(dead.error or '').splitlines()[0][:200] if dead.error else ''}")
        if not found:
            self.say("no dead letters")
        return OK

    async def dead_show(self, args: argparse.Namespace) -> int:
        found = await self.store.dead_letter(args.id)
        if found is None:
            self.say(f"no dead letter {args.id}")
            return FAILED
        dead, payload = found
        shown: dict[str, Any] = {"id": dead.id, "kind": dead.kind, "lane": dead.lane, "attempts": dead.attempts,
                                 "first_at": dead.first_at, "error": dead.error}
        try:
            shown["payload"] = json.loads(payload)
        except ValueError:
            shown["payload"] = payload
        self.say(json.dumps(shown, ensure_ascii=False, indent=2))
        return OK

    async def dead_retry(self, args: argparse.Namespace) -> int:
        count = await self.store.retry_dead(None if args.all else args.id, time.time())
        self.say(f"{count} dead letter{'s' if count != 1 else ''} back in the outbox")
        return OK if count or args.all else FAILED

    async def dead_drop(self, args: argparse.Namespace) -> int:
        dropped = await self.store.drop_dead(args.id)
        self.say(f"dropped {args.id}" if dropped else f"no dead letter {args.id}")
        return OK if dropped else FAILED

    async def outbox(self, args: argparse.Namespace) -> int:
        depth = await self.store.depth()
        self.say(f"pending {depth['pending']}", f"dead {depth['dead']}")
        return OK


async def _main(args: argparse.Namespace, settings: Settings) -> int:
    store = await open_store(settings.database_url)
    try:
        return await Admin(store, sys.stdout, sys.stdin).run(args)
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return asyncio.run(_main(args, settings))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return USAGE
    except BadRequest as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        return USAGE


if __name__ == "__main__":
    sys.exit(main())
