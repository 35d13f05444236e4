"""What an attacker tried (issue 11), each over real HTTP against the service: refusals come before
parsing, signatures serve one request, secrets stay out of logs and the store, oversize or slow input
gets a clear answer, and desks reach only the users routed to them."""
from __future__ import annotations

import json
import socket
import sqlite3
import time
import urllib.error
import urllib.request

import httpx
import pytest

from tests.conftest import fresh_push
from tests.fakes.webhook import HOOK, post_reply
from tests.http.test_developer_server import sha1_sorted

APP = "wx8bd01c9a583478cf"
CLOUD_RUN = {"x-wx-source": "other", "x-wx-appid": APP, "content-type": "application/json"}
DEEP_XML = b"<xml>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</xml>"


def signed(token: str, nonce: str, timestamp: int | None = None, **extra: str) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"signature": sha1_sorted(token, ts, nonce), "timestamp": ts, "nonce": nonce, **extra}


def log_lines(service) -> list[dict]:
    return [json.loads(line) for line in service.logs().splitlines() if line.startswith("{")]


def test_unauthenticated_pushes_are_refused_before_their_body_is_read(start_service, desk):
    service = start_service()
    garbage = service.post("/", b"<xml><unclosed>", {"content-type": "text/xml"})  # no x-wx-source
    assert garbage.status_code == 403  # not 400: the body was never parsed
    deep = service.post("/", DEEP_XML, {"content-type": "text/xml"})
    assert deep.status_code == 403


def test_deeply_nested_xml_is_refused_without_building_it(start_service, desk):
    service = start_service(WX_PUSH_TRUST="network")
    answer = service.post("/", DEEP_XML, {"content-type": "text/xml"})
    assert answer.status_code == 400 and "nested deeper" in answer.json()["error"]


def test_deep_echat_push_with_a_forged_signature_is_refused_unparsed(start_service):
    service = start_service(RELAY_DESK="echat", ECHAT_TOKEN="t", ECHAT_CHAT_URL="https://chat.example.com/c",
                            WEBHOOK_URL=None, WEBHOOK_SECRET=None)
    query = {"timestamp": str(int(time.time())), "nonce": "1", "signature": "0" * 40, "dataType": "staffPush",
             "msgType": "chatSend"}
    assert service.post("/echat", b"<xml><unclosed>", params=query).status_code == 401


def test_a_url_check_signature_cannot_be_replayed_as_a_push(start_service, desk):
    service = start_service(WX_TOKEN="tok", WX_APPID=APP)
    query = signed("tok", "1", echostr="12345")
    assert httpx.get(f"{service.url}/", params=query).text == "12345"
    replay = service.post("/", fresh_push("wechat/push.text.json"), params=query)
    assert replay.status_code == 401 and "replay" in replay.json()["error"]
    marker = service.post("/", fresh_push("wechat/push.text.json", MsgId=77, Content="marker"),
                          params=signed("tok", "2"))
    assert marker.text == "success"
    desk.wait_for(lambda: desk.events("message"))
    assert [e["text"] for e in desk.events("message")] == ["marker"]


def test_a_refused_developer_server_push_does_not_use_up_its_signature(start_service, desk):
    service = start_service(WX_TOKEN="tok", WX_APPID=APP)
    query = signed("tok", "3")
    refused = service.post("/", json.dumps({"ToUserName": "x"}), params=query)  # no MsgType: nothing stored
    assert refused.status_code == 400
    accepted = service.post("/", fresh_push("wechat/push.text.json"), params=query)
    assert accepted.text == "success"
    desk.wait_for(lambda: desk.events("message"))


def test_a_stale_developer_server_push_is_refused(start_service, desk):
    service = start_service(WX_TOKEN="tok", WX_APPID=APP)
    stale = signed("tok", "4", timestamp=int(time.time()) - 3600)
    answer = service.post("/", fresh_push("wechat/push.text.json"), params=stale)
    assert answer.status_code == 401 and "stale" in answer.json()["error"]


def test_a_password_in_a_desk_url_never_reaches_logs_or_the_store(start_service, desk, tmp_path):
    desk.down = 503
    url = desk.url.replace("http://", "http://hookuser:pw-SECRET-9@") + HOOK
    service = start_service(WEBHOOK_URL=url)
    service.post("/", fresh_push("wechat/push.text.json"), CLOUD_RUN)
    desk.wait_for(lambda: '"job will be retried"' in service.logs(), what="a retry")
    assert "pw-SECRET-9" not in service.logs()
    with sqlite3.connect(tmp_path / "relay.db") as db:
        errors = [row[0] for row in db.execute("SELECT last_error FROM jobs")]
    assert errors and not any("pw-SECRET-9" in (e or "") for e in errors)


@pytest.mark.parametrize("fields", [{"CreateTime": "9" * 4000}, {"FromUserName": "o" * 4000},
                                    {"MsgId": {"a": 1}}, {"MsgId": [1, 2]}, {"Event": "e" * 500}],
                         ids=["create-time", "openid", "msgid-object", "msgid-list", "event"])
