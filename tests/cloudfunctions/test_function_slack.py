"""The Slack desk through main_handler: pushes as events, Slack's Events API as HTTP-access events."""
from __future__ import annotations

import threading
import time

import pytest

from tests.cloudfunctions.harness import text_event
from tests.conftest import fixture_bytes
from tests.fakes.slack import CHANNEL, EVENTS, SIGNING_SECRET, TOKEN, sign
from tests.fakes.wechat import UPLOAD

OPENID = "ohl4L0Rnhq7vmmbT_DaNQa4ePaz0"
PNG = b"\x89PNG\r\n\x1a\n" + b"picture" * 10
CHALLENGE = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"


@pytest.fixture
def slack_function(function, slack):
    return lambda: function(RELAY_DESK="slack", SLACK_API_BASE=f"{slack.url}/api", SLACK_BOT_TOKEN=TOKEN,
                            SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_CHANNEL=CHANNEL)


def test_thread_then_agent_reply_once(slack_function, slack, wechat):
    fn = slack_function()
    assert fn.push(text_event("你好", "m-1")) == "success"
    [root] = slack.roots()  # posted before the handler returned
    assert fn.push(text_event("在吗", "m-2")) == "success"
    assert slack.texts(root.ts) == ["你好", "在吗"] and len(slack.roots()) == 1

    body = slack.envelope(slack.reply(root.ts, "*您好*"))
    assert slack.send(fn, body).status_code == 200
    assert wechat.texts_to(OPENID) == ["您好"]  # sent before the handler returned
    assert slack.send(fn, body, retry=1).status_code == 200  # Slack retrying
    assert slack.send(fn, slack.reply(root.ts, "// note")).status_code == 200
    assert wechat.texts_to(OPENID) == ["您好"]


def test_pictures_both_ways(slack_function, slack, wechat):
    wechat.script("GET /mmbiz_png/p", (200, PNG, {"content-type": "image/png"}))
    fn = slack_function()
    event = {**text_event("", "m-3"), "MsgType": "image", "PicUrl": f"{wechat.url}/mmbiz_png/p", "MediaId": "x"}
    del event["Content"]
    assert fn.push(event) == "success"
    [root] = slack.roots()
    [shared] = slack.in_thread(root.ts)
    assert shared.files[0]["data"] == PNG
    photo = slack.share_file("photo.png", PNG, "image/png")
    assert slack.send(fn, slack.reply(root.ts, "", subtype="file_share", files=[photo])).status_code == 200
    assert [s["msgtype"] for s in wechat.sends()] == ["image"] and PNG in wechat.received(UPLOAD)[0].body


def test_refused_signatures_and_the_challenge(slack_function, slack, wechat):
    fn = slack_function()
    fn.push(text_event("hello", "m-4"))
    [root] = slack.roots()
    event = slack.reply(root.ts, "forged")
    now = str(int(time.time()))
    challenge = fixture_bytes("slack/url_verification.json")
    refused = [slack.send(fn, event, x_slack_signature="v0=" + "0" * 64),
               slack.send(fn, event, timestamp=int(time.time()) - 600),
               slack.send(fn, event, x_slack_signature=None),
               fn.post(EVENTS, challenge, {"content-type": "application/json"}),
               slack.send(fn, challenge, x_slack_signature=sign(now, challenge, "wrong"), timestamp=now)]
    assert [r.status_code for r in refused] == [401] * 5
    assert slack.send(fn, challenge).json() == {"challenge": CHALLENGE}
    assert wechat.sends() == []


def test_slack_outage_left_for_the_timer(slack_function, slack):
    slack.down = 503
    fn = slack_function()
    for n in range(3):
        assert fn.push(text_event(f"m{n}", f"o-{n}")) == "success"
    assert slack.roots() == []
    slack.down = None
    slack.wait_for(lambda: fn.tick() is not None and slack.roots() and len(slack.texts(slack.roots()[0].ts)) == 3,
                   timeout=30, what="the timer draining the outbox")
    assert slack.texts(slack.roots()[0].ts) == ["m0", "m1", "m2"] and len(slack.roots()) == 1


def test_slack_is_answered_within_its_3_seconds_while_wechat_is_slow(slack_function, slack, wechat):
    fn = slack_function()
    fn.push(text_event("hello", "m-5"))
    [root] = slack.roots()
    release, answer = threading.Event(), wechat.answer
    wechat.answer = lambda recorded: (release.wait(10), answer(recorded))[1]  # type: ignore[method-assign]
    try:
        started = time.monotonic()
        assert slack.send(fn, slack.reply(root.ts, "慢")).status_code == 200
        assert time.monotonic() - started < 2.5  # the send to WeChat goes on at the next run
    finally:
        release.set()
        wechat.answer = answer  # type: ignore[method-assign]
    slack.wait_for(lambda: fn.tick() is not None and wechat.texts_to(OPENID) == ["慢"], timeout=20,
                   what="the reply sent by a later timer run")
