"""One driver per desk: how the contract suite wires the service to the desk's fake, speaks as the desk's
agents, scripts the desk's failures and reads what the desk received. A new desk joins the contract
by adding a driver here and to DRIVERS."""
from __future__ import annotations

import abc
import base64
import json
import re
import time
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx

from tests.conftest import fixture_json
from tests.fakes.c4c import ODATA, FakeC4C
from tests.fakes.easemob import FakeEasemob
from tests.fakes.echat import FakeEchat, sample
from tests.fakes.server import FakeServer
from tests.fakes.slack import CHANNEL, POST, SIGNING_SECRET, TOKEN, FakeSlack, Posted
from tests.fakes.webhook import HOOK, FakeWebhookDesk, post_reply
from tests.fakes.wechat import FakeWeChat
from tests.inbox import PASSWORD, Agent, conversation_path, setup_token
from tests.service import Service

APP = "wx8bd01c9a583478cf"


class DeskDriver(abc.ABC):
    name: ClassVar[str]
    takes_user_messages: ClassVar[bool] = True  # False: the desk has no way to take a user's words
    remote: ClassVar[bool] = True  # False: the desk lives in the relay itself, with nothing to fail or be down
    fake: FakeServer | None = None  # the desk's fake, when it has one

    def __init__(self, wechat: FakeWeChat) -> None:
        self.wechat = wechat

    def close(self) -> None:
        if self.fake is not None:
            self.fake.close()

    @abc.abstractmethod
    def env(self) -> dict[str, str]:
        """The variables that point the desk at its fake."""

    def attach(self, service: Service) -> None:  # noqa: B027 - an optional hook
        """The service is up (a desk whose agents work through the service itself logs in here)."""

    def replies_accepted(self, service: Service, openid: str) -> float:
        """How many agents' replies to `openid` the relay took from the desk."""
        return service.metric("relay_desk_callbacks_total", desk=self.name, result="accepted")

    # -- user → desk --------------------------------------------------------------------------------
    def seen(self, openid: str) -> list[str]:
        """The user's texts as the desk holds them, in order, each as often as the desk has it."""
        raise NotImplementedError

    def fail_next_deliveries(self, times: int) -> None:
        """The desk refuses the next `times` deliveries with a transient error (HTTP 503)."""
        raise NotImplementedError

    def set_down(self, down: bool) -> None:
        """An outage: every request to the desk fails (HTTP 503) until set back."""
        assert self.fake is not None
        self.fake.down = 503 if down else None

    # -- desk → user --------------------------------------------------------------------------------
    @abc.abstractmethod
    def reply(self, service: Service, openid: str, text: str, reply_id: str, *, forged: bool = False,
              stale: bool = False) -> httpx.Response:
        """Post an agent's reply to the user as the desk would (signed; the same id is the desk's retry)."""

    @abc.abstractmethod
    def refusal_reported(self, service: Service, openid: str, text: str) -> bool:
        """True once the desk shows (or, where it cannot, the relay keeps) that `text` did not reach the user."""


class WebhookDriver(DeskDriver):
    name = "webhook"

    def __init__(self, wechat: FakeWeChat) -> None:
        super().__init__(wechat)
        self.fake = self.desk = FakeWebhookDesk()

    def env(self) -> dict[str, str]:
        return {"WEBHOOK_URL": self.desk.url + HOOK, "WEBHOOK_SECRET": self.desk.secret}

    def seen(self, openid: str) -> list[str]:
        """What a receiver that keeps each event id once (as docs/webhook-desk.md asks) has stored."""
        kept = {e["id"]: e["text"] for e in self.desk.events("message") if e["openid"] == openid and "text" in e}
        return list(kept.values())

    def fail_next_deliveries(self, times: int) -> None:
        self.desk.script(HOOK, *[(503, {"error": "busy"})] * times)

    def reply(self, service: Service, openid: str, text: str, reply_id: str, *, forged: bool = False,
              stale: bool = False) -> httpx.Response:
        body = {"id": reply_id, "conversation_id": f"{APP}:{openid}", "type": "text", "text": text}
        return post_reply(service, body, secret="forged" if forged else self.desk.secret,
                          timestamp=int(time.time()) - 3600 if stale else None)

    def refusal_reported(self, service: Service, openid: str, text: str) -> bool:
        return any(e["openid"] == openid for e in self.desk.events("undeliverable"))


