"""Black-box, Easemob kefu desk: WeChat push → IM user registered once → message to the kefu service
number with the visitor in `ext.weichat.visitor` → agent's answer through the signed post-send callback →
send at the fake WeChat API; pictures both ways, tokens, refusals, outages and refused replies."""
from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from tests.conftest import fresh_push
from tests.fakes.easemob import FakeEasemob
from tests.fakes.wechat import SEND, UPLOAD

APP = "wx8bd01c9a583478cf"
OPENID = "oVneZ57wJnV-ObtCiGv26PRrOz2g"
CLOUD_RUN = {"x-wx-source": "other", "x-wx-appid": APP, "content-type": "application/json"}
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.fixture
def start_easemob(start_service, easemob):
    def start(**env: str):
        service = start_service(**{"RELAY_DESK": "easemob", **easemob.env(), **env})
        easemob.callback_url = f"{service.url}/easemob"
        return service
    return start


def enter_session(service, session_from: str, openid: str = OPENID) -> None:
    push = fresh_push("wechat/push.event.user_enter_tempsession.json", FromUserName=openid, SessionFrom=session_from)
    assert service.post("/", push, CLOUD_RUN).text == "success"


def write(service, text: str, msg_id: int, openid: str = OPENID) -> None:
    push = fresh_push("wechat/push.text.json", FromUserName=openid, Content=text, MsgId=msg_id)
    assert service.post("/", push, CLOUD_RUN).text == "success"


def visitor_of(easemob: FakeEasemob, openid: str = OPENID) -> str:
    """The IM user the relay made for `openid`, read from the messages it sent (black-box)."""
    def find() -> str | None:
        for message in easemob.to_service():
            if message["ext"]["weichat"]["visitor"]["openid"] == openid:
                return message["from"]
        return None
    return easemob.wait_for(find, what=f"a message from the visitor of {openid}")


def texts_at_kefu(easemob: FakeEasemob, count: int, openid: str = OPENID) -> list[str]:
    user = visitor_of(easemob, openid)
    return easemob.wait_for(lambda: (lambda t: t if len(t) >= count else None)(easemob.texts_from(user)),
                            what=f"{count} texts at kefu")


def wait_metric(service, fake, value: float, name: str, **labels: str) -> None:
    fake.wait_for(lambda: service.metric(name, **labels) >= value, what=f"{name}{labels} >= {value}")


def test_first_contact_registers_once_and_messages_carry_the_visitor(start_easemob, easemob, wechat):
    service = start_easemob(EASEMOB_QUEUES="vip-:VIP客服,:售前")
    enter_session(service, "vip-order-1001")
    write(service, "我的订单在哪？", 6001)
    write(service, "在吗", 6002)
    card = fresh_push("wechat/push.miniprogrampage.json", FromUserName=OPENID, MsgId=6003, Title="商品 A",
                      PagePath="pages/goods?id=7")
    assert service.post("/", card, CLOUD_RUN).text == "success"
    texts = texts_at_kefu(easemob, 3)
    assert texts[:2] == ["我的订单在哪？", "在吗"]
    assert texts[2].startswith("[小程序卡片] 商品 A") and "pages/goods?id=7" in texts[2]

    [registration] = easemob.registrations()
    user = registration.json()[0]["username"]
    assert user == visitor_of(easemob) and user.islower() and len(user) <= 64 and OPENID not in user
    first = easemob.to_service()[0]
    visitor = first["ext"]["weichat"]["visitor"]
    assert (visitor["openid"], visitor["mp"], visitor["source"], visitor["msgId"]) == (OPENID, APP, "weixin", "6001")
    assert visitor["userNickname"] and first["ext"]["weichat"]["queueName"] == "VIP客服"
    assert (first["to"], first["type"]) == (easemob.service_number, "txt")

    # Easemob called every one of those back (the visitor's own words): acknowledged, never sent to WeChat
    easemob.wait_for(lambda: len(easemob.callbacks) == 3, what="three echoes")
    assert [answer.json() for _, answer in easemob.callbacks] == [{"status": "ignored"}] * 3
    assert wechat.sends() == []


def test_queue_from_the_catch_all_entry_and_nickname_from_a_json_session_from(start_easemob, easemob):
    service = start_easemob(EASEMOB_QUEUES="vip-:VIP客服,:售前")
    enter_session(service, json.dumps({"nickName": "小明", "from": "home"}, ensure_ascii=False))
    write(service, "hello", 6101)
    texts_at_kefu(easemob, 1)
    weichat = easemob.to_service()[0]["ext"]["weichat"]
    assert (weichat["queueName"], weichat["visitor"]["userNickname"]) == ("售前", "小明")


