"""Black-box: WeChat push -> webhook desk -> signed reply -> WeChat send, over real HTTP."""
from __future__ import annotations

from tests.conftest import fresh_push
from tests.fakes.webhook import post_reply
from tests.fakes.wechat import SEND

CLOUD_RUN = {"x-wx-source": "other", "x-wx-appid": "wx8bd01c9a583478cf", "content-type": "application/json"}
OPENID = "oVneZ57wJnV-ObtCiGv26PRrOz2g"
CONVERSATION = f"wx8bd01c9a583478cf:{OPENID}"


def test_text_push_reaches_desk_and_reply_reaches_user(start_service, wechat, desk):
    service = start_service()
    answer = service.post("/", fresh_push("wechat/cloudrun-push.text.msgid64-odd.constructed.json"), CLOUD_RUN)
    assert (answer.status_code, answer.text) == (200, "success")

    event = desk.wait_for(lambda: desk.events("message"), what="the message at the desk")[0]
    assert event["id"] == "wx8bd01c9a583478cf:23637352235060881"  # exact 64-bit MsgId, no float rounding
    assert (event["conversation_id"], event["type"], event["text"]) == (CONVERSATION, "text", "回复文本")

    reply = post_reply(service, {"id": "r1", "conversation_id": event["conversation_id"], "type": "text",
                                     "text": "您好"})
    assert reply.status_code == 202, reply.text
    sent = wechat.wait_for(lambda: wechat.sends(), what="the send at WeChat")
    assert sent == [{"touser": OPENID, "msgtype": "text", "text": {"content": "您好"}}]
    assert "access_token" not in wechat.received(SEND)[0].query  # Cloud Run open-API service adds it


def test_duplicate_reply_id_sent_once(start_service, wechat, desk):
    service = start_service()
    service.post("/", fresh_push("wechat/cloudrun-push.text.msgid64.json"), CLOUD_RUN)
    desk.wait_for(lambda: desk.events("message"))
    body = {"id": "same", "conversation_id": CONVERSATION, "type": "text", "text": "once"}
    assert post_reply(service, body).status_code == 202
    second = post_reply(service, body)
    assert (second.status_code, second.json()) == (200, {"status": "duplicate"})
    wechat.wait_for(lambda: wechat.sends())
    post_reply(service, {**body, "id": "marker", "text": "after"})
    wechat.wait_for(lambda: len(wechat.sends()) == 2, what="the marker send")
    assert wechat.texts_to(OPENID) == ["once", "after"]
