"""Black-box, Echat desk: contact-button event → hand-over link at WeChat → signed staff push from a fake
Echat → the agent's words at WeChat, for the right user; and every way a push is refused or ignored."""
from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.conftest import fixture_bytes, fresh_push
from tests.fakes.echat import FakeEchat, sample

APP = "wx8bd01c9a583478cf"
OPENID = "oVneZ57wJnV-ObtCiGv26PRrOz2g"
OTHER = "oVneZ57wJnV-ObtCiGv26PRrOther"
CLOUD_RUN = {"x-wx-source": "other", "x-wx-appid": APP, "content-type": "application/json"}
TOKEN = "echat-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ECHAT_APPID = "echat-app-1"
CHAT_URL = "https://chat.example.com/visitor/mobile/chat.html?companyId=60"


@pytest.fixture
def start_echat(start_service):
    def start(**env: str):
        return start_service(**{"RELAY_DESK": "echat", "ECHAT_TOKEN": TOKEN, "ECHAT_CHAT_URL": CHAT_URL, **env})
    return start


def enter_session(service, openid: str = OPENID) -> None:
    answer = service.post("/", fresh_push("wechat/push.event.user_enter_tempsession.json", FromUserName=openid),
                          CLOUD_RUN)
    assert (answer.status_code, answer.text) == (200, "success")


def write(service, text: str, msg_id: int, openid: str = OPENID) -> None:
    answer = service.post("/", fresh_push("wechat/push.text.json", FromUserName=openid, Content=text,
                                          MsgId=msg_id), CLOUD_RUN)
    assert (answer.status_code, answer.text) == (200, "success")


def handover_token(wechat, openid: str = OPENID) -> str:
    """The pushInfo of the hand-over link WeChat delivered to `openid`."""
    texts = wechat.wait_for(lambda: [t for t in wechat.texts_to(openid) if "pushInfo=" in t],
                            what="the hand-over link")
    return re.search(r"pushInfo=([^\"&]+)", texts[0]).group(1)


def agent_says(text: str, token: str, msg_id: str = "9001", uid: str = "28474495", **fields: str) -> bytes:
    return sample("chatSend", msgId=msg_id, uid=uid, msgType="2", contentType="21", content=text, pushInfo=token,
                  **fields)


def wait_metric(service, wechat, value: float, name: str, **labels: str) -> None:
    wechat.wait_for(lambda: service.metric(name, **labels) >= value, what=f"{name}{labels} >= {value}")


def test_handover_link_then_agent_push_reaches_the_user(start_echat, wechat):
    service = start_echat()
    enter_session(service)
    token = handover_token(wechat)
    assert len(token) <= 255 and OPENID in token
    link_text = wechat.texts_to(OPENID)[0]
    assert f'<a href="{CHAT_URL}&pushInfo={token}">' in link_text

    echat = FakeEchat(TOKEN)
    answer = echat.push(f"{service.url}/echat", "chatSend", agent_says("您好，我是客服小王", token))
    assert (answer.status_code, answer.text) == (200, "success")
    wechat.wait_for(lambda: "您好，我是客服小王" in wechat.texts_to(OPENID), what="the agent's words")


def test_handover_sent_at_most_once_per_interval_and_quotes_the_user(start_echat, wechat):
    service = start_echat(ECHAT_HANDOVER_QUOTE="on")
    write(service, "我要退货", 7001)
    write(service, "还在吗", 7002)
    enter_session(service)
    wait_metric(service, wechat, 3, "relay_deliveries_total", kind="deliver", result="ok")
    wechat.wait_for(lambda: service.metric("relay_outbox_jobs", status="pending") == 0, what="an empty outbox")
    handovers = [t for t in wechat.texts_to(OPENID) if "pushInfo=" in t]
    assert len(handovers) == 1
    assert "我要退货" in handovers[0]


