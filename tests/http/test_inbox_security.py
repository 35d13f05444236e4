"""The inbox's doors, over real HTTP on SQLite and MariaDB: set-up link, login, throttling, CSRF, expired
and foreign sessions, disabled agents. Each refusal has its status and changes nothing."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.wechat import FakeWeChat
from tests.inbox import PASSWORD, Agent, conversation_path, push, setup_token

OPENID = "oVneZ57wJnV-ObtCiGv26PRrOz2g"


@pytest.fixture
def inbox(start_service, database_url) -> Iterator[Any]:
    """The service with the inbox as default desk (RELAY_DESK unset), an admin `root` logged in through
    the set-up link, and agent `bob` added by root."""
    service = start_service(RELAY_DESK=None, DATABASE_URL=database_url)
    root = Agent(service.url)
    answer = root.http.post("/inbox/api/setup", json={"token": setup_token(service), "name": "root",
                                                      "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    root.csrf = answer.json()["csrf_token"]
    assert root.post("/inbox/api/agents", {"name": "bob", "password": PASSWORD}).status_code == 201
    service.database_url, service.root = database_url, root
    yield service
    root.close()


def run_sql(database_url: str, statement: str) -> None:
    """Move the store's clock by hand (an expired session), as time would."""
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url[len("sqlite:///"):]) as conn:
            conn.execute(statement)
        return
    import pymysql

    host_db = database_url.split("@", 1)[1]
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True,
                           database=host_db.split("/", 1)[1])
    conn.cursor().execute(statement)
    conn.close()


def test_setup_link_makes_the_first_admin_once(start_service, tmp_path):
    service = start_service(RELAY_DESK=None)
    token = setup_token(service)
    agent = Agent(service.url)
    assert agent.http.post("/inbox/api/setup", json={"token": "forged", "name": "eve", "password": PASSWORD}) \
        .status_code == 403
    assert agent.http.post("/inbox/api/setup", json={"token": token, "name": "root", "password": "short"}) \
        .status_code == 400
    answer = agent.http.post("/inbox/api/setup", json={"token": token, "name": "root", "password": PASSWORD})
    assert answer.status_code == 201 and answer.json()["agent"] == {"name": "root", "admin": True, "disabled": False}
    assert "httponly" in answer.headers["set-cookie"].lower() and "samesite=strict" in answer.headers["set-cookie"].lower()
    again = Agent(service.url).http.post("/inbox/api/setup", json={"token": token, "name": "eve", "password": PASSWORD})
    assert again.status_code == 403  # the link died with its first use
    assert agent.get("/inbox/api/me").json()["agent"]["name"] == "root"
    assert [a["name"] for a in agent.get("/inbox/api/agents").json()["agents"]] == ["root"]


def test_secure_cookie_behind_an_https_proxy(inbox):
    answer = Agent(inbox.url).http.post("/inbox/api/login", json={"name": "bob", "password": PASSWORD},
                                        headers={"x-forwarded-proto": "https"})
    assert answer.status_code == 200 and "; Secure" in answer.headers["set-cookie"]
    plain = Agent(inbox.url).login("bob")
    assert "Secure" not in plain.headers["set-cookie"]


def test_wrong_password_and_unknown_name_get_the_same_401(inbox):
    agent = Agent(inbox.url)
    wrong, unknown = agent.login("bob", "not the password"), agent.login("nobody", "not the password")
    assert (wrong.status_code, unknown.status_code) == (401, 401)
    assert wrong.json() == unknown.json() == {"error": "wrong name or password"}
    assert "set-cookie" not in wrong.headers
    assert agent.get("/inbox/api/me").status_code == 401
    assert agent.http.post("/inbox/api/login", content=b'{"name":"bob","password":"' + PASSWORD.encode() + b'"}',
                           headers={"content-type": "text/plain"}).status_code == 415  # no cross-site form posts


def test_failed_logins_throttled_per_name_even_with_the_right_password(inbox):
    agent = Agent(inbox.url)
    for _ in range(5):
        assert agent.login("bob", "guess-guess-guess").status_code == 401
    throttled = agent.login("bob")  # the right password now learns nothing
    assert throttled.status_code == 429 and 800 < int(throttled.headers["retry-after"]) <= 900
    assert agent.get("/inbox/api/me").status_code == 401
    assert agent.login("root").status_code == 200  # another name from the same address is not held up


