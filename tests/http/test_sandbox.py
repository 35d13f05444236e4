"""The sandbox over real HTTP: off by default; on, a sandbox user's writing goes through the real intake
to the desk, and the relay's sends land in the sandbox's chat instead of reaching WeChat."""
from __future__ import annotations

import base64

import httpx

from core.sandbox import APP_ID
from tests.fakes.webhook import post_reply

PICTURE = base64.b64decode(  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")


def chat(service, openid: str) -> dict:
    return httpx.get(f"{service.url}/sandbox/api/messages", params={"openid": openid}, timeout=5).json()


def write(service, **fields) -> httpx.Response:
    return httpx.post(f"{service.url}/sandbox/api/messages", json=fields, timeout=5)


def test_sandbox_is_404_unless_switched_on(start_service):
    service = start_service()
    for path in ("/sandbox", "/sandbox/", "/sandbox/sandbox.js", "/sandbox/api/messages?openid=u1"):
        assert httpx.get(service.url + path, timeout=5).status_code == 404, path
    assert write(service, openid="u1", type="text", text="hi").status_code == 404


def test_sandbox_page_and_its_files_are_served(start_service):
    service = start_service(RELAY_SANDBOX="on")
    page = httpx.get(f"{service.url}/sandbox", timeout=5)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/sandbox/sandbox.js" in page.text
    script = httpx.get(f"{service.url}/sandbox/sandbox.js", timeout=5)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    for path in ("/sandbox/../core/relay.py", "/sandbox/nothing.js", "/sandbox/.hidden"):
        assert httpx.get(service.url + path, timeout=5).status_code == 404, path
    assert "SANDBOX IS ON" in service.logs()


def test_user_writes_desk_gets_it_and_reply_lands_in_the_sandbox_chat(start_service, wechat, desk):
    service = start_service(RELAY_SANDBOX="on")
    assert write(service, openid="alice", type="session", session_from="order-42").status_code == 201
    assert write(service, openid="alice", type="text", text="我的订单在哪？").status_code == 201

    events = desk.wait_for(lambda: len(desk.events()) == 2 and desk.events(), what="both pushes at the desk")
    assert [e["event"] for e in events] == ["session", "message"]
    assert events[0]["session_from"] == "order-42"
    assert (events[1]["app_id"], events[1]["openid"], events[1]["text"]) == (APP_ID, "alice", "我的订单在哪？")

    assert post_reply(service, {"id": "r1", "conversation_id": events[1]["conversation_id"], "type": "text",
                                "text": "马上查"}).status_code == 202
    desk.wait_for(lambda: any(not m["from_user"] for m in chat(service, "alice")["messages"]), what="the reply")
    messages = chat(service, "alice")["messages"]
    assert [(m["from_user"], m["type"], m["text"]) for m in messages] == [
        (True, "session", "order-42"), (True, "text", "我的订单在哪？"), (False, "text", "马上查")]
    assert wechat.requests == []  # nothing left the process for WeChat
    assert chat(service, "bob")["messages"] == []


def test_pushes_use_the_configured_push_path(start_service, desk):
    service = start_service(RELAY_SANDBOX="on", WX_PUSH_PATH="/wx-push-0123456789abcdef")
    assert write(service, openid="frank", type="text", text="hi").status_code == 201
    assert desk.wait_for(lambda: desk.events("message"), what="the message at the desk")[0]["text"] == "hi"


def test_pictures_both_ways(start_service, desk):
    service = start_service(RELAY_SANDBOX="on")
    sent = write(service, openid="carol", type="image", image=base64.b64encode(PICTURE).decode(),
                 content_type="image/png")
    assert sent.status_code == 201
    event = desk.wait_for(lambda: desk.events("message"), what="the picture at the desk")[0]
    assert event["type"] == "image" and event["pic_url"].startswith("http://pictures.sandbox.invalid/")
    mine = httpx.get(f"{service.url}/sandbox/api/media/{sent.json()['media']}", timeout=5)
    assert (mine.content, mine.headers["content-type"]) == (PICTURE, "image/png")

    post_reply(service, {"id": "p1", "conversation_id": event["conversation_id"], "type": "image",
                         "image_base64": base64.b64encode(PICTURE).decode()})
    theirs = desk.wait_for(lambda: [m for m in chat(service, "carol")["messages"] if not m["from_user"]],
                           what="the agent's picture")[0]
    assert theirs["type"] == "image"
    assert httpx.get(f"{service.url}/sandbox/api/media/{theirs['media']}", timeout=5).content == PICTURE


def test_refusal_chosen_on_the_page_reaches_the_desk_as_undeliverable(start_service, desk):
    service = start_service(RELAY_SANDBOX="on")
    write(service, openid="dave", type="text", text="hello")
    event = desk.wait_for(lambda: desk.events("message"))[0]
    assert httpx.post(f"{service.url}/sandbox/api/answer", json={"openid": "dave", "answer": "window_closed"},
                      timeout=5).json() == {"answer": "window_closed"}
    post_reply(service, {"id": "late", "conversation_id": event["conversation_id"], "type": "text", "text": "hi"})
    notice = desk.wait_for(lambda: desk.events("undeliverable"), what="the undeliverable notice")[0]
    assert (notice["reply_id"], notice["reason"], notice["errcode"]) == ("late", "window_closed", 45015)
    assert [m["from_user"] for m in chat(service, "dave")["messages"]] == [True]


def test_bad_sandbox_requests_get_4xx_and_store_nothing(start_service, desk):
    service = start_service(RELAY_SANDBOX="on")
    cases = [
        ({"openid": "../x", "type": "text", "text": "hi"}, 400),
        ({"openid": "eve", "type": "text", "text": "   "}, 400),
        ({"openid": "eve", "type": "voice"}, 400),
        ({"openid": "eve", "type": "image", "image": "not base64!"}, 400),
    ]
    for body, status in cases:
        answer = write(service, **body)
        assert answer.status_code == status and "error" in answer.json(), body
    form = httpx.post(f"{service.url}/sandbox/api/messages", data={"openid": "eve", "type": "text", "text": "x"},
                      timeout=5)
    assert form.status_code == 400  # JSON only: a cross-site form post cannot inject pushes
    assert httpx.get(f"{service.url}/sandbox/api/answer", timeout=5).status_code == 405
    assert chat(service, "eve")["messages"] == []
    assert service.metric("relay_pushes_total", result="accepted") == 0