def test_quoted_words_never_push_the_link_out_of_the_message(start_echat, wechat):
    service = start_echat(ECHAT_HANDOVER_QUOTE="on", ECHAT_HANDOVER_EVERY="1")
    for n in range(3):
        write(service, f"第{n}段" + "很长的话" * 300, 7100 + n)  # 3.6 kB each
    token = handover_token(wechat)
    for text in wechat.texts_to(OPENID):
        assert len(text.encode()) <= 2000 and text.endswith("</a>") and token[:10] in text


def test_handover_as_link_card_or_mini_program_page(start_echat, wechat):
    service = start_echat(ECHAT_HANDOVER_THUMB_URL="https://cdn.example.com/kf.png")
    enter_session(service)
    card = wechat.wait_for(lambda: wechat.sends(), what="the link card")[0]
    assert card["msgtype"] == "link"
    assert card["link"]["thumb_url"] == "https://cdn.example.com/kf.png"
    assert card["link"]["url"].startswith(CHAT_URL + "&pushInfo=r1.")
    service.stop()

    service = start_echat(ECHAT_CHAT_PAGE="pages/echat/index", ECHAT_CHAT_URL=None)
    enter_session(service, OTHER)
    text = wechat.wait_for(lambda: wechat.texts_to(OTHER), what="the page link")[0]
    assert f'data-miniprogram-appid="{APP}"' in text
    assert re.search(r'data-miniprogram-path="pages/echat/index\?pushInfo=r1\.[^"]+"', text)


@pytest.mark.parametrize("sign_encrypt", [False, True], ids=["signs-3-values", "signs-encrypt-too"])
def test_cipher_mode(start_echat, wechat, sign_encrypt):
    service = start_echat(ECHAT_AES_KEY=AES_KEY, ECHAT_APPID=ECHAT_APPID)
    enter_session(service)
    token = handover_token(wechat)
    echat = FakeEchat(TOKEN, aes_key=AES_KEY, appid=ECHAT_APPID, sign_encrypt=sign_encrypt)
    answer = echat.push(f"{service.url}/echat", "chatSend", agent_says("密文模式的回复", token))
    assert (answer.status_code, answer.text) == (200, "success")
    wechat.wait_for(lambda: "密文模式的回复" in wechat.texts_to(OPENID), what="the decrypted reply")

    plaintext = FakeEchat(TOKEN).push(f"{service.url}/echat", "chatSend", agent_says("明文", token, msg_id="9002"))
    assert plaintext.status_code == 401
    foreign = FakeEchat(TOKEN, aes_key=AES_KEY, appid="someone-else").push(
        f"{service.url}/echat", "chatSend", agent_says("别的应用", token, msg_id="9003"))
    assert foreign.status_code == 400


def test_refusals_and_ignored_pushes_send_nothing(start_echat, wechat):
    service = start_echat()
    enter_session(service)
    enter_session(service, OTHER)  # a user the forgery below would reach if pushInfo were believed
    token = handover_token(wechat)
    url, echat = f"{service.url}/echat", FakeEchat(TOKEN)

    forged = echat.push(url, "chatSend", agent_says("forged", token, msg_id="1"), signature="0" * 40)
    stale = echat.push(url, "chatSend", agent_says("stale", token, msg_id="2"), timestamp=int(time.time()) - 3600)
    wrong_token = FakeEchat("not-the-token").push(url, "chatSend", agent_says("wrong", token, msg_id="3"))
    assert [r.status_code for r in (forged, stale, wrong_token)] == [401, 401, 401]
    assert all(r.json()["error"] for r in (forged, stale, wrong_token))

    other_user = token.replace(OPENID, OTHER)  # someone edits the link to read another user's replies
    answer = echat.push(url, "chatSend", agent_says("for someone else", other_user, msg_id="4", uid="visitor-x"))
    assert (answer.status_code, answer.text) == (200, "success")
    assert "pushInfo that is not ours" in service.logs()

    system_start = sample("chatSend", msgId="5", msgType="1", contentType="1", content="您好,请问有什么可以帮助到您?",
                          pushInfo=token)
    unknown_kind = httpx.post(url, params=echat.query("readEvent"), content=b"<xml><msgId>6</msgId></xml>")
    assert echat.push(url, "chatSend", system_start).text == "success"
    assert (unknown_kind.status_code, unknown_kind.text) == (200, "success")

    marker = echat.push(url, "chatSend", agent_says("marker", token, msg_id="7"))
    assert marker.text == "success"
    wechat.wait_for(lambda: "marker" in wechat.texts_to(OPENID), what="the marker")
    wait_metric(service, wechat, 1, "relay_outbox_jobs", status="dead")  # the other user's reply, kept
    texts = wechat.texts_to(OPENID) + wechat.texts_to(OTHER)
    assert not any(t in texts for t in ("forged", "stale", "wrong", "for someone else", "您好,请问有什么可以帮助到您?"))


