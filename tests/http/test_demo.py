"""`make run`'s preparation (core/demo.py): an admin to log in with on first use, the two URLs, and no
second password later."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx

from tests.service import RELAY_VARIABLES, ROOT


def prepare(database_url: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in RELAY_VARIABLES}
    env.update(DATABASE_URL=database_url, RELAY_DESK="inbox", RELAY_SANDBOX="on")
    done = subprocess.run([sys.executable, "-m", "core.demo", "8080"], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_first_run_makes_an_admin_whose_password_logs_in_and_later_runs_keep_it(start_service, tmp_path):
    database_url = f"sqlite:///{tmp_path}/demo.db"
    first = prepare(database_url)
    assert "http://127.0.0.1:8080/inbox" in first and "http://127.0.0.1:8080/sandbox" in first
    password = re.search(r"password \(shown once\): (\S+)", first).group(1)

    service = start_service(DATABASE_URL=database_url, RELAY_DESK="inbox", RELAY_SANDBOX="on")
    login = httpx.post(f"{service.url}/inbox/api/login", json={"name": "demo", "password": password}, timeout=10)
    assert login.status_code == 200 and login.json()["agent"] == {"name": "demo", "admin": True, "disabled": False}
    assert "setup_link" not in service.logs()  # an agent exists: no set-up link is offered

    second = prepare(database_url)
    assert "shown once" not in second and "made before" in second
