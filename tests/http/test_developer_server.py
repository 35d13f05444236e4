"""Developer-server mode on POST /: URL check, signed plaintext pushes, safe mode (official vectors,
re-signed with a fresh timestamp, since the relay refuses timestamps older than 5 minutes)."""
from __future__ import annotations

import hashlib
import json
import time

import httpx

from tests.conftest import fixture_json

A = fixture_json("wechat/vector-A.official-json-safe-mode.json")
B = fixture_json("wechat/vector-B.wxbizmsgcrypt-xml.json")


def sha1_sorted(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def fresh_query(token: str, encrypt: str | None = None, **extra: str) -> dict[str, str]:
    """signature (and msg_signature over Encrypt) computed here, independently of the relay."""
    ts, nonce = str(int(time.time())), "415670741"
    query = {"signature": sha1_sorted(token, ts, nonce), "timestamp": ts, "nonce": nonce, **extra}
    if encrypt is not None:
        query.update(encrypt_type="aes", msg_signature=sha1_sorted(token, ts, nonce, encrypt))
    return query


def test_url_check_answers_echostr(start_service):
    vector = fixture_json("wechat/devserver-get-verification.json")
    service = start_service(WX_TOKEN=vector["token"])
    answer = httpx.get(f"{service.url}/", params=fresh_query(vector["token"], echostr="4375120948345356249"))
    assert (answer.status_code, answer.text) == (200, "4375120948345356249")
    forged = httpx.get(f"{service.url}/", params={**fresh_query(vector["token"], echostr="1"), "nonce": "1"})
    assert forged.status_code == 401 and forged.json() == {"error": "bad signature"}


def test_official_vector_replayed_later_is_refused_as_stale(start_service):
    vector = fixture_json("wechat/devserver-get-verification.json")  # signed in 2024
    service = start_service(WX_TOKEN=vector["token"])
    answer = httpx.get(f"{service.url}/?{vector['request']['query_string']}")
    assert answer.status_code == 401 and "stale" in answer.json()["error"]


def test_signed_plaintext_push_accepted(start_service, desk):
    vector = fixture_json("wechat/devserver-post-plaintext.json")
    service = start_service(WX_TOKEN=vector["token"], WX_APPID="wxba5fad812f8e6fb9")
    body = json.dumps(vector["request"]["body"])
    answer = service.post("/", body, params=fresh_query(vector["token"]))
    assert (answer.status_code, answer.text) == (200, "success")
    event = desk.wait_for(lambda: desk.events("message"))[0]
    assert (event["openid"], event["type"], event["msgtype"]) == ("o9AgO5Kd5ggOC-bXrbNODIiE3bGY", "other", "event")
    assert event["app_id"] == "wxba5fad812f8e6fb9"
    assert service.post("/", body, params={**fresh_query(vector["token"]), "signature": "0" * 40}).status_code == 401


def test_safe_mode_json_vector_decrypted_and_relayed(start_service, desk):
    service = start_service(WX_TOKEN=A["token"], WX_AES_KEY=A["encoding_aes_key"], WX_APPID=A["appid"])
    body = A["request"]["body"]
    answer = service.post("/", json.dumps(body), params=fresh_query(A["token"], body["Encrypt"]))
    assert (answer.status_code, answer.text) == (200, "success")
    event = desk.wait_for(lambda: desk.events("message"))[0]
    assert (event["openid"], event["created_at"]) == ("o9AgO5Kd5ggOC-bXrbNODIiE3bGY", 1714112445)


def test_safe_mode_refuses_wrong_msg_signature_wrong_app_and_plaintext(start_service, desk):
    service = start_service(WX_TOKEN=A["token"], WX_AES_KEY=A["encoding_aes_key"], WX_APPID="wx0000000000000000")
    body = json.dumps(A["request"]["body"])
    query = fresh_query(A["token"], A["request"]["body"]["Encrypt"])
    assert service.post("/", body, params={**query, "msg_signature": "f" * 40}).status_code == 401
    other_app = service.post("/", body, params=query)
    assert other_app.status_code == 400 and "this app" in other_app.json()["error"]
    plaintext = service.post("/", json.dumps(fixture_json("wechat/push.text.json")), params=fresh_query(A["token"]))
    assert plaintext.status_code == 401 and "safe mode" in plaintext.json()["error"]
    assert desk.events() == []


def test_compatible_mode_xml_vector_uses_the_encrypted_copy(start_service, desk):
    service = start_service(WX_TOKEN=B["token"], WX_AES_KEY=B["encoding_aes_key"], WX_APPID=B["appid"])
    answer = service.post("/", B["request"]["body_xml"], params=fresh_query(B["token"], B["request"]["encrypt"]))
    assert (answer.status_code, answer.text) == (200, "success")
    event = desk.wait_for(lambda: desk.events("message"))[0]
    assert (event["openid"], event["text"]) == ("oyORnuP8q7ou2gfYjqLzSIWZf0rs", "abcdteT")


def test_developer_server_mode_off_without_token(start_service):
    service = start_service()
    answer = httpx.get(f"{service.url}/", params=fresh_query("AAAAA", echostr="1"))
    assert answer.status_code == 403 and "WX_TOKEN" in answer.json()["error"]


def test_a_signature_serves_one_body_only(start_service, desk):
    """The plaintext signature does not cover the body: a captured query must not carry another body."""
    vector = fixture_json("wechat/devserver-post-plaintext.json")
    service = start_service(WX_TOKEN=vector["token"], WX_APPID="wxba5fad812f8e6fb9")
    body = json.dumps(vector["request"]["body"])
    query = fresh_query(vector["token"])
    assert service.post("/", body, params=query).text == "success"
    assert service.post("/", body, params=query).text == "success"  # WeChat's own resend: a duplicate
    forged = json.dumps({**vector["request"]["body"], "MsgType": "text", "Content": "injected", "MsgId": 1})
    answer = service.post("/", forged, params=query)
    assert answer.status_code == 401 and "replay" in answer.json()["error"]
    desk.wait_for(lambda: desk.events("message"))
    assert len(desk.events("message")) == 1 and "injected" not in json.dumps(desk.events("message"))
