"""docs/webhook-desk.md keeps its promises: every JSON sample in it is what the relay really sends (each
event, from the matching WeChat push) or really takes (each reply, accepted and sent to WeChat), and
every event and reply type has a sample."""
from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

from core.desks.webhook import REPLY_KINDS
from core.http import TIMEOUT
from tests.fakes.webhook import post_reply
from tests.fakes.wechat import SEND, TYPING, UPLOAD

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhook-desk.md"
SAMPLES = [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", DOC.read_text(), re.S)]
EVENTS = [s for s in SAMPLES if "event" in s]
REPLIES = [s for s in SAMPLES if "event" not in s and "type" in s]
PUSH_FIELDS = {"text": "Content", "pic_url": "PicUrl", "media_id": "MediaId", "title": "Title", "appid": "AppId",
               "pagepath": "PagePath", "thumb_url": "ThumbUrl", "thumb_media_id": "ThumbMediaId",
               "session_from": "SessionFrom"}
WECHAT_FIELDS = {"link": ("title", "description", "url", "thumb_url"),
                 "miniprogrampage": ("title", "pagepath", "thumb_media_id")}


def sample(event: str, kind: str | None = None) -> dict[str, Any]:
    [found] = [s for s in EVENTS if s["event"] == event and s.get("type") == kind]
    return found


def push_for(event: dict[str, Any], now: int) -> bytes:
    """The WeChat push (Cloud Run, JSON) that the relay turns into `event`, sent at `now`."""
    push: dict[str, Any] = {"ToUserName": "gh_919b00572d95", "FromUserName": event["openid"], "CreateTime": now}
    if event["event"] == "session":
        push.update(MsgType="event", Event="user_enter_tempsession")
    else:
        push.update(MsgType=event.get("msgtype") or event["type"], MsgId=event["id"].split(":")[1])
        if event["type"] == "other":
            push.update(MediaId="VOICE_MEDIA_ID", Format="amr")
    if event.get("type") != "other":  # an other's text is the relay's notice, not the user's words
        push.update({PUSH_FIELDS[name]: value for name, value in event.items() if name in PUSH_FIELDS})
    return json.dumps(push, ensure_ascii=False).encode()


def send_push(service: Any, event: dict[str, Any], now: int) -> None:
    headers = {"x-wx-source": "other", "x-wx-appid": event["app_id"], "content-type": "application/json"}
    answer = service.post("/", push_for(event, now), headers)
    assert (answer.status_code, answer.text) == (200, "success")


def test_the_doc_has_a_sample_of_every_event_and_reply_type():
    assert sorted((s["event"], s.get("type")) for s in EVENTS) == sorted([
        ("message", "text"), ("message", "image"), ("message", "miniprogrampage"), ("message", "other"),
        ("session", None), ("undeliverable", None)])
    assert sorted(s["type"] for s in REPLIES) == sorted(REPLY_KINDS)


def test_every_documented_event_is_what_the_relay_sends(start_service, desk):
    service, now = start_service(), int(time.time())
    documented = [s for s in EVENTS if s["event"] != "undeliverable"]
    for event in documented:
        send_push(service, event, now)
    desk.wait_for(lambda: len(desk.events()) == len(documented), what="one event per sample")
    for event, sent in zip(documented, desk.events(), strict=True):
        expected = {**event, "created_at": now, "id": event["id"].replace(str(event["created_at"]), str(now))}
        assert sent == expected


def test_every_documented_reply_is_accepted_and_sent_to_wechat(start_service, desk, wechat):
    service = start_service()
    send_push(service, sample("message", "text"), int(time.time()))
    desk.wait_for(lambda: desk.events("message"), what="the conversation at the desk")
    for reply in REPLIES:
        answer = post_reply(service, reply)
        assert (answer.status_code, answer.json()) == (202, {"status": "accepted"}), reply["type"]
    wechat.wait_for(lambda: len(wechat.sends()) == 4 and wechat.received(TYPING), what="every reply at WeChat")

    by_type = {s["msgtype"]: s for s in wechat.sends()}
    replies = {r["type"]: r for r in REPLIES}
    openid = sample("message", "text")["openid"]
    assert all(s["touser"] == openid for s in wechat.sends())
    assert by_type["text"]["text"] == {"content": replies["text"]["text"]}
    [upload] = wechat.received(UPLOAD)
    assert base64.b64decode(replies["image"]["image_base64"]) in upload.body
    assert by_type["image"]["image"] == {"media_id": upload.answer["media_id"]}
    for kind, fields in WECHAT_FIELDS.items():
        assert by_type[kind][kind] == {name: replies[kind][name] for name in fields}
    assert wechat.received(TYPING)[0].json() == {"touser": openid, "command": replies["typing"]["command"]}


def test_the_documented_undeliverable_event_is_what_the_desk_gets(start_service, desk, wechat):
    documented = sample("undeliverable")
    errmsg = documented["detail"].split(f"errcode {documented['errcode']} ")[1]
    wechat.script(SEND, (200, {"errcode": documented["errcode"], "errmsg": errmsg}))
    service = start_service()
    send_push(service, sample("message", "text"), int(time.time()))
    desk.wait_for(lambda: desk.events("message"), what="the conversation at the desk")
    [reply] = [r for r in REPLIES if r["id"] == documented["reply_id"]]
    assert post_reply(service, reply).status_code == 202
    assert desk.wait_for(lambda: desk.events("undeliverable"), what="the undeliverable event") == [documented]
    assert wechat.received(SEND, ok_only=False)[0].json()["text"]["content"] == reply["text"]


def test_the_documented_timeout_is_the_relays():
    assert (TIMEOUT.connect, TIMEOUT.read, TIMEOUT.write) == (5.0, 10.0, 10.0)
    assert "5 s to accept the connection and 10 s for the answer" in DOC.read_text()