def test_agent_replies_reach_the_user_once_and_in_order(start_easemob, easemob, wechat):
    service = start_easemob()
    write(service, "hi", 6201)
    user = visitor_of(easemob)
    first = easemob.agent_says(user, "您好，我是客服小王")
    assert easemob.callbacks[-1][1].json() == {"status": "accepted"}
    long_text = "请按以下步骤操作。" * 300  # 8 100 bytes: five WeChat texts
    easemob.agent_says(user, long_text)
    easemob.agent_says(user, "还有问题吗？")
    texts = wechat.wait_for(lambda: (lambda t: t if t and t[-1] == "还有问题吗？" else None)(wechat.texts_to(OPENID)),
                            what="the third reply")
    assert texts[0] == "您好，我是客服小王" and "".join(texts[1:-1]) == long_text

    again = easemob.post_callback(easemob.callback_body(first))  # the same message called back again
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert wechat.texts_to(OPENID).count("您好，我是客服小王") == 1


def test_a_picture_each_way(start_easemob, easemob, wechat):
    service = start_easemob()
    wechat.script("/pic/1.png", (200, PNG, {"content-type": "image/png"}))
    push = fresh_push("wechat/push.image.json", FromUserName=OPENID, MsgId=6301, PicUrl=f"{wechat.url}/pic/1.png")
    assert service.post("/", push, CLOUD_RUN).text == "success"
    image = easemob.wait_for(lambda: [m for m in easemob.to_service() if m["type"] == "img"], what="the img")[0]
    file_uuid = image["body"]["url"].rsplit("/", 1)[1]
    assert image["body"]["url"] == f"{easemob.url}{easemob.prefix}/chatfiles/{file_uuid}"
    assert easemob.files[file_uuid][:2] == (PNG, "image/png")

    picture = b"\x89PNG agent picture bytes"
    easemob.agent_sends_image(image["from"], picture)
    sent = wechat.wait_for(lambda: [s for s in wechat.sends() if s["msgtype"] == "image"], what="the image send")[0]
    [upload] = wechat.received(UPLOAD)
    assert picture in upload.body and sent["image"]["media_id"].startswith("MEDIA")
    download = next(r for r in easemob.requests if r.method == "GET")
    assert download.headers["authorization"].startswith("Bearer ")  # from the app's own host, with the token

    expired = f"https://a1-vip.easemob.com{easemob.prefix}/chatfiles/5fd74830-0000-4000-822a-81ea50bb049d"
    easemob.agent_sends(image["from"], "img", {"filename": "image", "url": expired, "secret": ""})
    wechat.wait_for(lambda: wechat.texts_to(OPENID) == ["[客服发送了一张图片，图片已无法获取]"], what="the notice")


def test_openids_that_differ_only_in_case_are_two_visitors(start_easemob, easemob, wechat):
    service = start_easemob()
    lower = OPENID.lower()
    write(service, "upper", 6401)
    write(service, "lower", 6402, openid=lower)
    upper_user, lower_user = visitor_of(easemob), visitor_of(easemob, lower)
    assert upper_user != lower_user and len(easemob.users) == 2
    easemob.agent_says(lower_user, "to the lower-case openid")
    easemob.agent_says(upper_user, "to the mixed-case openid")
    wechat.wait_for(lambda: len(wechat.sends()) == 2, what="two replies")
    assert wechat.texts_to(OPENID) == ["to the mixed-case openid"]
    assert wechat.texts_to(lower) == ["to the lower-case openid"]


def test_one_token_for_concurrent_callers_and_one_new_token_on_401(start_easemob, easemob):
    easemob.token_delay = 0.5  # every delivery below asks while the first fetch is under way
    service = start_easemob()
    users = [f"oUser{n}-CaseMatters" for n in range(4)]
    for n, openid in enumerate(users):
        write(service, f"hello {n}", 6500 + n, openid=openid)
    easemob.wait_for(lambda: len(easemob.to_service()) == 4, what="four messages")
    assert len(easemob.token_requests()) == 1

    easemob.token_delay = 0.0
    easemob.expire_tokens()
    write(service, "after expiry", 6510, openid=users[0])
    easemob.wait_for(lambda: len(easemob.to_service()) == 5, what="the fifth message")
    assert len(easemob.token_requests()) == 2 and len(easemob.refused_with(401)) == 1


