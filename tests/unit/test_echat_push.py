"""Echat push verification and the pushInfo token, against the published vectors."""
from __future__ import annotations

import hashlib

import pytest

from core.desks.echat import pushinfo
from core.desks.echat.push import check_signature, read_push
from core.desks.echat.settings import EchatSettings
from core.errors import BadRequest, Unauthorized
from core.web import Request
from tests.conftest import fixture_json
from tests.fakes.echat import sample

VECTOR = next(c for c in fixture_json("echat/signature.json")["cases"] if c["id"] == "computed")
SETTINGS = EchatSettings(token=VECTOR["token"], chat_url="https://chat.example.com")
NOW = int(VECTOR["timestamp"])


def request(body: bytes = b"", **query: str) -> Request:
    return Request("POST", "/echat", {"timestamp": VECTOR["timestamp"], "nonce": VECTOR["nonce"],
                                      "signature": VECTOR["signature"], "dataType": "staffPush", **query}, {}, body)


def test_published_vector_verifies_and_any_change_does_not():
    check_signature(request(), SETTINGS, NOW, None)
    check_signature(request(signature=VECTOR["signature"].upper()), SETTINGS, NOW, None)
    for change in ({"nonce": "345679"}, {"signature": "0" * 40}, {"signature": ""}):
        with pytest.raises(Unauthorized):
            check_signature(request(**change), SETTINGS, NOW, None)


def test_stale_or_future_timestamps_are_refused():
    with pytest.raises(Unauthorized):
        check_signature(request(), SETTINGS, NOW + 301, None)
    with pytest.raises(Unauthorized):
        check_signature(request(), SETTINGS, NOW - 301, None)
    check_signature(request(), SETTINGS, NOW + 299, None)


def test_millisecond_timestamps_are_understood():
    ts = VECTOR["timestamp"] + "041"
    signature = hashlib.sha1("".join(sorted([VECTOR["token"], ts, VECTOR["nonce"]])).encode()).hexdigest()
    check_signature(request(timestamp=ts, signature=signature), SETTINGS, NOW, None)


def test_read_push_parses_each_sample_strictly():
    for name in ("msgReply", "msgSend", "chatSend"):
        kind, push = read_push(request(sample(name), msgType=name), SETTINGS, NOW)
        assert kind == name and push is not None
        assert (push.msg_id, push.uid) == ("345678", "28474495")
    _, push = read_push(request(sample("msgReply"), msgType="msgReply"), SETTINGS, NOW)
    assert push.get("replyContent") == "客服回复的内容" and push.get("viewUrl") == "http://api.echatsoft.com/msgReply/xxx"


def test_read_push_refuses_bad_bodies_and_skips_other_kinds():
    for body in (b"<xml><msgId>1</msgId>", b"not xml", b"<xml><msgId></msgId></xml>",
                 b"<xml><msgId>1</msgId><msgId>2</msgId></xml>", b"<other><msgId>1</msgId></other>",
                 b'<!DOCTYPE x [<!ENTITY a "b">]><xml><msgId>&a;</msgId></xml>'):
        with pytest.raises(BadRequest):
            read_push(request(body, msgType="chatSend"), SETTINGS, NOW)
    assert read_push(request(b"<xml><msgId>1</msgId></xml>", msgType="readEvent"), SETTINGS, NOW) == ("readEvent", None)


def test_pushinfo_names_the_user_and_cannot_be_altered():
    token = pushinfo.sign("secret", "wx8bd01c9a583478cf", "oVneZ57wJnV-ObtCiGv26PRrOz2g")
    assert pushinfo.verify("secret", token) == ("wx8bd01c9a583478cf", "oVneZ57wJnV-ObtCiGv26PRrOz2g")
    assert pushinfo.verify("other secret", token) is None
    assert pushinfo.verify("secret", token.replace("Oz2g", "Oz2h")) is None
    assert pushinfo.verify("secret", token[:-1]) is None
    for junk in (None, "", "r1.a.b", "r2" + token[2:], "web/sdk渠道接入时客户传递的推送信息"):
        assert pushinfo.verify("secret", junk) is None


def test_pushinfo_fits_echats_limit_for_the_longest_ids():
    token = pushinfo.sign("secret", "a" * 64, "o" * 128)
    assert len(token) <= 255 and pushinfo.verify("secret", token) == ("a" * 64, "o" * 128)
