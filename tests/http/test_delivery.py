"""Delivery from the outbox: desk outages, WeChat errcodes, the 48 h window, tokens, reply types."""
from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import fresh_push
from tests.fakes.webhook import HOOK, post_reply
from tests.fakes.wechat import SEND, TOKEN, UPLOAD

HEADERS = {"x-wx-source": "other", "x-wx-appid": "wxapp0000000001"}
CONVERSATION = "wxapp0000000001:fromUser"


def push_text(service, text: str, msg_id: int, openid: str = "fromUser", created: int | None = None) -> None:
    body = fresh_push("wechat/push.text.json", Content=text, MsgId=msg_id, FromUserName=openid)
    if created is not None:
        body = json.dumps({**json.loads(body), "CreateTime": created}).encode()
    assert service.post("/", body, HEADERS).text == "success"


def open_conversation(start_service, desk, **env: str):
    """A running service with one user who wrote just now, seen by the desk."""
    service = start_service(**env)
    push_text(service, "hello", 1)
    desk.wait_for(lambda: desk.events("message"))
    return service


def reply(service, reply_id: str, text: str, **extra) -> httpx.Response:
    return post_reply(service, {"id": reply_id, "conversation_id": CONVERSATION, "type": "text", "text": text,
                                    **extra})


def test_desk_outage_delays_but_loses_nothing_and_keeps_order(start_service, desk):
    desk.script(HOOK, (503, {}), (503, {}))
    service = start_service()
    for n in range(5):
        push_text(service, f"m{n}", n + 1)
    desk.wait_for(lambda: len(desk.events("message")) == 5, timeout=20, what="five messages after the outage")
    assert [e["text"] for e in desk.events("message")] == [f"m{n}" for n in range(5)]
    assert len(desk.received(HOOK, ok_only=False)) == 7  # two refused attempts, then each once


def test_transient_wechat_error_retried_then_sent_once(start_service, wechat, desk):
    wechat.script(SEND, (200, {"errcode": -1, "errmsg": "system busy"}), (502, b"bad gateway"))
    service = open_conversation(start_service, desk)
    reply(service, "r1", "first")
    reply(service, "r2", "second")
    wechat.wait_for(lambda: len(wechat.sends()) == 2, timeout=20, what="both replies")
    assert wechat.texts_to("fromUser") == ["first", "second"]


def test_window_closed_by_wechat_reported_to_desk_and_not_retried(start_service, wechat, desk):
    wechat.script(SEND, (200, {"errcode": 45015, "errmsg": "response out of time limit"}))
    service = open_conversation(start_service, desk)
    reply(service, "late", "too late")
    notice = desk.wait_for(lambda: desk.events("undeliverable"))[0]
    assert (notice["reply_id"], notice["reason"], notice["errcode"]) == ("late", "window_closed", 45015)
    reply(service, "later", "still too late")  # known closed now: not even tried
    desk.wait_for(lambda: len(desk.events("undeliverable")) == 2)
    assert len(wechat.received(SEND, ok_only=False)) == 1
    push_text(service, "I'm back", 2)  # the user writes again: the window reopens
    reply(service, "welcome", "welcome back")
    assert wechat.wait_for(lambda: wechat.sends())[0]["text"]["content"] == "welcome back"


def test_quota_used_reported_to_desk(start_service, wechat, desk):
    wechat.script(SEND, (200, {"errcode": 45047, "errmsg": "out of response count limit"}))
    service = open_conversation(start_service, desk)
    reply(service, "sixth", "one too many")
    assert desk.wait_for(lambda: desk.events("undeliverable"))[0]["reason"] == "quota_exhausted"


def test_reply_outside_48_hours_not_sent_and_reported(start_service, wechat, desk):
    service = start_service()
    push_text(service, "old", 1, created=int(time.time()) - 49 * 3600)
    desk.wait_for(lambda: desk.events("message"))
    reply(service, "r", "hello?")
    notice = desk.wait_for(lambda: desk.events("undeliverable"))[0]
    assert (notice["reason"], notice["errcode"]) == ("window_closed", None)
    assert wechat.received(SEND, ok_only=False) == []


def test_configuration_error_dead_lettered_loudly(start_service, wechat, desk):
    wechat.script(SEND, (200, {"errcode": 48001, "errmsg": "api unauthorized"}))
    service = open_conversation(start_service, desk)
    reply(service, "r", "hi")
    wechat.wait_for(lambda: '"job dead-lettered"' in service.logs(), what="the dead letter log line")
    line = next(json.loads(row) for row in service.logs().splitlines() if '"job dead-lettered"' in row)
    assert line["level"] == "error" and line["errcode"] == 48001
    metrics = httpx.get(f"{service.url}/metrics").text
    assert 'relay_outbox_jobs{status="dead"} 1.0' in metrics
    assert 'relay_wechat_errors_total{errcode="48001"} 1.0' in metrics
    assert desk.events("undeliverable") == []


def test_stable_token_cached_shared_and_refreshed_once_on_40001(start_service, wechat, desk):
    wechat.require_token = True
    service = open_conversation(start_service, desk, WX_APPID="wxapp0000000001", WX_SECRET="s3cret")
    for n in range(4):
        reply(service, f"r{n}", f"t{n}")
    wechat.wait_for(lambda: len(wechat.sends()) == 4)
    assert len(wechat.received(TOKEN)) == 1
    assert wechat.received(TOKEN)[0].json() == {"grant_type": "client_credential", "appid": "wxapp0000000001",
                                                "secret": "s3cret", "force_refresh": False}
    wechat.expire_token()
    reply(service, "r4", "after expiry")
    wechat.wait_for(lambda: len(wechat.sends()) == 5)
    assert len(wechat.received(TOKEN)) == 2
    assert "s3cret" not in service.logs()


