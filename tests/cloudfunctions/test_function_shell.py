"""The Cloud Run scenarios once more through main_handler: probe, push, duplicate, desk callback,
undeliverable reply, outages drained by the timer, both shells on one database, and the built zip."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile

from cloudfunctions.build import build
from tests.cloudfunctions.conftest import APPID
from tests.cloudfunctions.harness import text_event
from tests.conftest import fixture_json
from tests.fakes.webhook import HOOK, post_reply
from tests.fakes.wechat import SEND, TOKEN


def test_probe_event_answered_success(function):
    assert function().push(fixture_json("wechat/probe.CheckContainerPath.json")) == "success"


def test_push_delivered_within_the_same_invocation(function, desk):
    fn = function()
    assert fn.push(text_event("测试", "49d72d67b16d115e7935ac386f2f0fa41535298877_1555684067")) == "success"
    [event] = desk.events("message")  # no waiting: delivered before the handler returned
    assert (event["text"], event["app_id"]) == ("测试", APPID)
    assert event["id"] == f"{APPID}:49d72d67b16d115e7935ac386f2f0fa41535298877_1555684067"


def test_duplicate_push_relayed_once(function, desk):
    fn = function()
    for _ in range(3):
        assert fn.push(text_event("same", "m-1")) == "success"
    assert [e["text"] for e in desk.events("message")] == ["same"]


def test_desk_reply_over_http_event_sent_with_stable_token(function, wechat, desk):
    fn = function()
    fn.push(text_event("hi", "m-1"))
    conversation = desk.events("message")[0]["conversation_id"]
    answer = post_reply(fn, {"id": "r1", "conversation_id": conversation, "text": "hello from the desk"})
    assert (answer.status_code, answer.json()) == (202, {"status": "accepted"})
    assert wechat.texts_to("ohl4L0Rnhq7vmmbT_DaNQa4ePaz0") == ["hello from the desk"]
    assert wechat.received(SEND)[-1].query["access_token"] == wechat.current_token
    assert len(wechat.received(TOKEN)) == 1
    assert post_reply(fn, {"id": "r1", "conversation_id": conversation, "text": "x"}).json() == {"status": "duplicate"}
    assert post_reply(fn, {"id": "r2", "conversation_id": conversation, "text": "x"}, secret="forged").status_code == 401


def test_undeliverable_reply_reported_to_desk(function, wechat, desk):
    wechat.script(SEND, (200, {"errcode": 45015, "errmsg": "response out of time limit"}))
    fn = function()
    fn.push(text_event("hi", "m-1"))
    conversation = desk.events("message")[0]["conversation_id"]
    post_reply(fn, {"id": "late", "conversation_id": conversation, "text": "too late"})
    desk.wait_for(lambda: fn.tick() is not None and desk.events("undeliverable"), what="the notice")
    assert desk.events("undeliverable")[0]["reason"] == "window_closed"


def test_outage_left_for_the_timer_keeps_order(function, desk):
    desk.down = 503
    fn = function()
    for n in range(3):
        assert fn.push(text_event(f"m{n}", f"id-{n}")) == "success"  # stored and acknowledged despite the outage
    assert desk.events("message") == []
    desk.down = None
    desk.wait_for(lambda: fn.tick() is not None and len(desk.events("message")) == 3, timeout=20,
                  what="the timer draining the outbox")
    assert [e["text"] for e in desk.events("message")] == ["m0", "m1", "m2"]


def test_bad_push_event_refused_not_stored(function, desk):
    fn = function()
    assert fn.push({"MsgType": "text", "CreateTime": 1}) == {"error": "a push needs MsgType and FromUserName"}
    assert fn.invoke("not an event") == {"error": "an event must be a JSON object"}
    assert desk.events() == []


def test_function_and_cloud_run_share_one_database(function, start_service, wechat, desk, mariadb_url):
    fn = function(DATABASE_URL=mariadb_url)
    service = start_service(DATABASE_URL=mariadb_url, WX_APPID=APPID, WX_SECRET="fn-secret")
    fn.push(text_event("via function", "m-1"))
    conversation = desk.events("message")[0]["conversation_id"]
    assert post_reply(service, {"id": "r", "conversation_id": conversation, "text": "via cloud run"}).status_code == 202
    wechat.wait_for(lambda: wechat.sends(), what="the Cloud Run replica sending the reply")
    fn.tick()
    assert wechat.texts_to("ohl4L0Rnhq7vmmbT_DaNQa4ePaz0") == ["via cloud run"]


def test_built_zip_runs_alone_in_a_fresh_interpreter(tmp_path, wechat, desk):
    archive = build(tmp_path / "relay-function.zip")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(unpacked)
        names = zf.namelist()
    assert {"index.py", "config.json", "core/relay.py"} <= set(names)
    assert json.loads((unpacked / "config.json").read_text())["triggers"][0]["type"] == "timer"
    wechat.require_token = True
    event = text_event("from the zip", "zip-1")
    script = (
        "import json, sys\n"
        "sys.path[:0] = [sys.argv[1]]\n"
        "import index\n"
        "assert 'quart' not in sys.modules\n"
        "print(json.dumps(index.main_handler(json.loads(sys.argv[2]), {'time_limit_in_ms': 10000})))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/zip.db", "WX_API_BASE": wechat.url,
           "WX_APPID": APPID, "WX_SECRET": "s", "RELAY_DESK": "webhook", "WEBHOOK_URL": desk.url + HOOK,
           "WEBHOOK_SECRET": desk.secret, "RELAY_LOG_LEVEL": "warning"}
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script, str(unpacked), json.dumps(event)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == "success"
    assert [e["text"] for e in desk.events("message")] == ["from the zip"]


def test_unsigned_push_over_http_access_refused(function, desk):
    fn = function()
    answer = fn.post("/", json.dumps(text_event("forged", "f-1")), {"x-wx-source": "other"})
    assert answer.status_code == 403 and "signed" in answer.json()["error"]
    assert desk.events() == []


def test_drain_cut_off_by_the_budget_counts_an_attempt_and_loses_nothing(function, desk):
    import threading

    release = threading.Event()
    desk.answer = lambda recorded: (release.wait(5), (200, {"ok": True}))[1]  # a desk slower than the budget
    fn = function()
    assert fn.invoke(text_event("slow", "s-1"), {"time_limit_in_ms": 1500,
                     "environment": json.dumps({"WX_APPID": APPID})}) == "success"
    release.set()
    desk.answer = type(desk).answer.__get__(desk)
    desk.wait_for(lambda: fn.tick() is not None and [e for e in desk.events("message") if e["text"] == "slow"],
                  timeout=20, what="the cut-off job delivered by a later timer run")


def test_body_limit_holds_over_http_access(function, desk):
    fn = function(RELAY_MAX_BODY="4096")
    answer = fn.post("/webhook/reply", b"{" + b" " * 5000 + b"}", {"content-type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"]


def test_the_function_refuses_an_implicit_sqlite_with_one_line(function):
    fn = function(DATABASE_URL=None)
    answer = fn.push(text_event("hello", "m-1"))
    assert "MySQL is not configured" in answer["error"] and "MYSQL_ADDRESS" in answer["error"]
