"""The C4C and Echat desks through main_handler: pushes as events, desk callbacks as HTTP-access events."""
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
