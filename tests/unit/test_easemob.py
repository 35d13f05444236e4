"""Easemob desk pieces against the fixtures: the `security` vector, callback verification and
classification, IM ids for openids, settings, and the fake's signing."""
from __future__ import annotations

import json

import pytest

from core.config import Settings
from core.desks.easemob import EasemobDesk
from core.desks.easemob.callback import WINDOW_MS, read_callback, security
from core.desks.easemob.settings import EasemobSettings
from core.desks.easemob.token import _keep_for
from core.desks.easemob.visitor import IM_USER, im_user, nickname
from core.errors import BadRequest, ConfigError, Unauthorized
from core.web import Request
from tests.conftest import fixture_bytes, fixture_json
from tests.fakes import easemob as fake

VECTOR = fixture_json("easemob/callback-security.md5.json")["cases"][0]
CHAT = fixture_json("easemob/callback-postsending.chat-txt.constructed.json")
CHAT_NOW = CHAT["timestamp"] / 1000
ENV = {"RELAY_DESK": "easemob", "EASEMOB_ORG": "easemob-demo", "EASEMOB_APP": "kefuapp", "EASEMOB_CLIENT_ID": "id",
       "EASEMOB_CLIENT_SECRET": "s", "EASEMOB_SERVICE_NUMBER": "kefuchannelimid_123456", "EASEMOB_CALLBACK_SECRET": "secret"}


def test_the_computed_security_vector():
    assert VECTOR["id"] == "computed"
    assert security(VECTOR["callId"], VECTOR["secret"], VECTOR["timestamp"]) == VECTOR["security"]
    assert fake.security(VECTOR["callId"], VECTOR["secret"], VECTOR["timestamp"]) == VECTOR["security"]


def test_the_published_sample_does_not_verify_with_any_known_secret():
    published = fixture_json("easemob/callback-security.md5.json")["not_reproducible"]
    for secret in ("secret", "123456"):
        assert security(published["callId"], secret, published["timestamp"]) != published["published_security"]


def test_the_constructed_chat_callback_verifies_and_parses():
    callback = read_callback(fixture_bytes("easemob/callback-postsending.chat-txt.constructed.json"), "secret",
                             CHAT_NOW)
    assert (callback.get("msg_id"), callback.get("to"), callback.bodies()) == (
        "1029457500870543736", "t1dc2jh3j_u2cerlkja_d024be91l", [{"msg": "您好，请问有什么可以帮您？", "type": "txt"}])
    assert callback.replay_key == f"{CHAT['callId']}:{CHAT['timestamp']}:{CHAT['security']}"


