"""What every desk promises, run over every desk in tests/contract/drivers.py: a user's message reaches
the desk once even when its delivery is retried; an agent's reply reaches the user once even when the
desk repeats its callback; forged or stale callbacks are refused with nothing queued; a reply WeChat
refuses is reported where the desk can show it; an unreachable desk delays delivery without loss and
keeps order."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import fresh_push
from tests.contract.drivers import APP, DRIVERS, DeskDriver, user_texts
from tests.fakes.wechat import SEND, FakeWeChat
from tests.service import Service

OPENID = "oContractUser-0001"
CLOUD_RUN = {"x-wx-source": "other", "x-wx-appid": APP, "content-type": "application/json"}


@pytest.fixture(params=DRIVERS, ids=[driver.name for driver in DRIVERS])
def driver(request: pytest.FixtureRequest, wechat: FakeWeChat) -> Iterator[DeskDriver]:
    made = request.param(wechat)
    yield made
    made.close()


@pytest.fixture
def service(start_service: Callable[..., Service], driver: DeskDriver) -> Service:
    started = start_service(**{"RELAY_DESK": driver.name, "WEBHOOK_URL": None, "WEBHOOK_SECRET": None,
                               **driver.env()})
    driver.attach(started)
    return started


def write(service: Service, text: str, msg_id: int) -> None:
    answer = service.post("/", fresh_push("wechat/push.text.json", FromUserName=OPENID, Content=text, MsgId=msg_id),
                          CLOUD_RUN)
    assert (answer.status_code, answer.text) == (200, "success")


def open_conversation(service: Service, driver: DeskDriver) -> None:
    """The user writes, and the desk has it (or, for a desk that takes no words, the hand-over is out)."""
    write(service, "hello", 1)
    if driver.takes_user_messages:
        driver.wechat.wait_for(lambda: driver.seen(OPENID) == ["hello"], what="the first message at the desk")


def needs_user_messages(driver: DeskDriver) -> None:
    if not driver.takes_user_messages:
        pytest.skip(f"the {driver.name} desk takes no user messages (see its driver)")


def needs_remote(driver: DeskDriver) -> None:
    if not driver.remote:
        pytest.skip(f"the {driver.name} desk lives in the relay: nothing to fail or be down (see its driver)")


def test_user_message_reaches_the_desk_once_when_its_delivery_is_retried(service, driver, wechat):
    needs_user_messages(driver)
    needs_remote(driver)
    driver.fail_next_deliveries(2)
    write(service, "hello", 1)
    write(service, "hello", 1)  # WeChat's own redelivery of the same MsgId
    write(service, "marker", 2)
    wechat.wait_for(lambda: driver.seen(OPENID)[-1:] == ["marker"], timeout=20, what="the marker at the desk")
    assert driver.seen(OPENID) == ["hello", "marker"]


def test_agent_reply_reaches_the_user_once_when_the_desk_repeats_its_callback(service, driver, wechat):
    open_conversation(service, driver)
    first = driver.reply(service, OPENID, "您好", "r-1")
    again = driver.reply(service, OPENID, "您好", "r-1")
    assert first.status_code < 300 and again.status_code < 300, (first.text, again.text)
    driver.reply(service, OPENID, "marker", "r-2")
    expected = {"您好", "marker"}
    wechat.wait_for(lambda: "marker" in user_texts(wechat, OPENID, expected), what="the marker reply")
    assert user_texts(wechat, OPENID, expected) == ["您好", "marker"]


@pytest.mark.parametrize("fault", ["forged", "stale"])
def test_forged_or_stale_callback_is_refused_with_nothing_queued(service, driver, wechat, fault):
    open_conversation(service, driver)
    refused = driver.reply(service, OPENID, "not from an agent", "r-bad", **{fault: True})
    assert refused.status_code == 401 and refused.json()["error"]
    driver.reply(service, OPENID, "marker", "r-ok")
    expected = {"not from an agent", "marker"}
    wechat.wait_for(lambda: "marker" in user_texts(wechat, OPENID, expected), what="the marker reply")
    assert user_texts(wechat, OPENID, expected) == ["marker"]
    assert driver.replies_accepted(service, OPENID) == 1


def test_reply_wechat_refuses_is_reported_where_the_desk_can_show_it(service, driver, wechat):
    open_conversation(service, driver)
    wechat.wait_for(lambda: service.metric("relay_outbox_jobs", status="pending") == 0, what="an idle outbox")
    wechat.script(SEND, (200, {"errcode": 45015, "errmsg": "response out of time limit"}))
    assert driver.reply(service, OPENID, "too late", "r-late").status_code < 300
    wechat.wait_for(lambda: driver.refusal_reported(service, OPENID, "too late"), what="the refusal at the desk")
    assert "too late" not in wechat.texts_to(OPENID)


def test_unreachable_desk_delays_without_loss_and_keeps_order(service, driver, wechat):
    needs_user_messages(driver)
    needs_remote(driver)
    driver.set_down(True)
    for n, text in enumerate(["one", "two", "three"], start=10):
        write(service, text, n)
    wechat.wait_for(lambda: service.metric("relay_deliveries_total", kind="deliver", result="retry") >= 2,
                    what="retries against the unreachable desk")
    assert driver.seen(OPENID) == []
    driver.set_down(False)
    wechat.wait_for(lambda: len(driver.seen(OPENID)) >= 3, timeout=20, what="the backlog at the desk")
    assert driver.seen(OPENID) == ["one", "two", "three"]
