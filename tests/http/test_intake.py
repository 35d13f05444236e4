"""Push intake over HTTP: probes, trust, formats, refusals, routing, dedupe, resource reuse, operations."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from core import __version__
from tests.conftest import fixture_bytes, fresh_push
from tests.fakes.webhook import post_reply
from tests.fakes.wechat import SEND
from tests.service import Service

HEADERS = {"x-wx-source": "other", "x-wx-appid": "wxapp0000000001"}


@pytest.mark.parametrize("body", [fixture_bytes("wechat/probe.CheckContainerPath.json"),
                                  fixture_bytes("wechat/probe.CheckContainerPath.xml"), b"CheckContainerPath"])
def test_probe_answered_success_in_every_format(start_service, desk, body):
    service = start_service()
    answer = service.post("/", body)  # the console's probe: answered even before the trust check
    assert (answer.status_code, answer.text) == (200, "success")
    assert "CheckContainerPath probe answered" in service.logs()


def test_push_without_source_header_refused_and_not_stored(start_service, desk):
    service = start_service()
    answer = service.post("/", fresh_push("wechat/push.text.json"), {"x-wx-appid": "wxapp0000000001"})
    assert answer.status_code == 403 and "x-wx-source" in answer.json()["error"]
    ok = service.post("/", fresh_push("wechat/push.image.json"), {"x-wx-sources": "other"})
    assert ok.text == "success"
    desk.wait_for(lambda: desk.events("message"))
    assert [e["type"] for e in desk.events("message")] == ["image"]  # the refused text never arrives
    assert service.logs().count('"request refused"') == 1


def test_network_trust_accepts_pushes_without_header(start_service, desk):
    service = start_service(WX_PUSH_TRUST="network")
    assert service.post("/", fresh_push("wechat/push.text.json")).text == "success"
    assert desk.wait_for(lambda: desk.events("message"))[0]["text"] == "this is a test"


@pytest.mark.parametrize("name,content_type", [("wechat/push.text.xml", "application/json"),
                                               ("wechat/push.text.json", "text/xml")])
def test_body_format_sniffed_not_taken_from_content_type(start_service, desk, name, content_type):
    service = start_service()
    assert service.post("/", fresh_push(name), {**HEADERS, "content-type": content_type}).text == "success"
    assert desk.wait_for(lambda: desk.events("message"))[0]["text"] == "this is a test"


@pytest.mark.parametrize("body,status", [
    (b"\x00\x01garbage", 400),
    (b'{"MsgType": "text"', 400),
    (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><xml><Content>&lol;</Content></xml>', 400),
    (b'{"MsgType": "text", "CreateTime": 1}', 400),  # no FromUserName, no x-wx-openid
    (b"{" + b" " * 3000 + b"}", 413),
    (b'<?xml version="1.0" encoding="klingon"?><xml/>', 400),
    (b'{"ToUserName": "g", "FromUserName": "u", "CreateTime": 1, "MsgType": "text", "Content": "\\ud800",'
     b' "MsgId": 5}', 400),  # a lone surrogate: valid JSON, not storable text
    (b'{"FromUserName": "' + b"o" * 129 + b'", "CreateTime": 1, "MsgType": "text", "MsgId": 5}', 400),
])
def test_bad_input_gets_clear_status_one_log_line_and_nothing_relayed(start_service, desk, body, status):
    service = start_service(RELAY_MAX_BODY="2048")
    answer = service.post("/", body, HEADERS)
    assert answer.status_code == status and answer.json()["error"]
    assert service.logs().count('"request refused"') == 1
    assert httpx.get(f"{service.url}/healthz").status_code == 200  # still alive
    assert desk.events() == []


def test_other_message_types_reach_the_desk_as_a_notice(start_service, desk):
    service = start_service()
    voice = {"ToUserName": "gh_1", "FromUserName": "ovoice", "CreateTime": int(time.time()), "MsgType": "voice",
             "MediaId": "m1", "MsgId": 99}
    service.post("/", json.dumps(voice), HEADERS)
    service.post("/", fresh_push("wechat/push.miniprogrampage.xml"), HEADERS)
    events = desk.wait_for(lambda: len(desk.events("message")) == 2 and desk.events("message"))
    other = next(e for e in events if e["type"] == "other")
    assert other["msgtype"] == "voice" and "voice" in other["text"]
    card = next(e for e in events if e["type"] == "miniprogrampage")
    assert (card["title"], card["pagepath"]) == ("Title", "PagePath")


def test_session_event_routed_by_session_from(start_service, desk):
    service = start_service(RELAY_DESK="", RELAY_ROUTES="vip-:webhook")  # everyone else: the inbox
    enter = json.loads(fresh_push("wechat/push.event.user_enter_tempsession.json"))
    service.post("/", json.dumps({**enter, "FromUserName": "ovip", "SessionFrom": "vip-order-7"}), HEADERS)
    service.post("/", json.dumps({**enter, "FromUserName": "oplain", "SessionFrom": "home"}), HEADERS)
    service.post("/", fresh_push("wechat/push.text.json", FromUserName="oplain", MsgId=1), HEADERS)
    service.post("/", fresh_push("wechat/push.text.json", FromUserName="ovip", MsgId=2), HEADERS)
    desk.wait_for(lambda: len(desk.events()) == 2, what="the vip session and message")
    assert [(e["event"], e["openid"]) for e in desk.events()] == [("session", "ovip"), ("message", "ovip")]
    assert desk.events("session")[0]["session_from"] == "vip-order-7"
    desk.wait_for(lambda: len(delivered_to_inbox(service)) == 2, what="oplain's two pushes in the inbox")


def delivered_to_inbox(service: Service) -> list[str]:
    return [line for line in service.logs().splitlines() if '"delivered to desk"' in line and '"desk": "inbox"' in line]


def test_unset_desk_means_the_inbox(start_service, desk):
    service = start_service(RELAY_DESK="", WEBHOOK_URL="", WEBHOOK_SECRET="")
    assert service.post("/", fresh_push("wechat/push.text.json"), HEADERS).text == "success"
    desk.wait_for(lambda: delivered_to_inbox(service), what="the message in the inbox")
    assert desk.events() == []
    assert 'relay_outbox_jobs{status="dead"} 0.0' in httpx.get(f"{service.url}/metrics").text


def test_same_push_ten_times_concurrently_delivered_once(start_service, desk):
    service = start_service()
    body = fresh_push("wechat/cloudrun-push.text.msgid64.json")
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: service.post("/", body, HEADERS), range(10)))
    assert {(a.status_code, a.text) for a in answers} == {(200, "success")}
    service.post("/", fresh_push("wechat/push.text.json", MsgId=7), HEADERS)  # a marker behind it
    desk.wait_for(lambda: len(desk.events("message")) == 2, what="the duplicate and the marker")
    assert [e["text"] for e in desk.events("message")].count("回复文本") == 1
    assert 'relay_pushes_total{result="duplicate"} 9.0' in httpx.get(f"{service.url}/metrics").text


def test_resource_reuse_sends_carry_from_appid(start_service, wechat, desk):
    service = start_service()
    headers = {"x-wx-source": "other", "x-wx-appid": "wx8bd01c9a583478cf", "x-wx-from-appid": "wx41374d9ae1f0b6d4",
               "x-wx-from-openid": "oOY7b56-yJerlctP0flOf-JewU8U"}
    service.post("/", fresh_push("wechat/push.text.json"), headers)
    event = desk.wait_for(lambda: desk.events("message"))[0]
    assert (event["app_id"], event["openid"]) == ("wx41374d9ae1f0b6d4", "fromUser")  # body FromUserName wins
    post_reply(service, {"id": "r", "conversation_id": event["conversation_id"], "text": "hi"})
    wechat.wait_for(lambda: wechat.sends())
    assert wechat.received(SEND)[0].query == {"from_appid": "wx41374d9ae1f0b6d4"}


def test_healthz_and_metrics(start_service, desk):
    service = start_service()
    health = httpx.get(f"{service.url}/healthz")
    assert health.json() == {"status": "ok", "store": "reachable", "version": __version__}
    service.post("/", fresh_push("wechat/push.text.json"), HEADERS)
    service.post("/", b"nonsense", HEADERS)
    desk.wait_for(lambda: desk.events())
    text = httpx.get(f"{service.url}/metrics").text
    assert 'relay_pushes_total{result="accepted"} 1.0' in text
    assert 'relay_requests_refused_total{route="push",status="400"} 1.0' in text
    assert 'relay_outbox_jobs{status="pending"}' in text
    assert "WEBHOOK" not in text and "webhook-secret" not in service.logs()


def test_message_text_not_logged_at_info(start_service, desk):
    service = start_service()
    service.post("/", fresh_push("wechat/push.text.json"), HEADERS)
    desk.wait_for(lambda: desk.events())
    assert "this is a test" not in service.logs()


def test_signed_trust_refuses_unsigned_pushes(start_service, desk):
    service = start_service(WX_PUSH_TRUST="signed", WX_TOKEN="AAAAA")
    answer = service.post("/", fresh_push("wechat/push.text.json"), HEADERS)
    assert answer.status_code == 403 and "WX_PUSH_TRUST=signed" in answer.json()["error"]
    assert desk.events() == []


@pytest.mark.parametrize("env,variable", [({"RELAY_DESK": "zendesk"}, "RELAY_DESK"),
                                          ({"WEBHOOK_SECRET": ""}, "WEBHOOK_SECRET"),
                                          ({"RELAY_DESK": "c4c"}, "c4c desk")])
def test_bad_configuration_stops_start_up_naming_the_variable(start_service, env, variable):
    service = start_service(wait=False, **env)
    assert service.proc.wait(20) != 0
    assert "configuration error" in service.logs() and variable in service.logs()
    assert "Traceback" not in service.logs()