def test_a_token_is_renewed_shortly_before_it_expires(start_easemob, easemob):
    easemob.expires_in = 2
    service = start_easemob()
    write(service, "one", 6601)
    texts_at_kefu(easemob, 1)
    expiry = max(easemob.tokens.values())
    easemob.wait_for(lambda: time.monotonic() > expiry, what="the token's expiry")
    write(service, "two", 6602)
    texts_at_kefu(easemob, 2)
    assert len(easemob.token_requests()) == 2 and easemob.refused_with(401) == []


def test_a_token_endpoint_that_fails_is_asked_again_only_after_a_pause(start_easemob, easemob):
    service = start_easemob(EASEMOB_CLIENT_SECRET="wrong")
    for n in range(3):
        write(service, f"waiting {n}", 6701 + n, openid=f"oWait{n}")
    wait_metric(service, easemob, 3, "relay_deliveries_total", kind="deliver", result="retry")
    asked = len(easemob.token_requests())
    assert 1 <= asked <= 2  # three deliveries failed, during one pause: not one fetch each
    assert service.metric("relay_outbox_jobs", status="dead") == 0


@pytest.mark.parametrize("how", ["forged", "wrong-secret", "stale", "seconds", "unsigned"])
def test_callbacks_not_signed_by_easemob_now_are_refused(start_easemob, easemob, wechat, how):
    service = start_easemob()
    write(service, "hi", 6801)
    user = visitor_of(easemob)
    message = {"msg_id": "900001", "from": easemob.service_number, "to": user, "type": "txt",
               "body": {"msg": "not from kefu"}, "ext": {}}
    body = {
        "forged": lambda: {**easemob.callback_body(message), "security": "0" * 32},
        "wrong-secret": lambda: easemob.callback_body(message, secret="guess"),
        "stale": lambda: easemob.callback_body(message, timestamp=int(time.time() * 1000) - 600_000),
        "seconds": lambda: easemob.callback_body(message, timestamp=int(time.time())),
        "unsigned": lambda: {k: v for k, v in easemob.callback_body(message).items() if k != "security"},
    }[how]()
    answer = httpx.post(f"{service.url}/easemob", json=body)
    assert answer.status_code == 401 and answer.json()["error"]
    easemob.agent_says(user, "marker")
    wechat.wait_for(lambda: "marker" in wechat.texts_to(OPENID), what="the marker")
    assert wechat.texts_to(OPENID) == ["marker"]


def test_a_signature_serves_one_request(start_easemob, easemob, wechat):
    service = start_easemob()
    write(service, "hi", 6901)
    user = visitor_of(easemob)
    genuine = easemob.callback_body({"msg_id": "910001", "from": easemob.service_number, "to": user, "type": "txt",
                                     "body": {"msg": "真的客服"}, "ext": {}})
    url = f"{service.url}/easemob"
    assert httpx.post(url, json=genuine).json() == {"status": "accepted"}
    assert httpx.post(url, json=genuine).json() == {"status": "duplicate"}  # Easemob's retry
    altered = {**genuine, "msg_id": "910002", "payload": {"bodies": [{"type": "txt", "msg": "假冒"}], "ext": {}}}
    refused = httpx.post(url, json=altered)
    assert refused.status_code == 401 and "replay" in refused.json()["error"]
    easemob.agent_says(user, "之后")
    wechat.wait_for(lambda: "之后" in wechat.texts_to(OPENID), what="the next reply")
    assert wechat.texts_to(OPENID) == ["真的客服", "之后"]


def test_other_users_groups_commands_and_controls_are_acknowledged_and_ignored(start_easemob, easemob, wechat):
    service = start_easemob()
    write(service, "hi", 7001)
    user = visitor_of(easemob)
    service_number = easemob.service_number
    others = [
        {"from": service_number, "to": "webim-visitor-ab12cd", "type": "txt", "body": {"msg": "web visitor"}, "ext": {}},
        {"from": "someone", "to": service_number, "type": "txt", "body": {"msg": "another user"}, "ext": {}},
        {"from": service_number, "to": user, "type": "cmd", "body": {"action": "TransferEvent"}, "ext": {}},
        {"from": service_number, "to": user, "type": "txt", "body": {"msg": "请评价"},
         "ext": {"weichat": {"ctrlType": "inviteEnquiry", "ctrlArgs": {"inviteId": 1}}}},
    ]
    for n, message in enumerate(others):
        answer = easemob.post_callback(easemob.callback_body({**message, "msg_id": f"92000{n}"}))
        assert (answer.status_code, answer.json()) == (200, {"status": "ignored"})
    group = {**easemob.callback_body({"msg_id": "920009", "from": service_number, "to": user, "type": "txt",
                                      "body": {"msg": "group"}, "ext": {}}), "chat_type": "groupchat"}
    group["group_id"] = "169000021545"
    assert easemob.post_callback(group).json() == {"status": "ignored"}
    easemob.agent_says(user, "marker")
    wechat.wait_for(lambda: "marker" in wechat.texts_to(OPENID), what="the marker")
    assert wechat.texts_to(OPENID) == ["marker"]