def test_a_captured_signature_cannot_carry_another_body(start_echat, wechat):
    service = start_echat()
    enter_session(service)
    token = handover_token(wechat)
    echat, url = FakeEchat(TOKEN), f"{service.url}/echat"
    query = echat.query("chatSend")
    body = agent_says("真的客服", token, msg_id="31")
    assert httpx.post(url, params=query, content=body).text == "success"
    assert httpx.post(url, params=query, content=body).text == "success"  # Echat resending: a duplicate
    forged = httpx.post(url, params=query, content=agent_says("假冒的消息", token, msg_id="32"))
    assert forged.status_code == 401 and "replay" in forged.json()["error"]
    retyped = httpx.post(url, params={**query, "msgType": "msgSend"}, content=body)  # msgType is not signed
    assert retyped.status_code == 401
    echat.push(url, "chatSend", agent_says("之后", token, msg_id="33"))
    wechat.wait_for(lambda: "之后" in wechat.texts_to(OPENID), what="the next real push")
    assert wechat.texts_to(OPENID)[1:] == ["真的客服", "之后"]


def test_links_back_to_the_chat_name_the_user_found(start_echat, wechat):
    """An image pushed with no viewUrl links back to the chat window: as the Mini Program page when only
    ECHAT_CHAT_PAGE is set, and with a fresh token for a user found through myData."""
    service = start_echat(ECHAT_CHAT_PAGE="pages/echat/index", ECHAT_CHAT_URL=None)
    enter_session(service)
    token = handover_token(wechat)
    image = sample("chatSend", msgId="41", uid="u-9", msgType="2", contentType="22", content="", pushInfo="junk",
                   myData=token)
    assert FakeEchat(TOKEN).push(f"{service.url}/echat", "chatSend", image).text == "success"
    text = wechat.wait_for(lambda: [t for t in wechat.texts_to(OPENID) if t.startswith("客服发来了图片")],
                           what="the image notice")[0]
    assert f'data-miniprogram-appid="{APP}"' in text
    assert f'data-miniprogram-path="pages/echat/index?pushInfo={token}"' in text


def test_duplicate_msg_id_is_sent_once(start_echat, wechat):
    service = start_echat()
    enter_session(service)
    token = handover_token(wechat)
    echat = FakeEchat(TOKEN)
    for _ in range(3):
        assert echat.push(f"{service.url}/echat", "chatSend", agent_says("只说一次", token, msg_id="42")).text == "success"
    echat.push(f"{service.url}/echat", "chatSend", agent_says("之后", token, msg_id="43"))
    wechat.wait_for(lambda: "之后" in wechat.texts_to(OPENID), what="the later message")
    assert wechat.texts_to(OPENID)[1:] == ["只说一次", "之后"]