def test_image_link_card_and_typing_replies(start_service, wechat, desk):
    service = open_conversation(start_service, desk)
    picture = b"\xff\xd8\xff\xe0fake-jpeg"
    post_reply(service, {"id": "t", "conversation_id": CONVERSATION, "type": "typing", "command": "Typing"})
    post_reply(service, {"id": "i", "conversation_id": CONVERSATION, "type": "image",
                             "image_base64": base64.b64encode(picture).decode()})
    post_reply(service, {"id": "l", "conversation_id": CONVERSATION, "type": "link", "title": "Order",
                             "description": "Your order", "url": "https://example.com/o/1", "thumb_url": "https://example.com/t.png"})
    post_reply(service, {"id": "c", "conversation_id": CONVERSATION, "type": "miniprogrampage", "title": "Shop",
                             "pagepath": "pages/index/index", "thumb_media_id": "THUMB"})
    wechat.wait_for(lambda: len(wechat.sends()) == 3, what="image, link and card")
    upload = wechat.received(UPLOAD)[0]
    assert upload.query == {"type": "image"} and picture in upload.body and b'name="media"' in upload.body
    assert [s["msgtype"] for s in wechat.sends()] == ["image", "link", "miniprogrampage"]
    assert wechat.sends()[0]["image"]["media_id"].startswith("MEDIA")
    assert wechat.sends()[1]["link"]["url"] == "https://example.com/o/1"
    assert wechat.received("/cgi-bin/message/custom/typing")[0].json() == {"touser": "fromUser", "command": "Typing"}


def test_reply_refusals(start_service, desk):
    service = open_conversation(start_service, desk)
    unknown = post_reply(service, {"id": "x", "conversation_id": "wxapp0000000001:nobody", "text": "?"})
    assert unknown.status_code == 404
    forged = post_reply(service, {"id": "x", "conversation_id": CONVERSATION, "text": "?"}, secret="wrong")
    assert forged.status_code == 401
    stale = post_reply(service, {"id": "x", "conversation_id": CONVERSATION, "text": "?"},
                       timestamp=int(time.time()) - 301)
    assert stale.status_code == 401
    assert post_reply(service, b"not json").status_code == 400
    assert post_reply(service, {"id": "x", "conversation_id": CONVERSATION, "type": "image",
                                "image_base64": "not base64!"}).status_code == 400
    assert post_reply(service, {"id": "x", "conversation_id": CONVERSATION, "type": ["text"]}).status_code == 400
    assert post_reply(service, {"id": "x", "conversation_id": CONVERSATION, "text": "?"},
                      timestamp="9" * 5000).status_code == 401
    assert post_reply(service, {"conversation_id": CONVERSATION, "text": "no id"}).status_code == 400
    assert httpx.get(f"{service.url}/webhook/reply").status_code == 405
    assert httpx.post(f"{service.url}/c4c/mashup").status_code == 404  # desk not configured


def test_access_token_missing_right_after_start_is_retried(start_service, wechat, desk):
    """Cloud Run's open-API sidecar may not be ready while the container starts (41001)."""
    wechat.script(SEND, (200, {"errcode": 41001, "errmsg": "access_token missing"}))
    service = open_conversation(start_service, desk)
    reply(service, "r", "hi")
    assert wechat.wait_for(lambda: wechat.sends(), timeout=15)[0]["text"]["content"] == "hi"
    assert '"job dead-lettered"' not in service.logs()


def test_too_long_text_resent_shortened_once(start_service, wechat, desk):
    wechat.script(SEND, (200, {"errcode": 45002, "errmsg": "content size out of limit"}))
    service = open_conversation(start_service, desk)
    reply(service, "long", "长" * 3000)
    [sent] = wechat.wait_for(lambda: wechat.sends(), what="the shortened resend")
    content = sent["text"]["content"]
    assert content.endswith("…") and len(content.encode()) <= 2000 and content.startswith("长" * 600)
    assert desk.events("undeliverable") == []


def test_a_trickle_is_delivered_within_a_second_during_a_burst(start_service, desk):
    """A burst from 50 busy conversations (more than the worker runs at once) backs up behind a slow desk;
    another user who writes meanwhile is not queued behind that backlog: a job that starts an empty lane
    is claimed before the backlog's heads."""
    desk.delay = 0.3  # the backlog drains at about 50 messages a second (16 at once)
    service = start_service()
    burst = [fresh_push("wechat/push.text.json", FromUserName=f"oBurst{n % 50}", MsgId=10_000 + n, Content=f"b{n}")
             for n in range(600)]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda body: service.post("/", body, HEADERS).text, burst)).count("success") == 600
    started = time.monotonic()
    assert service.post("/", fresh_push("wechat/push.text.json", FromUserName="oTrickle", MsgId=1,
                                        Content="trickle"), HEADERS).text == "success"
    desk.wait_for(lambda: any(e["openid"] == "oTrickle" for e in desk.events("message")), timeout=5)
    waited = time.monotonic() - started
    backlog = 600 - len([e for e in desk.events("message") if e["openid"].startswith("oBurst")])
    assert waited < 1.0 and backlog > 100, (waited, backlog)
