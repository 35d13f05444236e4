"""Developer-server mode on POST /: URL check, signed plaintext pushes, safe mode (official vectors)."""
from __future__ import annotations

import hashlib
import json

import httpx

from tests.conftest import fixture_json

A = fixture_json("wechat/vector-A.official-json-safe-mode.json")
B = fixture_json("wechat/vector-B.wxbizmsgcrypt-xml.json")


def test_url_check_answers_echostr(start_service):
    vector = fixture_json("wechat/devserver-get-verification.json")
    service = start_service(WX_TOKEN=vector["token"])
    answer = httpx.get(f"{service.url}/?{vector['request']['query_string']}")
    assert (answer.status_code, answer.text) == (200, vector["expected"]["response_body"])
    forged = httpx.get(f"{service.url}/", params={**vector["request"]["query"], "nonce": "1"})
    assert forged.status_code == 401 and forged.json() == {"error": "bad signature"}


def test_signed_plaintext_push_accepted(start_service, desk):
    vector = fixture_json("wechat/devserver-post-plaintext.json")
    service = start_service(WX_TOKEN=vector["token"], WX_APPID="wxba5fad812f8e6fb9")
    body = json.dumps(vector["request"]["body"])
    answer = service.post("/", body, params=vector["request"]["query"])
    assert (answer.status_code, answer.text) == (200, "success")
    event = desk.wait_for(lambda: desk.events("message"))[0]
    assert (event["openid"], event["type"], event["msgtype"]) == ("o9AgO5Kd5ggOC-bXrbNODIiE3bGY", "other", "event")
    assert event["app_id"] == "wxba5fad812f8e6fb9"
    assert service.post("/", body, params={**vector["request"]["query"], "signature": "0" * 40}).status_code == 401


def test_safe_mode_json_vector_decrypted_and_relayed(start_service, desk):
    service = start_service(WX_TOKEN=A["token"], WX_AES_KEY=A["encoding_aes_key"], WX_APPID=A["appid"])
    answer = service.post("/", json.dumps(A["request"]["body"]), params=A["request"]["query"])
    assert (answer.status_code, answer.text) == (200, "success")
    event = desk.wait_for(lambda: desk.events("message"))[0]
    assert (event["openid"], event["created_at"]) == ("o9AgO5Kd5ggOC-bXrbNODIiE3bGY", 1714112445)


def test_safe_mode_refuses_wrong_msg_signature_and_wrong_app(start_service, desk):
    service = start_service(WX_TOKEN=A["token"], WX_AES_KEY=A["encoding_aes_key"], WX_APPID="wx0000000000000000")
    body = json.dumps(A["request"]["body"])
    bad_sig = service.post("/", body, params={**A["request"]["query"], "msg_signature": "f" * 40})
    assert bad_sig.status_code == 401
    other_app = service.post("/", body, params=A["request"]["query"])
    assert other_app.status_code == 400 and "this app" in other_app.json()["error"]
    assert desk.events() == []


def test_compatible_mode_xml_vector_uses_the_encrypted_copy(start_service, desk):
    service = start_service(WX_TOKEN=B["token"], WX_AES_KEY=B["encoding_aes_key"], WX_APPID=B["appid"])
    plain = "".join(sorted([B["token"], B["request"]["timestamp"], B["request"]["nonce"]]))
    query = {"signature": hashlib.sha1(plain.encode()).hexdigest(),  # not part of vector B: computed here
             "timestamp": B["request"]["timestamp"], "nonce": B["request"]["nonce"], "encrypt_type": "aes",
             "msg_signature": B["request"]["msg_signature"]}
    answer = service.post("/", B["request"]["body_xml"], params=query)
    assert (answer.status_code, answer.text) == (200, "success")
    event = desk.wait_for(lambda: desk.events("message"))[0]
    assert (event["openid"], event["text"]) == ("oyORnuP8q7ou2gfYjqLzSIWZf0rs", "abcdteT")


def test_developer_server_mode_off_without_token(start_service):
    vector = fixture_json("wechat/devserver-get-verification.json")
    service = start_service()
    answer = httpx.get(f"{service.url}/?{vector['request']['query_string']}")
    assert answer.status_code == 403 and "WX_TOKEN" in answer.json()["error"]
