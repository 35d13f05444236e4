"""Drive cloudfunctions/relay/index.py as the CloudBase runtime would: one instance, one invocation at
a time, events shaped like push, HTTP-access and timer events."""
from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import os
import threading
import time
from typing import Any

import httpx
import pytest

from tests.conftest import fixture_json
from tests.service import RELAY_VARIABLES, ROOT

INDEX = ROOT / "cloudfunctions" / "relay" / "index.py"
_names = itertools.count()
CONTEXT = {"time_limit_in_ms": 10000, "request_id": "test"}


def text_event(text: str, msg_id: str, openid: str = "ohl4L0Rnhq7vmmbT_DaNQa4ePaz0") -> dict[str, Any]:
    event = fixture_json("wechat/cloudfunction-event.text.json")  # MsgId is a string here
    return {**event, "Content": text, "MsgId": msg_id, "FromUserName": openid, "CreateTime": int(time.time())}


class FunctionInstance:
    def __init__(self, env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch) -> None:
        for key in RELAY_VARIABLES & set(os.environ):
            monkeypatch.delenv(key)
        for key, value in env.items():
            if value is not None:  # None: leave the variable unset
                monkeypatch.setenv(key, value)
        spec = importlib.util.spec_from_file_location(f"relay_function_{next(_names)}", INDEX)
        assert spec and spec.loader
        self.module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)  # a cold start: a fresh module, loop and relay
        self._lock = threading.Lock()

    def invoke(self, event: Any, context: dict[str, Any] | None = None) -> Any:
        with self._lock:
            return self.module.main_handler(event, {**CONTEXT, **(context or {})})

    def push(self, event: dict[str, Any], appid: str = "wxfunc000000001") -> Any:
        return self.invoke(event, {"environment": json.dumps({"WX_APPID": appid, "WX_OPENID": event.get("FromUserName", "")})})

    def tick(self) -> Any:
        return self.invoke({"Type": "Timer", "TriggerName": "drainOutbox", "Time": "2026-11-23T12:00:00Z", "Message": ""})

    def post(self, path: str = "/", body: bytes | str = b"", headers: dict[str, str] | None = None,
             params: dict[str, str] | None = None) -> httpx.Response:
        return self.http("POST", path, body, headers, params)

    def http(self, method: str, path: str, body: bytes | str = b"", headers: dict[str, str] | None = None,
             params: dict[str, str] | None = None) -> httpx.Response:
        """An HTTP-access event (binary-safe: the body travels base64-encoded); the integrated response back."""
        data = body.encode() if isinstance(body, str) else body
        answer = self.invoke({"path": path, "httpMethod": method, "headers": headers or {},
                              "queryStringParameters": params or {}, "body": base64.b64encode(data).decode(),
                              "isBase64Encoded": True,
                              "requestContext": {"requestId": "r", "envId": "env", "sourceIp": "198.51.100.7"}})
        content = base64.b64decode(answer["body"]) if answer["isBase64Encoded"] else answer["body"].encode()
        return httpx.Response(answer["statusCode"], headers=answer["headers"], content=content)

    def close(self) -> None:
        relay = self.module._relay
        if relay is not None:
            self.module._loop.run_until_complete(relay.close())
        self.module._loop.close()
