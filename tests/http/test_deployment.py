"""What a deployer meets (issue 15): no silent SQLite where files do not last, one-line start-up errors
for the store, a secret push path, and a start-up line that says what is running."""
from __future__ import annotations

import json
import secrets

import pytest

from core import __version__
from tests.conftest import MARIADB, fresh_push

HEADERS = {"x-wx-source": "other", "x-wx-appid": "wx8bd01c9a583478cf", "content-type": "application/json"}


def exits_with_one_line(service, *expected: str) -> str:
    assert service.proc.wait(30) != 0
    logs = service.logs()
    assert "Traceback" not in logs, logs[-2000:]
    line = next(row for row in logs.splitlines() if "configuration error" in row)
    for text in expected:
        assert text in line, line
    return line


def test_the_image_refuses_an_implicit_sqlite_and_accepts_an_explicit_one(start_service, tmp_path):
    refused = start_service(wait=False, RELAY_STORE_EXPLICIT="on", DATABASE_URL=None)
    exits_with_one_line(refused, "MySQL is not configured", "MYSQL_ADDRESS", "DATABASE_URL")
    explicit = start_service(RELAY_STORE_EXPLICIT="on", DATABASE_URL=f"sqlite:///{tmp_path}/chosen.db")
    assert explicit.post("/", fresh_push("wechat/push.text.json"), HEADERS).text == "success"


@pytest.mark.parametrize("url,expected", [
    ("mysql://root:@127.0.0.1:1/relay", ["cannot reach MySQL at 127.0.0.1:1", "MYSQL_ADDRESS"]),
    (f"{MARIADB}/no_such_database_here", ["no database 'no_such_database_here'", "MYSQL_DATABASE"]),
    ("mysql://nobody:wrong@127.0.0.1:3306/relay", ["refused user 'nobody'", "MYSQL_PASSWORD"]),
    ("sqlite:///no/such/dir/relay.db", ["cannot open the SQLite file", "DATABASE_URL"]),
], ids=["unreachable", "missing-database", "wrong-credentials", "sqlite-path"])
def test_store_faults_at_start_up_give_one_line_naming_the_variable(start_service, url, expected):
    line = exits_with_one_line(start_service(wait=False, DATABASE_URL=url), *expected)
    assert "wrong" not in line  # the password is never repeated


def test_a_secret_push_path_takes_pushes_and_slash_refuses_them(start_service, desk):
    path = "/wx/" + secrets.token_urlsafe(24)
    service = start_service(WX_PUSH_PATH=path)
    refused = service.post("/", fresh_push("wechat/push.text.json", Content="on slash"), HEADERS)
    assert refused.status_code == 404
    assert service.post(path, fresh_push("wechat/push.text.json", MsgId=2, Content="marker"), HEADERS).text == "success"
    desk.wait_for(lambda: desk.events("message"))
    assert [e["text"] for e in desk.events("message")] == ["marker"]
    assert path not in service.logs()


def test_start_up_says_what_is_running_and_warns_about_header_trust_on_slash(start_service):
    service = start_service(WX_SECRET="s3cret-value", WX_APPID="wxapp")
    lines = [json.loads(row) for row in service.logs().splitlines() if row.startswith("{")]
    started = next(line for line in lines if line["event"] == "relay started")
    assert (started["version"], started["store"], started["desks"], started["push_trust"]) == (
        __version__, "sqlite", ["webhook"], "header")
    assert started["token"].startswith("stable_token")
    assert "s3cret-value" not in service.logs()
    assert any(line["level"] == "warning" and "WX_PUSH_PATH" in line["event"] for line in lines)
    quiet = start_service(WX_PUSH_PATH="/wx/" + "a" * 20)
    assert "WX_PUSH_PATH to a secret path" not in quiet.logs()
