"""The agent page and the sandbox in a real browser: a sandbox user writes, the agent sees it live and
answers, the sandbox shows the answer; refusals, a phone screen and Chinese."""
from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Browser, Page, Request, expect

from tests.browser.conftest import PHONE, log_in, png, screenshot
from tests.polling import eventually
from tests.service import Service

# Records the browser notifications the page shows (the real constructor still runs).
RECORD_NOTIFICATIONS = """
window.shown = [];
const Real = window.Notification;
window.Notification = class extends Real {
  constructor(title, options) { super(title, options); window.shown.push([title, options.body]); }
};
"""


def user_writes(sandbox: Page, text: str) -> None:
    sandbox.fill("#text", text)
    sandbox.press("#text", "Enter")
    expect(sandbox.locator(".mine .bubble").last).to_have_text(text)


def agent_sends(inbox: Page, text: str) -> None:
    inbox.fill("#composer-text", text)
    inbox.press("#composer-text", "Enter")
    expect(inbox.locator("#composer-text")).to_have_value("")


def test_agent_sees_a_sandbox_user_live_and_the_answer_reaches_the_sandbox(open_page: Callable[..., Page]):
    inbox = open_page("/inbox")
    changes: list[Request] = []
    inbox.on("request", lambda r: changes.append(r) if "/inbox/api/" in r.url and r.method != "GET" else None)
    log_in(inbox)
    inbox.evaluate("window.notReloaded = true")
    user_writes(open_page("/sandbox"), "Do you ship to Hong Kong?")  # another user
    sandbox = open_page("/sandbox")
    sandbox.fill("#session-from", "order-1234")
    sandbox.click("#session-form button")
    user_writes(sandbox, "Where is my order 1234?")

    row = inbox.locator(".conversation", has_text="Where is my order 1234?")
    expect(row).to_be_visible()  # arrived by the event stream: the page was not reloaded
    expect(row.locator(".unread")).to_have_text("2")  # opening the chat and the message
    expect(row.locator(".window")).to_have_text(re.compile(r"^4[78] h left$"))
    expect(inbox).to_have_title("(3) Inbox")
    row.click()
    expect(inbox.locator(".system")).to_have_text("The user opened the chat from “order-1234”")
    expect(inbox.locator(".message.in .bubble")).to_have_text("Where is my order 1234?")
    expect(inbox).to_have_title("(1) Inbox")  # this one read; the other user's message is not

    inbox.fill("#composer-text", "It ships")
    inbox.press("#composer-text", "Shift+Enter")
    inbox.keyboard.type("today.")
    expect(inbox.locator("#composer-text")).to_have_value("It ships\ntoday.")  # Shift+Enter: a new line
    inbox.press("#composer-text", "Enter")
    expect(inbox.locator(".message.out .state")).to_have_text("✓ sent")
    expect(inbox.locator("#conv-meta .quota")).to_have_text("4 replies left")  # 5 after a user's message
    expect(sandbox.locator(".theirs .bubble")).to_have_text(["It ships\ntoday."])

    inbox.click("#mode-note")
    agent_sends(inbox, "Asked the warehouse")
    expect(inbox.locator(".message.note")).to_contain_text("Private note, not sent")
    inbox.click("#mode-reply")
    agent_sends(inbox, "Anything else?")
    expect(sandbox.locator(".theirs .bubble")).to_have_text(["It ships\ntoday.", "Anything else?"])  # no note

    sandbox.set_input_files("#picture", files=[{"name": "parcel.png", "mimeType": "image/png", "buffer": png()}])
    picture = inbox.locator(".message.in img")
    expect(picture).to_be_visible()
    expect(picture).to_have_js_property("naturalWidth", 240)  # loaded from the inbox's picture route

    inbox.click("#assign")
    expect(inbox.locator("#conv-meta .assignee")).to_have_text("Assigned to alice")
    inbox.click("#notify-no")  # the polite ask for notifications goes away when declined
    expect(inbox.locator("#notify-bar")).to_be_hidden()
    assert inbox.evaluate("window.notReloaded") is True
    assert changes and all(r.headers.get("x-csrf-token") for r in changes if not r.url.endswith("/login"))
    screenshot(inbox, "inbox-laptop.png")
    screenshot(sandbox, "sandbox.png")


