"""C4C inbound parsing (the seed's Mashup form and change notification), Basic auth, OData quoting,
SOAP answers read by local name."""
from __future__ import annotations

import base64
import json

import pytest

from core.bodies import parse_xml
from core.config import Settings
from core.desks.c4c import C4CDesk
from core.desks.c4c.inbound import check_basic, mashup_payload
from core.desks.c4c.odata import literal, query, with_query
from core.desks.c4c.soap import find_all, text_of
from core.errors import BadRequest, Unauthorized
from core.models import DeskRef
from core.web import Request
from tests.conftest import fixture_bytes, fixture_json

ENV = {"RELAY_DESK": "c4c", "C4C_BASE_URL": "https://tenant.example.com", "C4C_USER": "u", "C4C_PASSWORD": "p",
       "C4C_CHANNEL_ID": "WXOData", "C4C_INBOUND_USER": "mashup", "C4C_INBOUND_PASSWORD": "pw"}
AUTH = {"authorization": "Basic " + base64.b64encode(b"mashup:pw").decode()}


@pytest.fixture
def desk():
    return C4CDesk(Settings.from_env(ENV).desks["c4c"], None, None, clock=lambda: 1_700_000_000)  # parse_callback does no I/O


def call(path: str, body: bytes, headers: dict | None = None) -> Request:
    return Request("POST", path, {}, AUTH if headers is None else headers, body)


def test_seed_mashup_form_parses_exactly():
    assert mashup_payload(fixture_bytes("c4c/mashup-reply.form.txt")) == fixture_json("c4c/mashup-reply.decoded.json")


def test_form_plus_is_a_space_and_json_bodies_are_sniffed():
    assert mashup_payload(b"content=%7B%22text%22%3A%22a+b%2Bc%22%7D") == {"text": "a b+c"}
    inner = {"original_id": "1", "text": "x"}
    assert mashup_payload(json.dumps(inner).encode()) == inner
    assert mashup_payload(json.dumps({"content": json.dumps(inner)}).encode()) == inner


@pytest.mark.parametrize("body", [b"", b"content=", b"content=not-json", b"content=%5B1%5D", b"a=1&content=1&content=2",
                                  b"\xff\xfe", b"content=%7B%22x%22", b"&&&"])
def test_bad_mashup_bodies_are_refused(body):
    with pytest.raises(BadRequest) as refused:
        mashup_payload(body)
    assert "not-json" not in refused.value.message  # the refusal is logged: it must not quote the body


def test_basic_auth():
    check_basic(call("/c4c/mashup", b""), "mashup", "pw")
    for headers in ({}, {"authorization": "Basic " + base64.b64encode(b"mashup:pW").decode()},
                    {"authorization": "Basic " + base64.b64encode(b"mashup").decode()},
                    {"authorization": "Digest x"}, {"authorization": "Basic ###"}):
        with pytest.raises(Unauthorized):
            check_basic(call("/c4c/mashup", b"", headers), "mashup", "pw")


def test_seed_change_notification_becomes_a_notice_for_the_customer(desk):
    callback = desk.parse_callback(call("/c4c/events", fixture_bytes("c4c/event-notification.customer-change.json")))
    (reply,) = callback.replies
    assert reply.desk_ref.get("customer") == "00163E20C9511EE7B8975BD4AB3F60C0"
    assert (reply.kind, reply.text, reply.openid) == ("text", "您的客户资料已更新。", "")
    other = desk.parse_callback(call("/c4c/events", b'{"businessObject":"OPPORTUNITY","businessObjectId":"X"}'))
    assert other.replies == []


def test_seed_ticket_reply_private_replies_and_long_texts(desk):
    (reply,) = desk.parse_callback(call("/c4c/mashup", fixture_bytes("c4c/mashup-reply.form.txt"))).replies
    assert (reply.id, reply.text) == ("59163", "aad")
    assert reply.desk_ref == DeskRef("ticket:1034190", {"original_id": "1003", "ticket": "1034190", "sma_id": "59163"})
    private = {**fixture_json("c4c/mashup-reply.decoded.json"), "private_ind": "TRUE"}
    assert desk.parse_callback(call("/c4c/mashup", json.dumps(private).encode())).replies == []
    long = {**fixture_json("c4c/mashup-reply.decoded.json"), "text": "字" * 1500}
    pieces = desk.parse_callback(call("/c4c/mashup", json.dumps(long).encode())).replies
    assert [p.id for p in pieces] == ["59163"] * 3  # one reply: queued together, deduplicated together
    assert "".join(p.text for p in pieces) == "字" * 1500


def test_ticket_reply_needs_a_way_to_the_user_and_text(desk):
    for change in ({"original_id": "", "service_req_no": ""}, {"text": " "}):
        body = json.dumps({**fixture_json("c4c/mashup-reply.decoded.json"), **change}).encode()
        with pytest.raises(BadRequest):
            desk.parse_callback(call("/c4c/mashup", body))


def test_odata_literals_and_query_strings():
    assert literal("O'Brien") == "'O''Brien'"
    assert query(**{"$filter": "ID eq '1 & 2'"}) == "?$filter=ID%20eq%20'1%20%26%202'"
    assert with_query("https://t/C?$format=json", a="'x'") == "https://t/C?$format=json&a='x'"
    assert with_query("https://t/C", a="'x'") == "https://t/C?a='x'"


@pytest.mark.parametrize("path,body", [
    ("/c4c/mashup", {"original_id": "", "service_req_no": "1" * 129, "text": "x"}),
    ("/c4c/mashup", {"original_id": "1", "sma_id": "s" * 129, "text": "x"}),
    ("/c4c/mashup", {"type": "WKF", "data": [{"openId": "o" * 129, "fullText": "x"}]}),
    ("/c4c/events", {"businessObject": "CUSTOMER", "businessObjectId": "G" * 129}),
])
def test_ids_longer_than_the_store_keeps_are_refused(desk, path, body):
    with pytest.raises(BadRequest, match="longer than 128"):
        desk.parse_callback(call(path, json.dumps(body).encode()))


def test_the_relays_own_notice_coming_back_is_not_sent(desk):
    body = {**fixture_json("c4c/mashup-reply.decoded.json"), "text": "[WeChat relay] Not delivered to the WeChat user"}
    assert desk.parse_callback(call("/c4c/mashup", json.dumps(body).encode())).replies == []


def test_soap_answers_are_read_by_local_name_whatever_the_prefix():
    tree = parse_xml(b'<e:Envelope xmlns:e="urn:e"><e:Body><n0:Confirmation xmlns:n0="urn:g">'
                     b"<SocialMediaActivity><ID>59160</ID><UUID>a-b</UUID></SocialMediaActivity>"
                     b"<Log><Item><SeverityCode>2</SeverityCode><Note>warn</Note></Item></Log>"
                     b"</n0:Confirmation></e:Body></e:Envelope>")
    (activity,) = find_all(tree, "SocialMediaActivity")
    assert (text_of(activity, "ID"), text_of(activity, "UUID")) == ("59160", "a-b")
    assert text_of(tree, "Note") == "warn"
