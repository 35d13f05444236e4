"""Crash and scale: SIGKILL with jobs in flight, and two replicas sharing one MariaDB database."""
from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import fresh_push
from tests.fakes.webhook import post_reply

HEADERS = {"x-wx-source": "other", "x-wx-appid": "wxapp0000000001"}
USERS = ["ua", "ub", "uc"]


def push(service, user: str, n: int) -> None:
    body = fresh_push("wechat/push.text.json", FromUserName=user, Content=f"{user}-{n}", MsgId=hash((user, n)) & 0xFFFFFFFFFFFF)
    assert service.post("/", body, HEADERS).text == "success"


def test_sigkill_with_jobs_in_flight_loses_nothing_and_sends_none_twice(start_service, wechat, desk):
    wechat.down = 503  # WeChat is failing: every reply is pending in the outbox when we kill
    service = start_service()
    for n in range(4):
        for user in USERS:
            push(service, user, n)
    desk.wait_for(lambda: len(desk.events("message")) == 12, timeout=20)
    for n in range(4):
        for user in USERS:
            assert post_reply(service, {"id": f"{user}-r{n}", "conversation_id": f"wxapp0000000001:{user}",
                                            "text": f"to {user} #{n}"}).status_code == 202
    wechat.wait_for(lambda: len(wechat.received("/cgi-bin/message/custom/send", ok_only=False)) >= 3)
    desk.down = 503
    push(service, "ua", 99)  # accepted while the desk is down too
    service.kill()

    wechat.down = desk.down = None
    start_service()
    wechat.wait_for(lambda: len(wechat.sends()) == 12, timeout=40, what="all 12 replies after the restart")
    desk.wait_for(lambda: any(e.get("text") == "ua-99" for e in desk.events("message")), timeout=20)
    sends = wechat.sends()
    assert not [t for t, c in Counter(json.dumps(s) for s in sends).items() if c > 1]
    for user in USERS:
        assert wechat.texts_to(user) == [f"to {user} #{n}" for n in range(4)]  # order kept per user


def test_two_replicas_on_one_mariadb_deliver_each_message_once(start_service, wechat, desk, mariadb_url):
    first = start_service(DATABASE_URL=mariadb_url)
    second = start_service(DATABASE_URL=mariadb_url)
    replicas = [first, second]
    jobs = [(replicas[i % 2], user, n) for i, (user, n) in enumerate((u, n) for n in range(10) for u in USERS)]
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda job: push(*job), jobs))
    desk.wait_for(lambda: len(desk.events("message")) >= 30, timeout=30)
    texts = Counter(e["text"] for e in desk.events("message"))
    assert len(texts) == 30 and set(texts.values()) == {1}

    def answer(job):
        index, user, n = job
        return post_reply(replicas[index % 2], {"id": f"{user}-{n}", "conversation_id": f"wxapp0000000001:{user}",
                                                     "text": f"{user}:{n}"}).status_code

    replies = [(i, u, n) for i, (u, n) in enumerate((u, n) for n in range(10) for u in USERS)]
    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(answer, replies)) == {202}
    wechat.wait_for(lambda: len(wechat.sends()) >= 30, timeout=30)
    sent = Counter(s["text"]["content"] for s in wechat.sends())
    assert len(sent) == 30 and set(sent.values()) == {1}
    for replica in replicas:  # both replicas did real work
        assert '"reply sent"' in replica.logs() or '"delivered to desk"' in replica.logs()