class C4CDriver(DeskDriver):
    name = "c4c"
    INBOUND = ("c4c-mashup", "mashup-pw")

    def __init__(self, wechat: FakeWeChat) -> None:
        super().__init__(wechat)
        self.fake = self.c4c = FakeC4C()

    def env(self) -> dict[str, str]:
        return {"C4C_BASE_URL": self.c4c.url, "C4C_USER": self.c4c.user, "C4C_PASSWORD": self.c4c.password,
                "C4C_CHANNEL_ID": "WXOData", "C4C_INBOUND_USER": self.INBOUND[0],
                "C4C_INBOUND_PASSWORD": self.INBOUND[1]}

    def seen(self, openid: str) -> list[str]:
        return [a["Text"] for a in self.c4c.activities_for(openid) if a.get("InitiatorCode") != "1"]

    def fail_next_deliveries(self, times: int) -> None:
        self.c4c.script("POST " + ODATA + "SocialMediaActivityCollection", *[(503, {"error": "busy"})] * times)

    def reply(self, service: Service, openid: str, text: str, reply_id: str, *, forged: bool = False,
              stale: bool = False) -> httpx.Response:
        """The Mashup answering the user's latest activity. C4C's Basic auth has no timestamp: a stale
        request is a forged one there."""
        latest = [a for a in self.c4c.activities_for(openid) if a.get("InitiatorCode") != "1"][-1]
        reply = {**fixture_json("c4c/mashup-reply.decoded.json"), "original_id": latest["SocialMediaMessageID"],
                 "service_req_no": "", "sma_id": reply_id, "text": text, "private_ind": "FALSE"}
        user, password = self.INBOUND[0], "forged" if forged or stale else self.INBOUND[1]
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return service.post("/c4c/mashup", urlencode({"content": json.dumps(reply, ensure_ascii=False)}),
                            {"authorization": auth, "content-type": "application/x-www-form-urlencoded"})

    def refusal_reported(self, service: Service, openid: str, text: str) -> bool:
        return any("Not delivered" in a["Text"] and text in a["Text"] for a in self.c4c.activities_for(openid))


class EchatDriver(DeskDriver):
    """Echat takes no words from outside its own window: the user gets a hand-over link instead, so the
    user → desk promises are the hand-over's (tests/http/test_echat.py), not this suite's."""

    name = "echat"
    takes_user_messages = False
    TOKEN = "echat-token"

    def env(self) -> dict[str, str]:
        return {"ECHAT_TOKEN": self.TOKEN, "ECHAT_CHAT_URL": "https://chat.example.com/chat.html?companyId=1"}

    def reply(self, service: Service, openid: str, text: str, reply_id: str, *, forged: bool = False,
              stale: bool = False) -> httpx.Response:
        links = self.wechat.wait_for(lambda: [t for t in self.wechat.texts_to(openid) if "pushInfo=" in t],
                                     what="the hand-over link")
        token = re.search(r"pushInfo=([^\"&]+)", links[0]).group(1)  # type: ignore[union-attr]
        push = sample("chatSend", msgId=reply_id, uid=f"uid-{openid}", msgType="2", contentType="21", content=text,
                      pushInfo=token)
        return FakeEchat(self.TOKEN).push(f"{service.url}/echat", "chatSend", push,
                                          signature="0" * 40 if forged else None,
                                          timestamp=int(time.time()) - 3600 if stale else None)

    def refusal_reported(self, service: Service, openid: str, text: str) -> bool:
        """Echat has no API to tell the agent: the relay keeps the reply as a dead letter."""
        return service.metric("relay_outbox_jobs", status="dead") >= 1


class EasemobDriver(DeskDriver):
    """Each user is an IM user of the fake app writing to the kefu service number; agents answer from
    the service number through the signed post-send callback (retried once on a non-200, as Easemob
    does). The fake does not echo the visitors' own messages here (tests/http/test_easemob.py does)."""

    name = "easemob"

    def __init__(self, wechat: FakeWeChat) -> None:
        super().__init__(wechat)
        self.fake = self.easemob = FakeEasemob()
        self.easemob.echo = False

    def env(self) -> dict[str, str]:
        return self.easemob.env()

    def _from(self, openid: str) -> list[dict[str, Any]]:
        return [m for m in self.easemob.to_service() if m["ext"]["weichat"]["visitor"]["openid"] == openid]

    def seen(self, openid: str) -> list[str]:
        return [m["body"]["msg"] for m in self._from(openid) if m["type"] == "txt" and "relay_notice" not in m["ext"]]

    def fail_next_deliveries(self, times: int) -> None:
        self.easemob.send_outcomes.extend([503] * times)

    def reply(self, service: Service, openid: str, text: str, reply_id: str, *, forged: bool = False,
              stale: bool = False) -> httpx.Response:
        self.easemob.callback_url = f"{service.url}/easemob"
        user = self.wechat.wait_for(lambda: self._from(openid), what="the visitor's IM user")[0]["from"]
        message = {"msg_id": reply_id, "from": self.easemob.service_number, "to": user, "type": "txt",
                   "body": {"msg": text}, "ext": {"weichat": {"agent": {"userNickname": "客服"}}}}
        timestamp = int(time.time() * 1000) - 3_600_000 if stale else None
        return self.easemob.post_callback(self.easemob.callback_body(
            message, timestamp=timestamp, secret="forged" if forged else None))

    def refusal_reported(self, service: Service, openid: str, text: str) -> bool:
        """A note from the visitor's IM user, marked as the relay's, in the kefu conversation."""
        return any("relay_notice" in m["ext"] and text in m["body"]["msg"] for m in self._from(openid))