def test_refused_reply_shows_not_delivered_and_cannot_reply(open_page: Callable[..., Page]):
    sandbox = open_page("/sandbox")
    user_writes(sandbox, "Hello?")
    with sandbox.expect_response(lambda r: r.url.endswith("/sandbox/api/answer") and r.ok):
        sandbox.select_option("#answer", "window_closed")  # WeChat will answer 45015
    inbox = open_page("/inbox")
    log_in(inbox)
    inbox.locator(".conversation", has_text="Hello?").click()
    agent_sends(inbox, "Sorry for the wait")
    expect(inbox.locator(".message.out .state")).to_have_text("not delivered: the 48-hour window is closed")
    expect(inbox.locator("#conv-meta .window")).to_have_text("cannot reply")
    expect(inbox.locator("#cannot-reply")).to_be_visible()
    expect(inbox.locator("#send")).to_be_disabled()
    inbox.click("#mode-note")  # a note is still possible
    expect(inbox.locator("#send")).to_be_enabled()
    expect(inbox.locator(".conversation .window")).to_have_text("cannot reply")
    assert sandbox.locator(".theirs").count() == 0

    inbox.click("#close")  # the list follows it to the Closed tab, loaded when first shown
    expect(inbox.locator("#tab-closed")).to_have_attribute("aria-selected", "true")
    expect(inbox.locator(".conversation", has_text="Sorry for the wait")).to_be_visible()
    inbox.click("#reopen")
    expect(inbox.locator("#tab-open")).to_have_attribute("aria-selected", "true")
    expect(inbox.locator(".conversation", has_text="Sorry for the wait")).to_be_visible()


def test_page_polls_when_the_event_stream_cannot_be_held_and_notifies(open_page: Callable[..., Page]):
    inbox = open_page("/inbox", init_script=RECORD_NOTIFICATIONS, permissions=["notifications"])
    inbox.route(lambda url: url.endswith("/inbox/api/events"), lambda route: route.abort())  # no stream here
    log_in(inbox)
    expect(inbox.locator("#live-status")).to_have_attribute("data-mode", "polling")
    sandbox = open_page("/sandbox")
    user_writes(sandbox, "<b>Anyone</b> there? & <img src=x>")
    row = inbox.locator(".conversation", has_text="<b>Anyone</b> there? & <img src=x>")  # text, never markup
    expect(row).to_be_visible()
    eventually(lambda: inbox.evaluate("window.shown.length") == 1, "a browser notification")
    title, body = inbox.evaluate("window.shown[0]")
    assert title.startswith("New message: sandbox-") and body == "<b>Anyone</b> there? & <img src=x>"
    row.click()
    expect(inbox.locator(".message.in .bubble")).to_have_text("<b>Anyone</b> there? & <img src=x>")
    assert inbox.locator(".message.in .bubble b, .message.in .bubble img, .conversation img").count() == 0


def test_phone_screen_in_chinese(open_page: Callable[..., Page]):
    sandbox = open_page("/sandbox", locale="zh-CN", viewport=PHONE, is_mobile=True)
    expect(sandbox.locator("#composer button")).to_have_text("发送")
    user_writes(sandbox, "你好，我的快递到哪了？")
    inbox = open_page("/inbox", locale="zh-CN", viewport=PHONE, is_mobile=True,
                      has_touch=True)
    expect(inbox.locator("#login-form button")).to_have_text("登录")
    log_in(inbox)
    expect(inbox.locator("#tab-open")).to_contain_text("进行中")
    row = inbox.locator(".conversation", has_text="你好，我的快递到哪了？")
    expect(row).to_be_visible()
    expect(inbox.locator("#conversation")).to_be_hidden()  # one pane at a time
    row.tap()
    expect(inbox.locator(".list-pane")).to_be_hidden()
    expect(inbox.locator(".message.in .bubble")).to_have_text("你好，我的快递到哪了？")
    expect(inbox.locator("#composer-text")).to_have_attribute("placeholder", "输入回复…")
    inbox.locator("#composer-text").tap()
    agent_sends(inbox, "今天发货。")
    expect(inbox.locator(".message.out .state")).to_have_text("✓ 已发送")
    expect(sandbox.locator(".theirs .bubble")).to_have_text(["今天发货。"])
    assert inbox.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # nothing spills sideways
    screenshot(inbox, "inbox-phone.png")
    inbox.locator(".back").tap()
    expect(inbox.locator(".list-pane")).to_be_visible()


