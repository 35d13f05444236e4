"""The C4C, Echat and Easemob desks through main_handler: pushes as events, desk callbacks as HTTP-access events."""
from __future__ import annotations

import base64
import json
import re
from urllib.parse import urlencode

from tests.cloudfunctions.harness import text_event
from tests.fakes.echat import FakeEchat, sample

OPENID = "ohl4L0Rnhq7vmmbT_DaNQa4ePaz0"


def test_echat_handover_and_staff_push(function, wechat):
    fn = function(RELAY_DESK="echat", ECHAT_TOKEN="tok", ECHAT_CHAT_URL="https://chat.example.com/c.html?companyId=1")
    assert fn.push(text_event("转人工", "m-1")) == "success"
    [handover] = wechat.texts_to(OPENID)  # sent before the handler returned
    token = re.search(r"pushInfo=([^\"&]+)", handover).group(1)
    echat = FakeEchat("tok")
    body = sample("chatSend", msgId="1", msgType="2", contentType="21", content="云函数里的回复", pushInfo=token)
    answer = fn.post("/echat", body, {"content-type": "text/xml"}, echat.query("chatSend"))
    assert (answer.status_code, answer.text) == (200, "success")
    assert wechat.texts_to(OPENID)[-1] == "云函数里的回复"
    assert fn.post("/echat", body, {}, {**echat.query("chatSend"), "signature": "0" * 40}).status_code == 401


def test_c4c_activity_and_mashup_reply(function, wechat, c4c):
    fn = function(RELAY_DESK="c4c", C4C_BASE_URL=c4c.url, C4C_USER=c4c.user, C4C_PASSWORD=c4c.password,
                  C4C_CHANNEL_ID="WXOData", C4C_INBOUND_USER="m", C4C_INBOUND_PASSWORD="pw")
    assert fn.push(text_event("需要发票", "m-2")) == "success"
    [activity] = c4c.activities_for(OPENID)
    assert (activity["Text"], activity["SocialMediaMessageID"]) == ("需要发票", "m-2")
    reply = {"original_id": "m-2", "sma_id": "70001", "service_req_no": "", "private_ind": "FALSE", "text": "已开"}
    auth = {"authorization": "Basic " + base64.b64encode(b"m:pw").decode()}
    answer = fn.post("/c4c/mashup", urlencode({"content": json.dumps(reply)}), auth)
    assert (answer.status_code, answer.json()) == (200, {"status": "accepted"})
    assert wechat.texts_to(OPENID) == ["已开"]


def test_easemob_visitor_message_agent_reply_picture_and_refusals(function, wechat, easemob):
    fn = function(RELAY_DESK="easemob", **easemob.env())
    assert fn.push(text_event("人工客服", "m-3")) == "success"
    [message] = easemob.to_service()  # delivered before the handler returned
    assert (message["body"]["msg"], message["ext"]["weichat"]["visitor"]["openid"]) == ("人工客服", OPENID)
    user = message["from"]

    echo = fn.post("/easemob", json.dumps(easemob.callback_body(message)), {"content-type": "application/json"})
    assert (echo.status_code, echo.json()) == (200, {"status": "ignored"})
    reply = {"msg_id": "930001", "from": easemob.service_number, "to": user, "type": "txt", "body": {"msg": "您好"},
             "ext": {"weichat": {"agent": {"userNickname": "小王"}}}}
    answer = fn.post("/easemob", json.dumps(easemob.callback_body(reply)), {"content-type": "application/json"})
    assert (answer.status_code, answer.json()) == (200, {"status": "accepted"})
    assert wechat.texts_to(OPENID) == ["您好"]

    file_uuid = easemob.store_file(b"agent picture", "image/png")
    picture = {**reply, "msg_id": "930002", "type": "img",
               "body": {"filename": "image", "url": f"{easemob.url}{easemob.prefix}/chatfiles/{file_uuid}", "secret": ""}}
    assert fn.post("/easemob", json.dumps(easemob.callback_body(picture)), {}).json() == {"status": "accepted"}
    assert [s["msgtype"] for s in wechat.sends()] == ["text", "image"]

    wechat.script("/pic/u.png", (200, b"user picture", {"content-type": "image/png"}))
    image = {**text_event("", "m-4"), "MsgType": "image", "PicUrl": f"{wechat.url}/pic/u.png", "MediaId": "x"}
    assert fn.push(image) == "success"
    uploaded = easemob.to_service()[-1]
    assert uploaded["type"] == "img" and easemob.files[uploaded["body"]["url"].rsplit("/", 1)[1]][0] == b"user picture"

    forged = {**easemob.callback_body({**reply, "msg_id": "930003"}), "security": "0" * 32}
    assert fn.post("/easemob", json.dumps(forged), {}).status_code == 401
    assert len(wechat.sends()) == 2