def test_failed_logins_throttled_per_address(inbox):
    agent = Agent(inbox.url)
    for n in range(20):
        assert agent.login(f"name{n}", "guess-guess-guess").status_code == 401
    assert agent.login("bob").status_code == 429
    other = Agent(inbox.url)  # another address, as the platform's proxy reports it
    other.http.headers["x-forwarded-for"] = "203.0.113.9"
    assert other.login("bob").status_code == 200


def test_missing_or_wrong_csrf_token_refused_and_nothing_changes(inbox, wechat: FakeWeChat):
    push(inbox)
    bob = Agent(inbox.url)
    bob.login("bob")
    bob.wait_for(lambda: bob.messages(OPENID), what="the message in the inbox")
    path = conversation_path(OPENID)
    assert bob.post(path + "/reply", {"text": "forged"}, csrf=False).status_code == 403
    bob_csrf, bob.csrf = bob.csrf, "0" * 64
    assert bob.post(path + "/reply", {"text": "forged"}).status_code == 403
    assert bob.post(path + "/close", {}).status_code == 403
    assert bob.post("/inbox/api/logout").status_code == 403
    root_csrf = inbox.root.csrf
    bob.csrf = root_csrf  # another session's token is wrong too
    assert bob.post(path + "/note", {"text": "x"}).status_code == 403
    bob.csrf = bob_csrf
    assert [m["direction"] for m in bob.messages(OPENID)] == ["in"]
    assert bob.get(path).json()["conversation"]["status"] == "open"
    assert bob.get("/inbox/api/me").status_code == 200  # still logged in
    assert wechat.sends() == []


def test_foreign_logged_out_and_expired_sessions_get_401(inbox):
    forged = Agent(inbox.url)
    forged.http.cookies.set("inbox_session", "A" * 43, path="/inbox")
    assert forged.get("/inbox/api/conversations").status_code == 401
    bob = Agent(inbox.url)
    bob.login("bob")
    cookie = bob.http.cookies.get("inbox_session")
    assert bob.post("/inbox/api/logout").status_code == 200
    replay = Agent(inbox.url)
    replay.http.cookies.set("inbox_session", cookie, path="/inbox")
    assert replay.get("/inbox/api/me").status_code == 401  # logout ended it server-side
    carol = Agent(inbox.url)
    carol.login("bob")
    run_sql(inbox.database_url, "UPDATE inbox_sessions SET expires_at = 1")
    assert carol.get("/inbox/api/me").status_code == 401
    assert carol.post("/inbox/api/canned", {"title": "t", "text": "x"}).status_code == 401
    assert inbox.root.get("/inbox/api/canned").status_code == 401  # every session expired, root's too


def test_agent_disabled_while_logged_in_is_refused_at_once(inbox):
    bob = Agent(inbox.url)
    bob.login("bob")
    assert bob.get("/inbox/api/conversations").status_code == 200
    assert bob.post("/inbox/api/agents/root/disable").status_code == 403  # not an admin
    assert inbox.root.post("/inbox/api/agents/bob/disable").json()["agent"]["disabled"] is True
    assert bob.get("/inbox/api/conversations").status_code == 401
    assert bob.post("/inbox/api/canned", {"title": "t", "text": "x"}).status_code == 401
    assert bob.login("bob").status_code == 401  # and cannot log in again
    assert inbox.root.post("/inbox/api/agents/root/disable").status_code == 409  # the last admin stays
    assert inbox.root.post("/inbox/api/agents/bob/enable").status_code == 200
    assert bob.login("bob").status_code == 200


def test_admin_routes_refuse_agents_and_change_nothing(inbox):
    bob = Agent(inbox.url)
    bob.login("bob")
    assert bob.post("/inbox/api/agents", {"name": "mallory", "admin": True}).status_code == 403
    assert bob.post("/inbox/api/canned", {"title": "t", "text": "x"}).status_code == 403
    assert bob.get("/inbox/api/dead").status_code == 403
    assert [a["name"] for a in bob.get("/inbox/api/agents").json()["agents"]] == ["bob", "root"]
    assert bob.get("/inbox/api/canned").json() == {"canned": []}


def test_unknown_routes_methods_and_traversal(inbox):
    root = inbox.root
    assert root.get("/inbox/api/nothing").status_code == 404
    assert root.send("DELETE", "/inbox/api/conversations").status_code == 405
    for path in ("/inbox/..%2f..%2fcore/config.py", "/inbox/.hidden", "/inbox/static/../api.py", "/inbox/x.py",
                 "/inbox/%2e%2e/__init__.py", "/inbox/missing.js"):
        answer = root.http.get(path)
        assert answer.status_code == 404 and answer.headers["content-type"].startswith("application/json"), path
