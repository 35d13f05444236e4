"""The inbox through the cloud function's HTTP-access events: login, the conversation a push event made,
a reply sent within the same invocation, and the live feed as JSON polls (a function holds no stream)."""
from __future__ import annotations

import json
from urllib.parse import quote

from tests.cloudfunctions.conftest import APPID
from tests.cloudfunctions.harness import text_event
from tests.inbox import PASSWORD, add_agent

OPENID = "ohl4L0Rnhq7vmmbT_DaNQa4ePaz0"


def test_inbox_api_and_polled_events_through_http_access(function, wechat, tmp_path):
    database = f"sqlite:///{tmp_path}/relay.db"
    fn = function(RELAY_DESK=None)
    assert fn.push(text_event("函数里的消息", "m-1")) == "success"
    add_agent(database, "alice", admin=True)
    json_type = {"content-type": "application/json"}
    login = fn.post("/inbox/api/login", json.dumps({"name": "alice", "password": PASSWORD}), json_type)
    assert login.status_code == 200, login.text
    session = {"cookie": login.headers["set-cookie"].split(";")[0], "x-csrf-token": login.json()["csrf_token"]}
    assert fn.http("GET", "/inbox/api/me", headers=session).json()["live"] == "poll"

    [conversation] = fn.http("GET", "/inbox/api/conversations", headers=session).json()["conversations"]
    assert (conversation["id"], conversation["last_message"]["text"]) == (f"{APPID}:{OPENID}", "函数里的消息")
    feed = fn.http("GET", "/inbox/api/events", headers=session)  # no stream here: a JSON poll
    assert feed.headers["content-type"].startswith("application/json") and feed.json()["events"] == []

    path = "/inbox/api/conversations/" + quote(conversation["id"], safe="")
    answer = fn.post(path + "/reply", json.dumps({"text": "函数里的回复"}), {**session, **json_type})
    assert answer.status_code == 202
    assert wechat.texts_to(OPENID) == ["函数里的回复"]  # sent before the invocation returned
    polled = fn.http("GET", "/inbox/api/events", headers=session,
                     params={"after": str(feed.json()["last_id"]), "wait": "0"}).json()
    # each event carries its message as it is now: by this poll the reply was sent
    assert [(e["type"], e["message"]["state"]) for e in polled["events"]] == [("message", "sent"), ("state", "sent")]
    assert fn.post(path + "/reply", json.dumps({"text": "forged"}), {"cookie": session["cookie"], **json_type}) \
        .status_code == 403
    assert fn.http("GET", "/inbox/api/conversations").status_code == 401
