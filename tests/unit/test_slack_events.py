"""Slack's request signature against the published vector and the fixtures' signed bodies, the fake's
signer against the same vector, and which events are an agent's post."""
from __future__ import annotations

import dataclasses

import pytest

from core.desks.slack import SlackDesk
from core.desks.slack.events import AgentPost, EventVerifier, agent_post
from core.desks.slack.settings import SlackSettings
from core.errors import Unauthorized
from core.web import Request
from tests.conftest import fixture_bytes, fixture_json
from tests.fakes.slack import sign

VECTOR = fixture_json("slack/signature.json")
SIGNED = fixture_json("slack/signed-requests.json")
NOW = VECTOR["clock_now_for_tests"]
SETTINGS = SlackSettings(bot_token="xoxb-1", signing_secret=VECTOR["signing_secret"], channel="C0RELAY001")


def request(body: bytes, timestamp: str | None = VECTOR["timestamp"], signature: str | None = None) -> Request:
    headers = {"x-slack-request-timestamp": timestamp, "x-slack-signature": signature}
    return Request("POST", "/slack/events", {}, {k: v for k, v in headers.items() if v is not None}, body)


def verifier(now: float = NOW) -> EventVerifier:
    return EventVerifier(VECTOR["signing_secret"], lambda: now)


def test_published_vector_verifies_and_the_fake_signs_it_alike():
    body = VECTOR["body"].encode()
    verifier().check(request(body, signature=VECTOR["expected_signature"]))
    assert sign(VECTOR["timestamp"], body, VECTOR["signing_secret"]) == VECTOR["expected_signature"]


@pytest.mark.parametrize("signed", SIGNED["requests"], ids=lambda r: r["body_file"])
def test_signed_fixture_bodies_verify(signed):
    verifier().check(request(fixture_bytes(f"slack/{signed['body_file']}"), signature=signed["expected_signature"]))


@pytest.mark.parametrize("case, now, body, timestamp, signature", [
    ("one byte changed", NOW, VECTOR["body"] + " ", VECTOR["timestamp"], VECTOR["expected_signature"]),
    ("301 s later", NOW + 301, VECTOR["body"], VECTOR["timestamp"], VECTOR["expected_signature"]),
    ("301 s earlier", NOW - 301, VECTOR["body"], VECTOR["timestamp"], VECTOR["expected_signature"]),
    ("no signature", NOW, VECTOR["body"], VECTOR["timestamp"], None),
    ("no timestamp", NOW, VECTOR["body"], None, VECTOR["expected_signature"]),
    ("timestamp not a number", NOW, VECTOR["body"], "15314206l8", VECTOR["expected_signature"]),
    ("non-ASCII signature", NOW, VECTOR["body"], VECTOR["timestamp"], "v0=é" + "0" * 63),
    ("body not UTF-8", NOW, "\udcff", VECTOR["timestamp"], VECTOR["expected_signature"]),
])
def test_refusals(case, now, body, timestamp, signature):
    raw = body.encode("utf-8", "surrogateescape")
    with pytest.raises(Unauthorized):
        verifier(now).check(request(raw, timestamp, signature))


def test_at_the_edge_of_the_window_still_valid():
    verifier(NOW + 300).check(request(VECTOR["body"].encode(), signature=VECTOR["expected_signature"]))


def test_url_verification_fixture_answered_with_its_challenge():
    desk = SlackDesk(SETTINGS, None, None, clock=lambda: NOW)  # type: ignore[arg-type]  # parse does no I/O
    signed = next(r for r in SIGNED["requests"] if r["body_file"] == "url_verification.json")
    answer = desk.parse_callback(request(fixture_bytes("slack/url_verification.json"),
                                         signature=signed["expected_signature"])).response
    assert answer.status == 200
    assert answer.body == b'{"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}'


@pytest.mark.parametrize("name, why", [
    ("event_callback.bot_message.constructed.json", "subtype bot_message"),
    ("event_callback.own_bot_echo.constructed.json", "a bot's message"),
    ("event_callback.message_im.constructed.json", "outside any thread"),
])
def test_fixture_events_are_not_agent_posts(name, why):
    settings = dataclasses.replace(SETTINGS, channel="D024BE91L")  # the fixtures' DM channel
    assert why in agent_post(fixture_json(f"slack/{name}"), settings)


def test_a_reply_in_a_thread_is_an_agent_post_and_the_bot_user_is_not():
    data = fixture_json("slack/event_callback.message_im.constructed.json")
    data["event"].update(channel="C0RELAY001", thread_ts="1355517500.000001")
    assert agent_post(data, SETTINGS) == AgentPost("C0RELAY001", "U2147483697", "1355517523.000005",
                                                   "1355517500.000001", "Hello hello can you hear me?", ())
    data["event"]["user"] = "U0BOT00001"  # the bot user the authorizations name, without a bot_id
    assert agent_post(data, SETTINGS) == "the relay's own message"
    data["event"].update(user="U2147483697", text="  // between us")
    assert agent_post(data, SETTINGS) == "a note among agents"
