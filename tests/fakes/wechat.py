"""A fake WeChat open API: send, media upload, typing, stable_token; errcodes on a script."""
from __future__ import annotations

import itertools
from typing import Any

from tests.fakes.server import Answer, FakeServer, Recorded

SEND = "/cgi-bin/message/custom/send"
UPLOAD = "/cgi-bin/media/upload"
TYPING = "/cgi-bin/message/custom/typing"
TOKEN = "/cgi-bin/stable_token"


class FakeWeChat(FakeServer):
    """Answers errcode 0 by default. With `require_token`, calls must carry the current access_token
    (else 40001), like the real API; without it, like Cloud Run's open-API service, they must carry none."""

    require_token = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self._tokens = (f"TOKEN{n}" for n in itertools.count(1))
        self.current_token = next(self._tokens)

    def expire_token(self) -> None:
        self.current_token = next(self._tokens)

    def answer(self, recorded: Recorded) -> Answer:
        if recorded.path == TOKEN:
            return 200, {"access_token": self.current_token, "expires_in": 7200}
        token = recorded.query.get("access_token")
        if self.require_token and token != self.current_token:
            return 200, {"errcode": 40001, "errmsg": "invalid credential"}
        if not self.require_token and token is not None:
            return 200, {"errcode": 40001, "errmsg": "unexpected token"}
        if recorded.path == UPLOAD:
            return 200, {"type": "image", "media_id": f"MEDIA{len(self.requests)}", "created_at": 1}
        return 200, {"errcode": 0, "errmsg": "ok"}

    def sends(self) -> list[dict[str, Any]]:
        """Bodies of the sends WeChat accepted (errcode 0)."""
        return [r.json() for r in self.received(SEND) if isinstance(r.answer, dict) and r.answer.get("errcode") == 0]

    def texts_to(self, openid: str) -> list[str]:
        return [s["text"]["content"] for s in self.sends() if s["touser"] == openid and s["msgtype"] == "text"]