def test_uid_link_my_data_and_unknown_visitor(start_echat, wechat):
    """A push without pushInfo finds the user through a token in myData, or through the visitor uid a
    signed push linked earlier; a visitor nobody linked is acknowledged, logged and kept."""
    service = start_echat()
    enter_session(service)
    token = handover_token(wechat)
    url, echat = f"{service.url}/echat", FakeEchat(TOKEN)
    echat.push(url, "chatSend", agent_says("第一条", token, msg_id="11", uid="u-1"))
    reply = sample("msgReply", msgId="12", uid="u-1", replyContent="留言的回复")  # no pushInfo: the uid's link
    by_my_data = sample("msgSend", msgId="13", uid="u-2", replyContent="客服推送", myData=token)
    unknown = sample("msgReply", msgId="14", uid="u-3", replyContent="无人认领")
    for push_type, body in (("msgReply", reply), ("msgSend", by_my_data), ("msgReply", unknown)):
        assert echat.push(url, push_type, body).text == "success"
    wechat.wait_for(lambda: {"第一条", "留言的回复", "客服推送"} <= set(wechat.texts_to(OPENID)), what="three replies")
    wait_metric(service, wechat, 1, "relay_outbox_jobs", status="dead")
    assert "无人认领" not in str(wechat.sends())
    assert "not linked to a WeChat user" in service.logs()


def test_attachments_system_notices_and_long_text(start_echat, wechat):
    service = start_echat(ECHAT_SYSTEM_NOTICES="end,busy")
    enter_session(service)
    token = handover_token(wechat)
    url, echat = f"{service.url}/echat", FakeEchat(TOKEN)
    image = sample("chatSend", msgId="21", msgType="2", contentType="22", content="", pushInfo=token)
    busy = sample("chatSend", msgId="22", msgType="1", contentType="2", content="客服忙", pushInfo=token)
    start = sample("chatSend", msgId="23", msgType="1", contentType="1", content="欢迎", pushInfo=token)
    long_text = "很长的回复。" * 400  # 7 200 bytes of UTF-8
    end = sample("chatSend", msgId="25", msgType="1", contentType="4", content="对话已结束", pushInfo=token)
    for body in (image, busy, start, agent_says(long_text, token, msg_id="24"), end):
        assert echat.push(url, "chatSend", body).text == "success"
    texts = wechat.wait_for(lambda: (lambda t: t if "对话已结束" in t else None)(wechat.texts_to(OPENID)[1:]),
                            what="the end notice")
    assert texts[0].startswith("客服发来了图片") and f"{CHAT_URL}&amp;pushInfo=" not in texts[0]
    assert f'href="{CHAT_URL}&pushInfo={token}"' in texts[0]
    assert texts[1] == "客服忙"
    pieces = texts[2:-1]
    assert len(pieces) == 4 and all(len(p.encode()) <= 2000 for p in pieces)
    assert "".join(pieces) == long_text
    assert "欢迎" not in texts


@pytest.mark.parametrize("name", ["msgReply", "msgSend", "chatSend"])
def test_published_samples_malformed_refused_corrected_accepted(start_echat, wechat, name):
    service = start_echat()
    echat = FakeEchat(TOKEN)
    bad = echat.push(f"{service.url}/echat", name, fixture_bytes(f"echat/{name}.as-published.xml"))
    assert bad.status_code == 400 and "malformed XML" in bad.json()["error"]
    good = echat.push(f"{service.url}/echat", name, fixture_bytes(f"echat/{name}.xml"))
    assert (good.status_code, good.text) == (200, "success")
    if name == "chatSend":  # the sample is a chat-start system message, not forwarded by default
        wechat.wait_for(lambda: "system message not forwarded" in service.logs(), what="the log line")
    else:  # for nobody we know: acknowledged and kept
        wait_metric(service, wechat, 1, "relay_outbox_jobs", status="dead")
    assert wechat.sends() == []


def test_a_view_url_that_is_not_http_never_reaches_the_user(start_echat, wechat):
    service = start_echat()
    enter_session(service)
    token = handover_token(wechat)
    image = sample("chatSend", msgId="51", uid="u-9", msgType="2", contentType="22", content="", pushInfo=token,
                   viewUrl="javascript:alert(document.cookie)")
    assert FakeEchat(TOKEN).push(f"{service.url}/echat", "chatSend", image).text == "success"
    text = wechat.wait_for(lambda: [t for t in wechat.texts_to(OPENID) if t.startswith("客服发来了图片")],
                           what="the image notice")[0]
    assert "javascript:" not in text and f'<a href="{CHAT_URL}&pushInfo=' in text