def test_oversize_or_structured_ids_are_refused_with_json(start_service, desk, database_url, fields):
    service = start_service(DATABASE_URL=database_url)
    push = {**json.loads(fresh_push("wechat/push.event.user_enter_tempsession.json")), **fields}
    answer = service.post("/", json.dumps(push), CLOUD_RUN)
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"]
    assert "Traceback" not in service.logs()


def test_a_dripping_body_is_timed_out(start_service, desk):
    service = start_service(RELAY_BODY_TIMEOUT="1")
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as conn:
        conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nx-wx-source: other\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        conn.settimeout(0.4)
        answer = b""
        while time.monotonic() - started < 8 and b"\r\n\r\n" not in answer:
            try:
                conn.sendall(b" ")
                answer += conn.recv(4096)
            except (TimeoutError, OSError):
                continue
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


@pytest.mark.parametrize("size", [2 << 20, 8 << 20], ids=["2MiB", "8MiB"])
def test_an_oversize_body_gets_its_413_even_when_sent_whole(start_service, desk, size):
    """urllib sends the whole body before it reads: the relay must drain it, not reset the connection."""
    service = start_service()
    for _ in range(5):
        request = urllib.request.Request(f"{service.url}/", data=b"{" + b" " * size, method="POST",
                                         headers={"x-wx-source": "other"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=20)
        assert refused.value.code == 413 and json.loads(refused.value.read())["error"]


def test_a_desk_cannot_answer_a_user_routed_to_another_desk(start_service, desk, wechat):
    service = start_service(RELAY_ROUTES="vip:echat", ECHAT_TOKEN="t", ECHAT_CHAT_URL="https://chat.example.com/c")
    enter = fresh_push("wechat/push.event.user_enter_tempsession.json", SessionFrom="vip-1", FromUserName="oVip")
    service.post("/", enter, CLOUD_RUN)
    service.post("/", fresh_push("wechat/push.text.json", FromUserName="oMine", MsgId=5), CLOUD_RUN)
    desk.wait_for(lambda: desk.events("message"))
    foreign = post_reply(service, {"id": "x", "conversation_id": f"{APP}:oVip", "type": "text", "text": "hi"})
    assert foreign.status_code == 404
    mine = post_reply(service, {"id": "y", "conversation_id": f"{APP}:oMine", "type": "text", "text": "ok"})
    assert mine.status_code == 202
    wechat.wait_for(lambda: wechat.texts_to("oMine") == ["ok"])
    assert not any(t == "hi" for t in wechat.texts_to("oVip"))


def test_bidi_controls_in_ids_are_escaped_in_logs(start_service, desk):
    service = start_service()
    service.post("/", fresh_push("wechat/push.text.json", FromUserName="o\u202eevil"), CLOUD_RUN)
    desk.wait_for(lambda: desk.events("message"))
    assert "\u202e" not in service.logs() and "o\\u202eevil" in service.logs()


def test_unsigned_push_under_signed_trust_stores_nothing(start_service, desk):
    service = start_service(WX_PUSH_TRUST="signed", WX_TOKEN="tok", WX_APPID=APP)
    assert service.post("/", fresh_push("wechat/push.text.json", Content="unsigned"), CLOUD_RUN).status_code == 403
    marker = fresh_push("wechat/push.text.json", MsgId=99, Content="marker")
    assert service.post("/", marker, params=signed("tok", "5")).text == "success"
    desk.wait_for(lambda: desk.events("message"))
    assert [e["text"] for e in desk.events("message")] == ["marker"]


def test_a_session_opens_the_window_for_one_minute(start_service, desk, tmp_path):
    service = start_service()
    service.post("/", fresh_push("wechat/push.event.user_enter_tempsession.json"), CLOUD_RUN)
    desk.wait_for(lambda: desk.events())
    with sqlite3.connect(tmp_path / "relay.db") as db:
        [(window_until,)] = db.execute("SELECT window_until FROM conversations").fetchall()
    assert 0 < window_until - time.time() <= 60


def test_store_failure_is_a_json_503_not_a_traceback(start_service, desk, tmp_path):
    service = start_service()
    with sqlite3.connect(tmp_path / "relay.db") as db:
        db.execute("DROP TABLE received")
    answer = service.post("/", fresh_push("wechat/push.text.json"), CLOUD_RUN)
    assert answer.status_code == 503 and answer.json()["error"]
    assert sum('"request failed"' in line for line in service.logs().splitlines()) == 1
    assert "Traceback" not in service.logs()


@pytest.mark.parametrize("status", [521, 401])
def test_unlisted_5xx_and_refused_credentials_are_retried_not_dead_lettered(start_service, desk, status):
    desk.script(HOOK, (status, {"error": "x"}), (status, {"error": "x"}))
    service = start_service()
    service.post("/", fresh_push("wechat/push.text.json"), CLOUD_RUN)
    desk.wait_for(lambda: desk.events("message"), timeout=20, what="delivery after the refusals")
    assert service.metric("relay_outbox_jobs", status="dead") == 0
    if status == 401:
        errors = [line for line in log_lines(service) if line.get("level") == "error"]
        assert len(errors) == 2 and all("credentials" in line["event"] for line in errors)
