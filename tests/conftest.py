"""Fixtures: fakes on 127.0.0.1, the service as a child process, stores on SQLite and MariaDB."""
from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.c4c import FakeC4C
from tests.fakes.easemob import FakeEasemob
from tests.fakes.slack import FakeSlack
from tests.fakes.webhook import HOOK, FakeWebhookDesk
from tests.fakes.wechat import FakeWeChat
from tests.service import Service

FIXTURES = Path(__file__).parent / "fixtures"
MARIADB = os.environ.get("TEST_MARIADB_URL", "mysql://root:@127.0.0.1:3306")


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def fresh_push(name: str, **fields: Any) -> bytes:
    """A push fixture, byte for byte, with CreateTime moved to now (so the 48 h window is open) and
    `fields` replaced (JSON fixtures only)."""
    raw = fixture_bytes(name)
    if fields:
        data = json.loads(raw)
        data.update(fields)
        raw = json.dumps(data, ensure_ascii=False).encode()
    return re.sub(rb"(CreateTime\W+)(\d+)", lambda m: m.group(1) + str(int(time.time())).encode(), raw, count=1)


@pytest.fixture
def wechat() -> Iterator[FakeWeChat]:
    fake = FakeWeChat()
    yield fake
    fake.close()


@pytest.fixture
def c4c() -> Iterator[FakeC4C]:
    fake = FakeC4C()
    yield fake
    fake.close()


@pytest.fixture
def easemob() -> Iterator[FakeEasemob]:
    fake = FakeEasemob()
    yield fake
    fake.close()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


@pytest.fixture
def desk() -> Iterator[FakeWebhookDesk]:
    fake = FakeWebhookDesk()
    yield fake
    fake.close()


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh, empty MariaDB database for one test."""
    import pymysql

    name = f"relay_test_{uuid.uuid4().hex[:12]}"
    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    except pymysql.err.OperationalError as exc:
        pytest.fail(f"MariaDB is not reachable on 127.0.0.1:3306 ({exc}); .ci/run starts it")
    conn.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    yield f"{MARIADB}/{name}"
    conn.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
    conn.close()


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/relay.db"
    return request.getfixturevalue("mariadb_url")


@pytest.fixture
def start_service(tmp_path: Path, wechat: FakeWeChat, desk: FakeWebhookDesk) -> Iterator[Callable[..., Service]]:
    """start_service(**env) -> a ready Service on SQLite with the webhook desk and both fakes wired in."""
    started: list[Service] = []

    def start(wait: bool = True, **overrides: str) -> Service:
        env = {
            "DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
            "WX_API_BASE": wechat.url,
            "RELAY_DESK": "webhook",
            "WEBHOOK_URL": desk.url + HOOK,
            "WEBHOOK_SECRET": desk.secret,
            "RELAY_LEASE_SECONDS": "3",
            **overrides,
        }
        service = Service({k: v for k, v in env.items() if v is not None}, tmp_path / f"service{len(started)}.log")
        started.append(service)
        return service.start(wait)

    yield start
    for service in started:
        service.stop()
