"""The inbox end to end over real HTTP, on SQLite and MariaDB: a push appears through the API and on the
event stream, the agent's reply reaches the fake WeChat API and turns `sent`; refusals by WeChat turn it
`undeliverable`; pictures both ways; notes, assignment, status, canned replies, dead letters."""
from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.server import Answer, FakeServer, Recorded
from tests.fakes.wechat import SEND, UPLOAD, FakeWeChat
from tests.inbox import APPID, PASSWORD, Agent, EventStream, conversation_path, push, setup_token

OPENID = "oVneZ57wJnV-ObtCiGv26PRrOz2g"
CONVERSATION = f"{APPID}:{OPENID}"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class FakePictures(FakeServer):
    """WeChat's picture host: PicUrl links answer a PNG."""

    def answer(self, recorded: Recorded) -> Answer:
        return 200, PNG, {"content-type": "image/png"}


@pytest.fixture
def pictures() -> Iterator[FakePictures]:
    fake = FakePictures()
    yield fake
    fake.close()


@pytest.fixture
def inbox(start_service, database_url) -> Iterator[Any]:
    service = start_service(RELAY_DESK=None, DATABASE_URL=database_url)
    root = Agent(service.url)
    answer = root.http.post("/inbox/api/setup", json={"token": setup_token(service), "name": "root",
                                                      "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    root.csrf = answer.json()["csrf_token"]
    service.root = root
    yield service
    root.close()


def test_push_seen_live_replied_and_sent(inbox, wechat: FakeWeChat):
    root = inbox.root
    stream = EventStream(root)
    stream.wait_open()
    assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
    push(inbox)
    event = stream.wait_for(lambda e: e["type"] == "message")
    assert event["conversation_id"] == CONVERSATION
    assert (event["message"]["direction"], event["message"]["text"]) == ("in", "回复文本")
    [listed] = root.get("/inbox/api/conversations").json()["conversations"]
    assert (listed["id"], listed["status"], listed["unread"], listed["can_reply"]) == (CONVERSATION, "open", 1, True)
    assert listed["last_message"]["text"] == "回复文本" and listed["quota_left"] == 5

    answer = root.post(conversation_path(OPENID) + "/reply", {"text": "您好，请问有什么可以帮您？"})
    assert answer.status_code == 202
    reply_id = answer.json()["id"]
    wechat.wait_for(lambda: wechat.texts_to(OPENID), what="the reply at WeChat")
    assert wechat.texts_to(OPENID) == ["您好，请问有什么可以帮您？"]
    state = stream.wait_for(lambda e: e["type"] == "state")
    assert (state["message"]["id"], state["message"]["state"]) == (reply_id, "sent")
    messages = root.messages(OPENID)
    assert [(m["direction"], m["state"], m["agent"]) for m in messages] == [("in", None, None), ("out", "sent", "root")]
    conversation = root.get(conversation_path(OPENID)).json()["conversation"]
    assert (conversation["status"], conversation["unread"], conversation["quota_left"]) == ("waiting", 0, 4)
    stream.close()


def test_window_closed_by_wechat_marks_the_reply_undeliverable(inbox, wechat: FakeWeChat):
    wechat.script(SEND, (200, {"errcode": 45015, "errmsg": "response out of time limit"}))
    root = inbox.root
    push(inbox)
    root.wait_for(lambda: root.messages(OPENID), what="the message")
    reply_id = root.post(conversation_path(OPENID) + "/reply", {"text": "too late"}).json()["id"]
    refused = root.wait_for(lambda: [m for m in root.messages(OPENID) if m["state"] == "undeliverable"],
                            what="the reply marked undeliverable")
    assert (refused[0]["id"], refused[0]["reason"], refused[0]["detail"]) == (reply_id, "window_closed", "errcode 45015")
    conversation = root.get(conversation_path(OPENID)).json()["conversation"]
    assert (conversation["can_reply"], conversation["window_until"]) == (False, 0)
    assert wechat.sends() == []
    push(inbox, MsgId="23637352235060999")  # the user writes again: the window opens again
    root.wait_for(lambda: root.get(conversation_path(OPENID)).json()["conversation"]["can_reply"],
                  what="the window reopened")


def test_pictures_both_ways(inbox, wechat: FakeWeChat, pictures: FakePictures):
    root = inbox.root
    pictures.script("/pic.jpg", (503, b"busy"))  # a hiccup: the outbox fetches again
    push(inbox, "wechat/push.image.json", FromUserName=OPENID, PicUrl=pictures.url + "/pic.jpg")
    [message] = root.wait_for(lambda: root.messages(OPENID), timeout=15, what="the picture message")
    assert (message["type"], message["text"]) == ("image", None)
    assert len(pictures.received("/pic.jpg", ok_only=False)) == 2
    shown = root.get(message["image"])
    assert (shown.status_code, shown.headers["content-type"], shown.content) == (200, "image/png", PNG)
    assert Agent(inbox.url).get(message["image"]).status_code == 401

    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 100
    answer = root.post(conversation_path(OPENID) + "/reply", {"image_base64": base64.b64encode(jpeg).decode()})
    assert answer.status_code == 202
    wechat.wait_for(lambda: wechat.sends(), what="the picture at WeChat")
    assert wechat.received(UPLOAD)[0].body.count(jpeg) == 1
    assert wechat.sends()[0]["msgtype"] == "image"
    form = root.post(conversation_path(OPENID) + "/reply", files={"file": ("p.png", PNG, "image/png")})
    assert form.status_code == 202
    wechat.wait_for(lambda: len(wechat.sends()) == 2, what="the uploaded form picture at WeChat")
    sent = root.wait_for(lambda: [m for m in root.messages(OPENID) if m["direction"] == "out" and m["state"] == "sent"]
                         if len([m for m in root.messages(OPENID) if m["state"] == "sent"]) == 2 else None)
    assert root.get(sent[1]["image"]).content == PNG
    assert root.post(conversation_path(OPENID) + "/reply", {"image_base64": base64.b64encode(b"<svg/>").decode()}) \
        .status_code == 400


def test_picture_link_gone_keeps_the_message_without_it(inbox, pictures: FakePictures):
    pictures.script("/gone.jpg", (404, b"expired"))
    push(inbox, "wechat/push.image.json", FromUserName=OPENID, PicUrl=pictures.url + "/gone.jpg")
    [message] = inbox.root.wait_for(lambda: inbox.root.messages(OPENID), what="the message")
    assert (message["type"], message["image"]) == ("image", None)


def test_note_assign_close_reopen_read(inbox, wechat: FakeWeChat):
    root = inbox.root
    assert root.post("/inbox/api/agents", {"name": "bob", "password": PASSWORD}).status_code == 201
    push(inbox)
    root.wait_for(lambda: root.messages(OPENID), what="the message")
    path = conversation_path(OPENID)
    assert root.post(path + "/note", {"text": "VIP customer"}).status_code == 201
    assert root.post(path + "/assign", {"agent": "bob"}).json()["conversation"]["assignee"] == "bob"
    bob = Agent(inbox.url)
    bob.login("bob")
    assert [c["id"] for c in bob.get("/inbox/api/conversations", assignee="me").json()["conversations"]] == [CONVERSATION]
    assert bob.get("/inbox/api/conversations", assignee="none").json()["conversations"] == []
    assert bob.get("/inbox/api/conversations").json()["conversations"][0]["unread"] == 1
    assert bob.post(path + "/read").json()["conversation"]["unread"] == 0
    assert root.get(path).json()["conversation"]["unread"] == 1  # unread is per agent
    assert bob.post(path + "/close").json()["conversation"]["status"] == "closed"
    assert bob.get("/inbox/api/conversations", status="open").json()["conversations"] == []
    assert bob.post(path + "/reopen").json()["conversation"]["status"] == "open"
    assert bob.post(path + "/assign", {"agent": None}).json()["conversation"]["assignee"] is None
    assert bob.post(path + "/close").status_code == 200
    push(inbox, MsgId="23637352235060999")  # the user writes again: open again
    bob.wait_for(lambda: bob.get(path).json()["conversation"]["status"] == "open", what="reopened by the user")
    assert [m["direction"] for m in bob.messages(OPENID)] == ["in", "note", "in"]
    assert wechat.sends() == []  # a note never reaches the user
    assert bob.post("/inbox/api/conversations/nobody%3Ax/note", {"text": "x"}).status_code == 404


def test_reply_client_id_sends_once(inbox, wechat: FakeWeChat):
    root = inbox.root
    push(inbox)
    root.wait_for(lambda: root.messages(OPENID), what="the message")
    first = root.post(conversation_path(OPENID) + "/reply", {"text": "once", "client_id": "c-1"})
    again = root.post(conversation_path(OPENID) + "/reply", {"text": "once", "client_id": "c-1"})
    assert (first.status_code, again.status_code, again.json()) == (202, 200, first.json())
    root.post(conversation_path(OPENID) + "/reply", {"text": "marker"})
    wechat.wait_for(lambda: len(wechat.sends()) == 2, what="the marker")
    assert wechat.texts_to(OPENID) == ["once", "marker"]


def test_messages_page_backwards_and_events_poll(inbox):
    root = inbox.root
    first = root.get("/inbox/api/events", wait="0").json()
    assert first["events"] == []
    for n in range(5):
        push(inbox, Content=f"m{n}", MsgId=str(100 + n))
    root.wait_for(lambda: len(root.messages(OPENID)) == 5, what="five messages")
    newest = root.get(conversation_path(OPENID) + "/messages", limit="2").json()["messages"]
    assert [m["text"] for m in newest] == ["m3", "m4"]
    older = root.get(conversation_path(OPENID) + "/messages", limit="2", before=newest[0]["id"]).json()["messages"]
    assert [m["text"] for m in older] == ["m1", "m2"]
    polled = root.get("/inbox/api/events", after=str(first["last_id"]), wait="0").json()
    assert [e["message"]["text"] for e in polled["events"] if e["type"] == "message"] == [f"m{n}" for n in range(5)]
    assert root.get("/inbox/api/events", after=str(polled["last_id"]), wait="0").json()["events"] == []
    assert root.get("/inbox/api/events", after="99999", wait="0").json()["events"][0]["type"] == "reset"


def test_stream_resumes_from_last_event_id(inbox):
    root = inbox.root
    push(inbox, Content="before", MsgId="201")
    root.wait_for(lambda: root.messages(OPENID), what="the message")
    start = root.get("/inbox/api/events", wait="0").json()["last_id"]
    push(inbox, Content="while away", MsgId="202")
    root.wait_for(lambda: len(root.messages(OPENID)) == 2, what="the second message")
    stream = EventStream(root, {"last-event-id": str(start)})
    event = stream.wait_for(lambda e: e["type"] == "message")
    assert event["message"]["text"] == "while away" and f"id: {event['id']}" in stream.raw
    stream.close()


def test_stream_ends_when_the_agent_logs_out(inbox):
    bob_name = {"name": "bob", "password": PASSWORD}
    assert inbox.root.post("/inbox/api/agents", bob_name).status_code == 201
    bob = Agent(inbox.url)
    bob.login("bob")
    stream = EventStream(bob)
    stream.wait_open()
    assert inbox.root.post("/inbox/api/agents/bob/disable").status_code == 200
    assert stream.ended.wait(10), "the stream outlived the agent's session"
    push(inbox)
    assert all(e["type"] != "message" for e in stream.events)


def test_canned_replies_and_dead_letters(inbox, wechat: FakeWeChat):
    root = inbox.root
    made = root.post("/inbox/api/canned", {"title": "问候", "text": "您好！"})
    assert made.status_code == 201
    canned_id = made.json()["canned"]["id"]
    assert root.send("PUT", f"/inbox/api/canned/{canned_id}", {"title": "问候", "text": "您好！有什么可以帮您？"}) \
        .status_code == 200
    assert root.get("/inbox/api/canned").json()["canned"] == [{"id": canned_id, "title": "问候",
                                                                "text": "您好！有什么可以帮您？"}]
    assert root.send("DELETE", f"/inbox/api/canned/{canned_id}").status_code == 200
    assert root.get("/inbox/api/canned").json()["canned"] == []

    wechat.script(SEND, (200, {"errcode": 48001, "errmsg": "api unauthorized"}))  # configuration: a dead letter
    push(inbox)
    root.wait_for(lambda: root.messages(OPENID), what="the message")
    root.post(conversation_path(OPENID) + "/reply", {"text": "dead on arrival"})
    [dead] = root.wait_for(lambda: root.get("/inbox/api/dead").json()["dead"], what="the dead letter")
    assert (dead["kind"], "48001" in dead["error"]) == ("send", True)
    shown = root.get(f"/inbox/api/dead/{dead['id']}").json()["dead"]
    assert shown["payload"]["text"] == "dead on arrival"
    assert root.post(f"/inbox/api/dead/{dead['id']}/retry").json() == {"retried": 1}
    wechat.wait_for(lambda: wechat.texts_to(OPENID) == ["dead on arrival"], what="the retried send")
    assert root.get("/inbox/api/dead").json()["dead"] == []
    assert root.send("DELETE", f"/inbox/api/dead/{dead['id']}").status_code == 404
