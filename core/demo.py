"""`make run`'s first step: make sure the demo has someone to log in as, and say where to go.

The demo is the relay with the sandbox on and the built-in inbox as desk, on SQLite (the Makefile sets
RELAY_SANDBOX=on, RELAY_DESK=inbox and DATABASE_URL for `make run`). While the store has no agent, an
admin `demo` is created with a random password printed this once; later runs keep it."""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from core import admin
from core.config import Settings
from core.desks.inbox.store import InboxStore
from core.errors import ConfigError
from core.store import open_store

DEMO_AGENT = "demo"


async def _agent_count(database_url: str) -> int:
    store = await open_store(database_url)
    try:
        return await InboxStore(store).agent_count()
    finally:
        await store.close()


def main(argv: Sequence[str]) -> int:
    """argv: the port the service is about to listen on."""
    port = argv[0] if argv else "8080"
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return admin.USAGE
    base = f"http://127.0.0.1:{port}"
    print(f"\nThe relay on {base}, state in {settings.database_url}.")
    if settings.sandbox:
        print("The sandbox is on: WeChat is played in the browser, nothing is sent to WeChat (never in production).")
    login = "(the inbox is not the desk: RELAY_DESK/RELAY_ROUTES)"
    if "inbox" in settings.desks_in_use():
        if asyncio.run(_agent_count(settings.database_url)) == 0:
            status = admin.main(["agent", "add", DEMO_AGENT, "--admin", "--generate"])  # prints the password
            if status != admin.OK:
                return status
            login = f"log in as {DEMO_AGENT} with the password above (shown this once)"
        else:
            login = ("log in with an agent made before (another: .venv/bin/python -m core.admin agent add NAME "
                     "--admin; or delete the store for a fresh demo)")
    print(f"  Agent inbox:  {base}/inbox    {login}")
    if settings.sandbox:
        print(f"  Sandbox:      {base}/sandbox  write as a WeChat user; the inbox's answers appear there")
    print()
    return admin.OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