def test_admin_retries_a_dead_letter_edits_canned_replies_and_manages_agents(open_page: Callable[..., Page]):
    sandbox = open_page("/sandbox")
    user_writes(sandbox, "When are you open?")
    with sandbox.expect_response(lambda r: r.url.endswith("/sandbox/api/answer") and r.ok):
        sandbox.select_option("#answer", "api_unauthorized")  # WeChat will answer 48001: a dead letter
    inbox = open_page("/inbox")
    log_in(inbox)
    inbox.locator(".conversation", has_text="When are you open?").click()
    agent_sends(inbox, "Let me check.")
    with sandbox.expect_response(lambda r: r.url.endswith("/sandbox/api/answer") and r.ok):
        sandbox.select_option("#answer", "ok")

    inbox.click("#nav-admin")
    dead = inbox.locator("#dead-rows tr")
    expect(dead).to_have_count(1)
    expect(dead).to_contain_text("48001")
    dead.get_by_role("button").click()
    expect(inbox.locator("#dead-status")).to_have_text("Queued again.")
    expect(dead).to_have_count(0)

    inbox.fill("#canned-title", "Hours")
    inbox.fill("#canned-text", "We answer from 9:00 to 18:00.")
    inbox.click("#canned-form button[type=submit]")
    expect(inbox.locator("#canned-rows li")).to_contain_text("We answer from 9:00 to 18:00.")

    inbox.fill("#agent-name", "bob")
    inbox.click("#agent-form button[type=submit]")
    expect(inbox.locator("#agent-status")).to_have_text(re.compile(r"^bob's password, shown once: \S{10,}$"))
    bob = inbox.locator("#agent-rows tr", has_text="bob")
    bob.get_by_role("button", name="Disable").click()
    expect(bob).to_contain_text("disabled")

    inbox.click("#nav-inbox")
    inbox.click("#tab-waiting")  # replied to: waiting for the user
    inbox.locator(".conversation", has_text="Let me check.").click()
    expect(inbox.locator(".message.out .state")).to_have_text("✓ sent")  # the retried dead letter
    inbox.click("#canned-button")
    inbox.fill("#canned-filter", "hour")
    inbox.locator(".canned", has_text="Hours").click()
    expect(inbox.locator("#composer-text")).to_have_value("We answer from 9:00 to 18:00.")
    inbox.press("#composer-text", "Enter")
    expect(sandbox.locator(".theirs .bubble")).to_have_text(["Let me check.", "We answer from 9:00 to 18:00."])


def test_first_admin_is_made_through_the_set_up_link(start_service: Callable[..., Service], browser: Browser):
    service = start_service(RELAY_DESK="inbox")  # no agent yet: the service logs a one-time link
    link = re.search(r'"setup_link": "(/inbox#setup=[^"]+)"', service.logs()).group(1)
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        page.goto(service.url + link)
        page.fill("#setup-name", "chief")
        page.fill("#setup-password", "a long passphrase")
        page.fill("#setup-password-again", "a long passphrase!")
        page.press("#setup-password-again", "Enter")
        expect(page.locator("#setup-error")).to_have_text("The two passwords differ.")
        page.fill("#setup-password-again", "a long passphrase")
        page.press("#setup-password-again", "Enter")
        expect(page.locator("#me")).to_have_text("chief")
        expect(page.locator("#nav-admin")).to_be_visible()  # an admin
        assert "setup" not in page.url  # the used link is gone from the address bar
        page.reload()
        expect(page.locator("#app-view")).to_be_visible()  # the session outlives a reload
    finally:
        context.close()
