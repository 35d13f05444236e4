"""Black-box, Slack desk: WeChat pushes → a thread per user in a fake Slack channel → signed Events API
replies from agents → WeChat sends; pictures both ways; what is never relayed; retries and duplicates;
refused signatures; rate limits, lost answers and outages."""
from __future__ import annotations

import json
import time

import pytest

from tests.conftest import fixture_bytes, fresh_push
from tests.fakes.slack import AGENT, BOT_ID, BOT_USER, CHANNEL, EVENTS, OTHER_AGENT, POST, SIGNING_SECRET, TOKEN, FakeSlack, sign
from tests.fakes.wechat import SEND, UPLOAD
from tests.service import free_port

APP = "wx8bd01c9a583478cf"
OPENID = "oVneZ57wJnV-ObtCiGv26PRrOz2g"
OTHER = "oVneZ57wJnV-ObtCiGv26PRrOther"
CLOUD_RUN = {"x-wx-source": "other", "x-wx-appid": APP, "content-type": "application/json"}
PNG = b"\x89PNG\r\n\x1a\n" + b"user picture" * 10
JPEG = b"\xff\xd8\xff\xe0" + b"agent photo" * 10
THUMB = b"\xff\xd8\xff\xe0" + b"thumbnail" * 10
RATE_LIMITED = (429, {"ok": False, "error": "ratelimited"}, {"retry-after": "1"})


@pytest.fixture
def start_slack(start_service, slack):
    """start_slack(**env): the service with the Slack desk on the fake; no job of it may fail unexpectedly."""
    started = []

    def start(**env: str):
        started.append(start_service(**{
            "RELAY_DESK": "slack", "SLACK_API_BASE": f"{slack.url}/api", "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_CHANNEL": CHANNEL, **env}))
        return started[-1]

    yield start
    for service in started:
        assert "failed unexpectedly" not in service.logs()


def push(service, fixture: str, **fields) -> None:
    answer = service.post("/", fresh_push(fixture, **fields), CLOUD_RUN)
    assert (answer.status_code, answer.text) == (200, "success")


def write(service, text: str, msg_id: int, openid: str = OPENID) -> None:
    push(service, "wechat/push.text.json", FromUserName=openid, Content=text, MsgId=msg_id)


def write_old(service, text: str, msg_id: int, created: int, openid: str = OPENID) -> None:
    """A text message written at `created` (fresh_push dates it now)."""
    body = json.loads(fresh_push("wechat/push.text.json", FromUserName=openid, Content=text, MsgId=msg_id))
    answer = service.post("/", json.dumps({**body, "CreateTime": created}), CLOUD_RUN)
    assert answer.text == "success"


def root_of(slack: FakeSlack, openid: str = OPENID, count: int = 1):
    """The latest of `count` thread roots naming `openid`."""
    roots = slack.wait_for(lambda: (lambda r: r if len(r) >= count else None)(
        [p for p in slack.roots() if openid in p.text]), what=f"{count} thread root(s) for {openid}")
    return roots[-1]


def idle(service, slack: FakeSlack) -> None:
    slack.wait_for(lambda: service.metric("relay_outbox_jobs", status="pending") == 0, what="an empty outbox")


def test_a_thread_per_user_and_the_agent_reply_reaches_the_user(start_slack, slack, wechat):
    service = start_slack()
    push(service, "wechat/push.event.user_enter_tempsession.json", FromUserName=OPENID, SessionFrom="goods:1001")
    write(service, "我的订单还没发货", 1001)
    root = root_of(slack)
    assert all(part in root.text for part in (OPENID, APP, "goods:1001", "!close", "//"))
    slack.wait_for(lambda: slack.texts(root.ts) == ["我的订单还没发货"], what="the first message in the thread")
    write(service, "<!channel> 在吗 & ?", 1002)
    slack.wait_for(lambda: len(slack.texts(root.ts)) == 2, what="the second message")
    assert slack.texts(root.ts)[1] == "&lt;!channel&gt; 在吗 &amp; ?"  # a user cannot ping the channel
    assert len(slack.roots()) == 1

    answer = slack.send(service, slack.reply(root.ts, "*您好*，已经发货了 :+1:"))
    assert answer.status_code == 200
    wechat.wait_for(lambda: wechat.texts_to(OPENID) == ["您好，已经发货了 👍"], what="the reply in WeChat")

    write(service, "谢谢", 1003, openid=OTHER)  # another user: a thread of their own
    other = root_of(slack, OTHER)
    assert other.ts != root.ts and slack.wait_for(lambda: slack.texts(other.ts)) == ["谢谢"]


