"""The cloud function as the CloudBase runtime would run it, against the same fakes as the service."""
from __future__ import annotations

import pytest

from tests.cloudfunctions.harness import FunctionInstance
from tests.fakes.webhook import HOOK

APPID = "wxfunc000000001"


@pytest.fixture
def function(tmp_path, wechat, desk, monkeypatch):
    wechat.require_token = True  # a function has no open-API sidecar: it uses stable_token
    instances = []

    def start(**overrides: str | None) -> FunctionInstance:
        env = {"DATABASE_URL": f"sqlite:///{tmp_path}/relay.db", "WX_API_BASE": wechat.url, "WX_APPID": APPID,
               "WX_SECRET": "fn-secret", "RELAY_DESK": "webhook", "WEBHOOK_URL": desk.url + HOOK,
               "WEBHOOK_SECRET": desk.secret, "RELAY_LOG_LEVEL": "warning", **overrides}
        instances.append(FunctionInstance({k: v for k, v in env.items() if v is not None}, monkeypatch))
        return instances[-1]

    yield start
    for instance in instances:
        instance.close()