@pytest.mark.parametrize("change,now", [
    ({}, CHAT_NOW + WINDOW_MS / 1000 + 1),  # stale
    ({}, CHAT_NOW - WINDOW_MS / 1000 - 1),  # from the future
    ({"security": "0" * 32}, CHAT_NOW),
    ({"callId": CHAT["callId"] + "x"}, CHAT_NOW),  # the signed fields are the signed ones
    ({"timestamp": CHAT["timestamp"] + 1}, CHAT_NOW),
    ({"timestamp": str(CHAT["timestamp"] // 1000)}, CHAT_NOW),  # seconds, not milliseconds
    ({"security": None}, CHAT_NOW),
    ({"callId": 7}, CHAT_NOW),
], ids=["stale", "future", "forged", "call-id", "timestamp", "seconds", "unsigned", "call-id-type"])
def test_bad_callbacks_are_refused(change, now):
    body = {**CHAT, **change}
    with pytest.raises(Unauthorized):
        read_callback(json.dumps(body).encode(), "secret", now)


def test_a_string_timestamp_and_upper_case_security_are_accepted():
    body = {**CHAT, "timestamp": str(CHAT["timestamp"]), "security": CHAT["security"].upper()}
    assert read_callback(json.dumps(body).encode(), "secret", CHAT_NOW).get("msg_id") == CHAT["msg_id"]


def test_malformed_bodies_are_bad_requests():
    for body in (b"[]", b"not json", json.dumps({**CHAT, "to": {"a": 1}}).encode()):
        with pytest.raises((BadRequest, Unauthorized)):
            read_callback(body, "secret", CHAT_NOW)


def desk() -> EasemobDesk:
    return EasemobDesk(Settings.from_env(ENV).desks["easemob"], None, None, lambda: CHAT_NOW)  # type: ignore[arg-type]


def callback(**fields) -> Request:
    body = {**CHAT, **fields}
    body["security"] = security(body["callId"], "secret", body["timestamp"])
    return Request("POST", "/easemob", {}, {}, json.dumps(body, ensure_ascii=False).encode())


def test_only_the_service_number_writing_to_a_relay_visitor_is_a_reply():
    visitor = im_user("wxapp", "oAbC")
    parsed = desk().parse_callback(callback(to=visitor))
    [reply] = parsed.replies
    assert (reply.id, reply.kind, reply.text, reply.desk_ref.get("im_user")) == (
        CHAT["msg_id"], "text", "您好，请问有什么可以帮您？", visitor)
    assert parsed.replay_key and json.loads(parsed.response.body) == {"status": "accepted"}
    for fields in ({"to": "t1dc2jh3j_u2cerlkja_d024be91l"}, {"from": visitor, "to": "kefuchannelimid_123456"},
                   {"to": visitor, "chat_type": "groupchat"}, {"to": visitor, "eventType": "user_offline"},
                   {"to": visitor, "payload": {"bodies": [{"type": "cmd", "action": "x"}], "ext": {}}},
                   {"to": visitor, "payload": {"bodies": [{"type": "txt", "msg": "x"}],
                                               "ext": {"weichat": {"recall_flag": 1, "recall_msg_id": "1"}}}}):
        ignored = desk().parse_callback(callback(**fields))
        assert ignored.replies == [] and json.loads(ignored.response.body) == {"status": "ignored"}
    with pytest.raises(BadRequest):
        desk().parse_callback(callback(to=visitor, msg_id=None))


def test_im_ids_are_valid_distinct_for_case_and_stable():
    ids = {im_user("wx8bd01c9a583478cf", openid) for openid in ("oVneZ57w-AbC_d", "ovnez57w-abc_d", "OVNEZ57W-ABC_D")}
    assert len(ids) == 3
    for user in ids:
        assert IM_USER.fullmatch(user) and len(user) <= 64 and user == user.lower()
    assert im_user("a", "o") == im_user("a", "o") != im_user("a", "o", 1) != im_user("b", "o")


def test_nickname_from_a_json_session_from_or_a_default():
    assert nickname('{"nickName": " 小明 "}', "wxabcd") == "小明"
    assert nickname("vip-1", "wxabcd") == nickname("{broken", "wxabcd") == nickname(None, "wxabcd") == "微信用户abcd"


def test_settings_defaults_queues_and_refusals():
    settings = Settings.from_env({**ENV, "EASEMOB_QUEUES": "vip-:VIP客服, :售前"}).desks["easemob"]
    assert isinstance(settings, EasemobSettings)
    assert (settings.base_url, settings.app_url) == ("https://a1.easemob.com", "https://a1.easemob.com/easemob-demo/kefuapp")
    assert (settings.queue_for("vip-7"), settings.queue_for("home"), settings.queue_for(None)) == ("VIP客服", "售前", "售前")
    assert settings.undeliverable_note
    for variable in sorted(k for k in ENV if k != "RELAY_DESK"):
        with pytest.raises(ConfigError, match=variable):
            Settings.from_env({k: v for k, v in ENV.items() if k != variable})
    for bad in ({"EASEMOB_QUEUES": "vip-"}, {"EASEMOB_QUEUES": "vip-:"}, {"EASEMOB_SERVICE_NUMBER": "KefuIM"},
                {"EASEMOB_BASE_URL": "a1.easemob.com"}, {"EASEMOB_UNDELIVERABLE_NOTE": "maybe"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Settings.from_env({**ENV, **bad})


def test_tokens_are_kept_until_a_tenth_of_their_life_before_expiry():
    assert _keep_for(5184000) == 5184000 - 3600
    assert _keep_for(7200) == 7200 - 720
    assert _keep_for(2) == pytest.approx(1.8)
    assert _keep_for(0) == 3600


def test_the_fake_calls_back_with_the_published_fields(easemob):
    built = easemob.callback_body({"msg_id": "1", "from": "a", "to": "b", "type": "txt", "body": {"msg": "x"}, "ext": {}})
    assert set(fixture_json("easemob/callback-postsending.json")) - {"group_id"} <= set(built)
    assert set(fixture_json("easemob/callback-postsending.chat-txt.constructed.json")) <= set(built)
    assert built["payload"]["bodies"] == [{"type": "txt", "msg": "x"}]