class SlackDriver(DeskDriver):
    """Each user has a thread in the fake's channel; agents answer in it through signed Events API
    requests. A reply id stands for one Slack message (one ts): sending it again is Slack's retry."""

    name = "slack"

    def __init__(self, wechat: FakeWeChat) -> None:
        super().__init__(wechat)
        self.fake = self.slack = FakeSlack()
        self.messages: dict[str, str] = {}  # reply id -> the ts of the agent's message

    def env(self) -> dict[str, str]:
        return {"SLACK_API_BASE": f"{self.slack.url}/api", "SLACK_BOT_TOKEN": TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_CHANNEL": CHANNEL}

    def _posts(self, openid: str) -> list[Posted]:
        """Everything in the user's threads, oldest thread first."""
        return [p for root in self.slack.roots() if openid in root.text for p in self.slack.in_thread(root.ts)]

    def seen(self, openid: str) -> list[str]:
        """The user's messages: the posts that carry the relay's metadata (notes and warnings do not)."""
        return [p.text for p in self._posts(openid) if p.metadata]

    def fail_next_deliveries(self, times: int) -> None:
        self.slack.script(POST, *[(503, {"error": "busy"})] * times)

    def reply(self, service: Service, openid: str, text: str, reply_id: str, *, forged: bool = False,
              stale: bool = False) -> httpx.Response:
        root = self.wechat.wait_for(lambda: [r for r in self.slack.roots() if openid in r.text],
                                    what="the user's thread")[-1]
        ts = self.messages.setdefault(reply_id, self.slack.reply(root.ts, "")["ts"])
        body = self.slack.envelope(self.slack.reply(root.ts, text, ts=ts, event_ts=ts), f"Ev{reply_id}")
        forgery = {"x_slack_signature": "v0=" + "0" * 64} if forged else {}
        return self.slack.send(service, body, timestamp=int(time.time()) - 3600 if stale else None, **forgery)

    def refusal_reported(self, service: Service, openid: str, text: str) -> bool:
        return any("Not delivered" in p.text and text in p.text for p in self._posts(openid))




class InboxDriver(DeskDriver):
    """The built-in inbox: its agent is a logged-in browser session, and its replies are API calls with a
    `client_id` (the same id again is the page's retry). It lives in the relay's own store, so there is
    no remote desk to fail or be down."""

    name = "inbox"
    remote = False

    def env(self) -> dict[str, str]:
        return {}

    def attach(self, service: Service) -> None:
        self.agent = Agent(service.url)
        answer = self.agent.http.post("/inbox/api/setup", json={"token": setup_token(service), "name": "root",
                                                                "password": PASSWORD})
        assert answer.status_code == 201, answer.text
        self.agent.csrf = answer.json()["csrf_token"]

    def close(self) -> None:
        if hasattr(self, "agent"):
            self.agent.close()

    def seen(self, openid: str) -> list[str]:
        return [m["text"] for m in self.agent.messages(openid) if m["direction"] == "in"]

    def reply(self, service: Service, openid: str, text: str, reply_id: str, *, forged: bool = False,
              stale: bool = False) -> httpx.Response:
        """Forged: a made-up session cookie; stale: the cookie of a session that logged out."""
        agent = self.agent
        if forged or stale:
            agent = Agent(service.url)
            if stale:
                agent.login("root")
                assert agent.post("/inbox/api/logout").status_code == 200
            else:
                agent.http.cookies.set("inbox_session", "A" * 43, path="/inbox")
                agent.csrf = self.agent.csrf
        return agent.post(conversation_path(openid) + "/reply", {"text": text, "client_id": reply_id})

    def refusal_reported(self, service: Service, openid: str, text: str) -> bool:
        return any(m["text"] == text and m["state"] == "undeliverable" for m in self.agent.messages(openid))

    def replies_accepted(self, service: Service, openid: str) -> float:
        return sum(m["direction"] == "out" for m in self.agent.messages(openid))


DRIVERS: list[type[DeskDriver]] = [WebhookDriver, C4CDriver, EchatDriver, EasemobDriver, InboxDriver, SlackDriver]


def user_texts(wechat: FakeWeChat, openid: str, expected: set[str]) -> list[str]:
    """The texts WeChat delivered to `openid` among `expected` (a desk may send others, like a hand-over)."""
    return [t for t in wechat.texts_to(openid) if t in expected]