def test_pictures_both_ways(start_slack, slack, wechat):
    wechat.script("GET /mmbiz_png/pic1", (200, PNG, {"content-type": "image/png"}))
    service = start_slack()
    push(service, "wechat/push.image.json", FromUserName=OPENID, PicUrl=f"{wechat.url}/mmbiz_png/pic1", MsgId=2001)
    root = root_of(slack)
    [shared] = slack.wait_for(lambda: [p for p in slack.in_thread(root.ts) if p.files], what="the picture in the thread")
    assert shared.files[0]["data"] == PNG and shared.files[0]["name"] == "wechat-2001.png"
    assert [r.path for r in slack.requests if "upload" in r.path.lower()] == [
        "/api/files.getUploadURLExternal", f"/upload/{shared.files[0]['id']}", "/api/files.completeUploadExternal"]

    photo = slack.share_file("photo.jpg", JPEG, "image/jpeg")
    big = slack.share_file("big.png", PNG, "image/png", size=5 << 20, thumbnail=THUMB)  # over 2 MB: the thumbnail
    pdf = slack.share_file("invoice.pdf", b"%PDF-1.4", "application/pdf")
    event = slack.reply(root.ts, "请看", subtype="file_share", files=[photo, big, pdf])
    assert slack.send(service, event).status_code == 200
    sends = wechat.wait_for(lambda: (lambda s: s if len(s) == 4 else None)(wechat.sends()), what="four sends")
    assert [s["msgtype"] for s in sends] == ["text", "image", "image", "text"]
    assert sends[0]["text"]["content"] == "请看" and "invoice.pdf" in sends[3]["text"]["content"]
    uploads = wechat.received(UPLOAD)
    assert JPEG in uploads[0].body and THUMB in uploads[1].body


def test_cards_and_pictures_wechat_no_longer_has_become_readable_lines(start_slack, slack, wechat):
    wechat.script("GET /mmbiz_png/gone", (404, b"not found"))
    service = start_slack()
    push(service, "wechat/push.miniprogrampage.json", FromUserName=OPENID, Title="夏季新品", PagePath="pages/item?id=9")
    push(service, "wechat/push.image.json", FromUserName=OPENID, PicUrl=f"{wechat.url}/mmbiz_png/gone", MsgId=2002)
    root = root_of(slack)
    texts = slack.wait_for(lambda: (lambda t: t if len(t) == 2 else None)(slack.texts(root.ts)), what="two lines")
    assert "Mini Program card" in texts[0] and "夏季新品" in texts[0] and "pages/item?id=9" in texts[0]
    assert "[image]" in texts[1] and "/mmbiz_png/gone" in texts[1]


def test_only_people_in_relay_threads_reach_the_user(start_slack, slack, wechat):
    service = start_slack()
    write(service, "hello", 1)
    root = root_of(slack)
    without_authorizations = json.loads(slack.envelope(slack.reply(root.ts, "own post, unnamed", user=BOT_USER)))
    del without_authorizations["authorizations"]  # only auth.test tells the bot user apart here
    ignored = [
        slack.reply(root.ts, "another bot", user=None, bot_id="B0OTHER001", subtype="bot_message"),
        slack.reply(root.ts, "relay echo", user=BOT_USER, bot_id=BOT_ID),
        slack.reply(root.ts, "relay upload", user=BOT_USER, subtype="file_share", files=[]),
        slack.reply(root.ts, "", subtype="message_changed", hidden=True, user=None,
                    message={"type": "message", "user": AGENT, "text": "edited", "ts": "1.1", "thread_ts": root.ts}),
        slack.reply(root.ts, "", subtype="message_deleted", hidden=True, user=None, deleted_ts="1.1"),
        slack.reply(None, "top level, not in a thread"),
        slack.reply(root.ts, "another channel", channel="C0ELSEWHERE"),
        slack.reply(root.ts, "// between agents: refund approved"),
        slack.reply("1111111111.000001", "a thread the relay did not open"),
        {"type": "reaction_added", "user": AGENT, "reaction": "eyes", "item": {"type": "message", "channel": CHANNEL,
                                                                              "ts": root.ts}},
    ]
    for event in ignored:
        assert slack.send(service, event).status_code == 200
    assert slack.send(service, json.dumps(without_authorizations).encode()).status_code == 200
    assert slack.send(service, slack.reply(root.ts, "marker")).status_code == 200
    wechat.wait_for(lambda: "marker" in wechat.texts_to(OPENID), what="the marker")
    idle(service, slack)
    assert wechat.texts_to(OPENID) == ["marker"]
    assert len(slack.received("/api/auth.test")) == 1  # fetched once, then cached