def test_other_message_kinds_from_agents_arrive_as_notices(start_easemob, easemob, wechat):
    service = start_easemob()
    write(service, "hi", 7101)
    user = visitor_of(easemob)
    easemob.agent_sends(user, "audio", {"filename": "audio", "length": 4, "url": "https://x/chatfiles/a"})
    easemob.agent_sends(user, "loc", {"lat": "39.9", "lng": "116.3", "addr": "北京市海淀区"})
    texts = wechat.wait_for(lambda: (lambda t: t if len(t) == 2 else None)(wechat.texts_to(OPENID)), what="2 notices")
    assert "语音" in texts[0] and texts[1] == "[位置] 北京市海淀区"


@pytest.mark.parametrize("status", [503, 429])
def test_easemob_failing_delays_delivery_but_loses_nothing_and_keeps_order(start_easemob, easemob, status):
    service = start_easemob()
    write(service, "first contact", 7201)
    texts_at_kefu(easemob, 1)
    easemob.down = status
    for n, text in enumerate(["第一", "第二", "第三"]):
        write(service, text, 7202 + n)
    easemob.wait_for(lambda: len(easemob.refused_with(status)) >= 2, what="failed attempts")
    easemob.down = None
    assert texts_at_kefu(easemob, 4) == ["first contact", "第一", "第二", "第三"]


def test_easemob_unreachable_then_back_after_a_restart(start_easemob, easemob, tmp_path):
    service = start_easemob(EASEMOB_BASE_URL="http://127.0.0.1:9")  # nothing listens there
    for n, text in enumerate(["一", "二", "三"]):
        write(service, text, 7301 + n)
    wait_metric(service, easemob, 1, "relay_deliveries_total", kind="deliver", result="retry")
    service.stop()
    start_easemob()  # the same database, Easemob reachable again
    assert texts_at_kefu(easemob, 3) == ["一", "二", "三"]


def test_a_retried_delivery_sends_only_what_is_missing(start_easemob, easemob):
    service = start_easemob()
    write(service, "first contact", 7401)
    texts_at_kefu(easemob, 1)
    easemob.send_outcomes.extend([None, 503])  # of three pieces, the second fails once
    long_text = "长" * 2500  # 7 500 bytes: three IM messages
    write(service, long_text, 7402)
    texts = texts_at_kefu(easemob, 4)
    assert len(easemob.refused_with(503)) == 1
    assert texts[0] == "first contact" and "".join(texts[1:]) == long_text and len(texts) == 4


def test_a_reply_wechat_refuses_is_noted_in_the_kefu_conversation(start_easemob, easemob, wechat):
    service = start_easemob()
    write(service, "hi", 7501)
    user = visitor_of(easemob)
    wechat.script(SEND, (200, {"errcode": 45015, "errmsg": "response out of time limit"}))
    easemob.agent_says(user, "too late")
    note = easemob.wait_for(lambda: [m for m in easemob.to_service() if "relay_notice" in m["ext"]], what="the note")
    [note] = note
    assert note["from"] == user and note["type"] == "txt"
    assert note["body"]["msg"].startswith("【转发服务提示，非访客发言】") and "too late" in note["body"]["msg"]
    assert note["ext"]["relay_notice"]["reason"] == "window_closed"
    wait_metric(service, easemob, 1, "relay_deliveries_total", kind="send", result="undeliverable")
    easemob.wait_for(lambda: len(easemob.callbacks) >= 3, what="the note's echo")  # hi, the reply, the note
    assert wechat.texts_to(OPENID) == [] and "reply not delivered to the user" in service.logs()


def test_a_reply_for_a_visitor_nobody_linked_is_kept(start_easemob, easemob, wechat):
    service = start_easemob()
    write(service, "hi", 7601)
    visitor_of(easemob)
    stranger = "wx" + "a" * 26  # looks like one of the relay's ids, but no user has it
    easemob.agent_says(stranger, "for nobody")
    wait_metric(service, easemob, 1, "relay_outbox_jobs", status="dead")
    assert "not one of this relay's visitors" in service.logs()
    assert wechat.sends() == []