def test_a_retried_event_and_a_repeated_event_id_are_relayed_once(start_slack, slack, wechat):
    service = start_slack()
    write(service, "hello", 1)
    root = root_of(slack)
    body = slack.envelope(slack.reply(root.ts, "只发一次"), "Ev0RETRY0001")
    for retry in (None, 1, 2):
        assert slack.send(service, body, retry=retry).status_code == 200
    same_message = json.loads(body)
    same_message["event_id"] = "Ev0OTHER0002"  # the same message under another event id
    assert slack.send(service, json.dumps(same_message).encode()).status_code == 200
    slack.send(service, slack.reply(root.ts, "之后"))
    wechat.wait_for(lambda: "之后" in wechat.texts_to(OPENID), what="the later reply")
    assert wechat.texts_to(OPENID) == ["只发一次", "之后"]
    assert service.metric("relay_desk_callbacks_total", desk="slack", result="duplicate") == 3


def test_forged_stale_and_missing_signatures_are_refused_and_nothing_is_queued(start_slack, slack, wechat):
    service = start_slack()
    write(service, "hello", 1)
    root = root_of(slack)
    idle(service, slack)
    event = slack.reply(root.ts, "forged")
    body = slack.envelope(event)
    now = str(int(time.time()))
    challenge = fixture_bytes("slack/url_verification.json")
    refused = [
        slack.send(service, event, x_slack_signature="v0=" + "0" * 64),
        slack.send(service, event, timestamp=int(time.time()) - 301),
        slack.send(service, event, timestamp=int(time.time()) + 301),
        slack.send(service, event, x_slack_signature=None),
        slack.send(service, event, x_slack_request_timestamp=None),
        slack.send(service, body, x_slack_signature=sign(now, body, "not-the-secret"), timestamp=now),
        slack.send(service, body + b" ", x_slack_signature=sign(now, body), timestamp=now),  # body changed
        service.post(EVENTS, challenge, {"content-type": "application/json"}),  # unsigned challenge
        slack.send(service, challenge, x_slack_signature=sign(now, challenge, "not-the-secret"), timestamp=now),
    ]
    assert [r.status_code for r in refused] == [401] * len(refused)
    assert all(r.json()["error"] for r in refused)
    assert service.metric("relay_desk_callbacks_total", desk="slack", result="accepted") == 0
    assert service.metric("relay_outbox_jobs", status="pending") == 0
    assert "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" not in " ".join(r.text for r in refused)

    signed = slack.send(service, challenge)
    assert (signed.status_code, signed.json()) == (200, {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    assert wechat.sends() == [] and "forged" not in service.logs()


def test_rate_limit_storms_keep_order_and_lose_nothing(start_slack, slack):
    slack.script(POST, RATE_LIMITED, RATE_LIMITED, (200, {"ok": False, "error": "ratelimited"}, {"retry-after": "1"}))
    service = start_slack()
    for n in range(4):
        write(service, f"a{n}", 100 + n)
        write(service, f"b{n}", 200 + n, openid=OTHER)
    mine, theirs = root_of(slack), root_of(slack, OTHER)
    slack.wait_for(lambda: slack.texts(mine.ts) == ["a0", "a1", "a2", "a3"], timeout=30, what="a0..a3 in order")
    slack.wait_for(lambda: slack.texts(theirs.ts) == ["b0", "b1", "b2", "b3"], timeout=30, what="b0..b3 in order")
    assert len(slack.roots()) == 2
    assert len([r for r in slack.received(POST, ok_only=False) if r.status == 429]) == 2
    assert slack.received("/api/conversations.history") == slack.received("/api/conversations.replies") == []


def test_the_pace_meets_slacks_limit_instead_of_hitting_it(start_slack, slack):
    slack.rate = 1.0  # as Slack: about a post a second per channel, a short burst allowed
    service = start_slack(SLACK_POSTS_PER_MINUTE="50")  # a little under it, so that timing jitter cannot hit it
    started = time.monotonic()
    for n in range(4):
        write(service, f"a{n}", 100 + n)
        write(service, f"b{n}", 200 + n, openid=OTHER)
    mine, theirs = root_of(slack), root_of(slack, OTHER)
    slack.wait_for(lambda: slack.texts(mine.ts) == ["a0", "a1", "a2", "a3"], timeout=30, what="a0..a3 in order")
    slack.wait_for(lambda: slack.texts(theirs.ts) == ["b0", "b1", "b2", "b3"], timeout=30, what="b0..b3 in order")
    assert [r.status for r in slack.received(POST, ok_only=False)] == [200] * 10  # not one 429
    assert time.monotonic() - started >= 7 * 1.2 - 0.5  # ten posts: three at once, then one every 1.2 s


def test_ok_false_errors_are_retried_waited_out_or_dead_lettered_as_slack_means_them(start_slack, slack):
    slack.script(POST, (200, {"ok": False, "error": "internal_error"}), (503, b"unavailable"))
    service = start_slack()
    write(service, "hello", 1)
    root = root_of(slack)
    slack.wait_for(lambda: slack.texts(root.ts) == ["hello"], timeout=20, what="the message after two failures")
    assert len(slack.roots()) == 1

    slack.script(POST, (200, {"ok": False, "error": "msg_too_long"}))  # refused for good: a dead letter
    write(service, "too long", 2)
    slack.wait_for(lambda: service.metric("relay_outbox_jobs", status="dead") == 1, what="a dead letter")
    assert "msg_too_long" in service.logs() and slack.texts(root.ts) == ["hello"]
    service.stop()

    service = start_slack(SLACK_CHANNEL="C0NOWHERE1")  # the bot is not in this channel yet
    write(service, "waiting", 3, openid=OTHER)
    slack.wait_for(lambda: "not_in_channel" in service.logs(), what="the refusal, logged")
    assert "refused the relay's credentials" in service.logs()
    assert service.metric("relay_outbox_jobs", status="dead") == 1  # the one above (same store): no new one
    slack.channels = (CHANNEL, "C0NOWHERE1")  # an admin invites the bot: what waited is posted
    root = root_of(slack, OTHER)
    slack.wait_for(lambda: slack.texts(root.ts) == ["waiting"], timeout=20, what="the message that waited")


def test_a_post_whose_answer_was_lost_is_found_not_posted_again(start_slack, slack, wechat):
    slack.lose_answers = 1  # the root is posted, its answer lost
    service = start_slack()
    write(service, "hello", 1)
    root = root_of(slack)
    slack.wait_for(lambda: slack.texts(root.ts) == ["hello"], timeout=20, what="the message under the one root")
    slack.lose_answers = 1  # now a message in the thread
    write(service, "again", 2)
    slack.wait_for(lambda: slack.texts(root.ts) == ["hello", "again"], timeout=20, what="the second message once")
    idle(service, slack)
    assert len(slack.roots()) == 1 and slack.texts(root.ts) == ["hello", "again"]
    assert len(slack.received("/api/conversations.history")) == 1
    assert len(slack.received("/api/conversations.replies")) == 1


def test_a_root_is_kept_before_the_message_so_a_retry_posts_neither_twice(start_slack, slack, wechat):
    wechat.script("GET /mmbiz_png/p", *[(200, PNG, {"content-type": "image/png"})] * 2)  # fetched per attempt
    slack.script("/api/files.getUploadURLExternal", (503, b"unavailable"))
    service = start_slack()
    push(service, "wechat/push.image.json", FromUserName=OPENID, PicUrl=f"{wechat.url}/mmbiz_png/p", MsgId=1)
    root = root_of(slack)
    slack.wait_for(lambda: [p for p in slack.in_thread(root.ts) if p.files], timeout=20, what="the picture")
    slack.thread_failures = [(502, b"bad gateway"), (200, {"ok": False, "error": "service_unavailable"})]
    write(service, "hello", 2)
    slack.wait_for(lambda: slack.texts(root.ts) == ["", "hello"], timeout=20, what="the text after two failures")
    assert len(slack.roots()) == 1


def test_unreachable_slack_delays_delivery_without_loss(start_slack, slack):
    port = free_port()
    service = start_slack(SLACK_API_BASE=f"http://127.0.0.1:{port}/api")
    for n in range(3):
        write(service, f"m{n}", 10 + n)
    slack.wait_for(lambda: service.metric("relay_deliveries_total", kind="deliver", result="retry") >= 2,
                   what="failed attempts")
    late = FakeSlack(port=port)
    try:
        root = root_of(late)
        late.wait_for(lambda: late.texts(root.ts) == ["m0", "m1", "m2"], timeout=30, what="the messages, in order")
        assert len(late.roots()) == 1
    finally:
        late.close()


def test_refused_replies_are_shown_in_the_thread(start_slack, slack, wechat):
    wechat.script(SEND, (200, {"errcode": 45015, "errmsg": "response out of time limit"}),
                  (200, {"errcode": 45047, "errmsg": "out of response count limit"}))
    service = start_slack()
    write(service, "hello", 1)
    root = root_of(slack)
    slack.send(service, slack.reply(root.ts, "太晚了"))
    warning = slack.wait_for(lambda: [t for t in slack.texts(root.ts) if "Not delivered" in t], what="a warning")[0]
    assert "48-hour window" in warning and "太晚了" in warning
    write(service, "I'm back", 2)  # the window reopens; the quota is used up this time
    slack.send(service, slack.reply(root.ts, "第六条"))
    slack.wait_for(lambda: any("quota" in t and "第六条" in t for t in slack.texts(root.ts)), what="the quota warning")


def test_close_then_a_new_thread_links_the_old_one(start_slack, slack, wechat):
    service = start_slack()
    write(service, "hello", 1)
    first = root_of(slack)
    slack.send(service, slack.reply(first.ts, "!close"))
    slack.wait_for(lambda: any(t.startswith(":white_check_mark: Closed by <@U0AGENT001>") for t in slack.texts(first.ts)),
                   what="the closing note")
    write(service, "again", 2)
    second = root_of(slack, count=2)
    assert f"p{first.ts.replace('.', '')}" in second.text  # the permalink of the old thread
    slack.wait_for(lambda: slack.texts(second.ts) == ["again"], what="the message in the new thread")
    slack.send(service, slack.reply(first.ts, "from the old thread"))  # still the same user
    wechat.wait_for(lambda: wechat.texts_to(OPENID) == ["from the old thread"], what="the reply")


def test_a_user_back_after_thread_days_gets_a_new_thread(start_slack, slack):
    service = start_slack(SLACK_THREAD_DAYS="2")
    write_old(service, "last week", 1, created=int(time.time()) - 3 * 86400)
    first = root_of(slack)
    slack.wait_for(lambda: slack.texts(first.ts) == ["last week"], what="the old message")
    write(service, "today", 2)
    second = root_of(slack, count=2)
    assert f"p{first.ts.replace('.', '')}" in second.text
    write(service, "still today", 3)
    slack.wait_for(lambda: slack.texts(second.ts) == ["today", "still today"], what="both in the new thread")


def test_agent_names_mentions_and_long_replies(start_slack, slack, wechat):
    service = start_slack(SLACK_AGENT_NAMES="on")
    write(service, "hello", 1)
    root = root_of(slack)
    slack.send(service, slack.reply(root.ts, "<@U0AGENT002> 会联系您，见 <#C024BE7LR|faq>"))
    slack.send(service, slack.reply(root.ts, "很长的回复。" * 500, user=OTHER_AGENT))  # 9 000 bytes
    texts = wechat.wait_for(lambda: (lambda t: t if len(t) >= 6 else None)(wechat.texts_to(OPENID)),
                            what="the replies")
    assert texts[0] == "Alice: @Bob 会联系您，见 #faq"
    pieces = texts[1:]
    assert all(p.startswith("Bob: ") and len(p.encode()) <= 2000 for p in pieces)
    assert "".join(p[len("Bob: "):] for p in pieces) == "很长的回复。" * 500
    assert len(slack.received("/api/users.info")) == 2  # each name once, then cached
