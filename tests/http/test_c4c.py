"""Black-box, C4C desk: WeChat push → activity in a fake C4C tenant → Mashup reply → send at the fake
WeChat API, over OData and SOAP, by both recipient paths; and outages, refusals, notices."""
from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import httpx
import pytest

from tests.conftest import fixture_bytes, fixture_json, fresh_push
from tests.fakes.c4c import CUST, ODATA, XSRF_COOKIE, FakeC4C
from tests.fakes.wechat import SEND

APP = "wx8bd01c9a583478cf"
OPENID = "oVneZ57wJnV-ObtCiGv26PRrOz2g"
CLOUD_RUN = {"x-wx-source": "other", "x-wx-appid": APP, "content-type": "application/json"}
INBOUND = ("c4c-mashup", "mashup-pw")
AUTH = {"authorization": "Basic " + base64.b64encode(":".join(INBOUND).encode()).decode()}
FORM = {**AUTH, "content-type": "application/x-www-form-urlencoded"}


@pytest.fixture(params=["odata", "soap"])
def api(request) -> str:
    return request.param


@pytest.fixture
def start_c4c(start_service, c4c):
    def start(api: str = "odata", **env: str):
        return start_service(**{
            "RELAY_DESK": "c4c", "C4C_BASE_URL": c4c.url, "C4C_USER": c4c.user, "C4C_PASSWORD": c4c.password,
            "C4C_CHANNEL_ID": "WXOData", "C4C_API": api, "C4C_INBOUND_USER": INBOUND[0],
            "C4C_INBOUND_PASSWORD": INBOUND[1], "C4C_CHANGE_NOTICE": "您的会员资料已更新", **env})
    return start


def write(service, text: str, msg_id: int) -> None:
    answer = service.post("/", fresh_push("wechat/push.text.json", FromUserName=OPENID, Content=text, MsgId=msg_id),
                          CLOUD_RUN)
    assert (answer.status_code, answer.text) == (200, "success")


def texts_in_c4c(c4c: FakeC4C) -> list[str]:
    return [a["Text"] for a in c4c.activities_for(OPENID)]


def wait_texts(c4c: FakeC4C, count: int) -> list[dict]:
    return c4c.wait_for(lambda: (lambda a: a if len(a) >= count else None)(c4c.activities_for(OPENID)),
                        what=f"{count} activities in C4C")


def mashup(service, reply: dict, headers: dict | None = None) -> httpx.Response:
    """The Mashup as C4C sends it: a form whose `content` is the URL-encoded JSON (spaces as '+')."""
    return service.post("/c4c/mashup", urlencode({"content": json.dumps(reply, ensure_ascii=False)}),
                        headers or FORM)


def ticket_reply(text: str, sma_id: str, original_id: str = "", ticket: str = "", private: str = "FALSE") -> dict:
    reply = fixture_json("c4c/mashup-reply.decoded.json")
    return {**reply, "original_id": original_id, "service_req_no": ticket, "sma_id": sma_id, "text": text,
            "private_ind": private}


def create_in_tenant(c4c: FakeC4C, **activity: str) -> dict:
    """An activity made in C4C itself (an agent's reply, another ticket), over OData with CSRF."""
    with httpx.Client(base_url=c4c.url + ODATA, auth=(c4c.user, c4c.password)) as tenant:
        token = tenant.get("", headers={"x-csrf-token": "fetch"}).headers["x-csrf-token"]
        created = tenant.post("SocialMediaActivityCollection", headers={"x-csrf-token": token}, json={
            "SocialMediaActivityProviderID": "WXOData", "SocialMediaChannelCode": "008", "InitiatorCode": "2",
            **activity})
    assert created.status_code == 201, created.text
    return created.json()["d"]["results"]


def test_first_contact_profile_root_follow_up_and_reply_by_original_id(start_c4c, c4c, wechat, api):
    service = start_c4c(api)
    answer = service.post("/", fresh_push("wechat/push.event.user_enter_tempsession.json", FromUserName=OPENID),
                          CLOUD_RUN)
    assert answer.text == "success"
    profile = c4c.wait_for(lambda: c4c.profiles(), what="the profile")[0]
    assert profile["SocialMediaUserProfileUserInformation"][0]["SocialMediaUserAccountID"] == OPENID

    write(service, "我的订单 & <发票> 在哪?", 5001)
    service.post("/", fresh_push("wechat/push.image.json", FromUserName=OPENID, MsgId=5002), CLOUD_RUN)
    root, follow_up = wait_texts(c4c, 2)
    assert (root["Text"], root["SocialMediaMessageID"], root["CategoryCode"]) == ("我的订单 & <发票> 在哪?", "5001", "001")
    assert follow_up["CategoryCode"] == "003" and follow_up["RootSocialMediaActivityUUID"] == root["ObjectID"]
    image = fixture_json("wechat/push.image.json")["PicUrl"]
    assert "[image]" in follow_up["Text"] and image in follow_up["Text"]
    assert len(c4c.profiles()) == 1  # found again, not created twice

    reply = ticket_reply("您好 请稍等+1", "70001", original_id="5001", ticket=c4c.ticket_for("5001") or "")
    answer = mashup(service, reply)
    assert (answer.status_code, answer.json()) == (200, {"status": "accepted"})
    wechat.wait_for(lambda: wechat.texts_to(OPENID) == ["您好 请稍等+1"], what="the reply at WeChat")
    assert mashup(service, reply).json() == {"status": "duplicate"}


def test_reply_by_ticket_when_original_id_is_empty(start_c4c, c4c, wechat, api):
    service = start_c4c(api)
    write(service, "hello", 5101)
    wait_texts(c4c, 1)
    contact = "1000443"
    c4c.link_contact(c4c.profiles()[0]["ObjectID"], contact)
    ticket = c4c.add_ticket(contact)
    assert mashup(service, ticket_reply("按工单找到您", "70101", ticket=ticket)).status_code == 200
    wechat.wait_for(lambda: wechat.texts_to(OPENID) == ["按工单找到您"], what="the reply found by ticket")


def test_private_replies_stay_in_c4c_and_json_bodies_are_accepted(start_c4c, c4c, wechat):
    service = start_c4c()
    write(service, "hi", 5201)
    wait_texts(c4c, 1)
    private = mashup(service, ticket_reply("internal note", "70201", original_id="5201", private="TRUE"))
    assert (private.status_code, private.json()) == (200, {"status": "private: not sent"})
    raw_json = service.post("/c4c/mashup", json.dumps(ticket_reply("原始 JSON", "70202", original_id="5201")),
                            {**AUTH, "content-type": "application/json"})
    wrapped = service.post("/c4c/mashup", json.dumps({"content": json.dumps(
        ticket_reply("包装的 JSON", "70203", original_id="5201"))}), AUTH)  # no content type at all
    assert raw_json.status_code == wrapped.status_code == 200
    wechat.wait_for(lambda: len(wechat.texts_to(OPENID)) == 2, what="two replies")
    assert wechat.texts_to(OPENID) == ["原始 JSON", "包装的 JSON"]


def test_survey_workflow_message_goes_to_each_open_id(start_c4c, c4c, wechat):
    service = start_c4c()
    write(service, "hi", 5301)
    wait_texts(c4c, 1)
    survey = fixture_json("c4c/mashup-survey-wkf.json")
    survey["data"][0]["openId"] = OPENID
    answer = service.post("/c4c/mashup", json.dumps(survey), {**AUTH, "content-type": "application/json"})
    assert answer.status_code == 200
    text = wechat.wait_for(lambda: wechat.texts_to(OPENID), what="the survey")[0]
    assert text.startswith("THIE IS SURVEY LINK #SURVEY2041#") and "https://surveylink" in text


def test_customer_change_notice_reads_the_wechat_id_from_the_configured_service(start_c4c, c4c, wechat):
    service = start_c4c()
    write(service, "hi", 5401)
    wait_texts(c4c, 1)
    event = fixture_json("c4c/event-notification.customer-change.json")
    c4c.set_wechat_id(event["businessObjectId"], OPENID)
    answer = service.post("/c4c/events", fixture_bytes("c4c/event-notification.customer-change.json"),
                          {**AUTH, "content-type": "application/json"})
    assert (answer.status_code, answer.json()) == (200, {"status": "accepted"})
    wechat.wait_for(lambda: wechat.texts_to(OPENID) == ["您的会员资料已更新"], what="the change notice")
    lookup = c4c.received(CUST + "CustomerCommonCollection")[0]
    assert lookup.query["$filter"] == f"ParentObjectID eq '{event['businessObjectId']}'"
    again = service.post("/c4c/events", fixture_bytes("c4c/event-notification.customer-change.json"), AUTH)
    assert again.json() == {"status": "duplicate"}  # one notice per customer per 5 minutes


@pytest.mark.parametrize("path", ["/c4c/mashup", "/c4c/events"])
def test_both_routes_require_basic_auth(start_c4c, c4c, wechat, path):
    service = start_c4c()
    body = fixture_bytes("c4c/mashup-reply.form.txt")
    wrong = {"authorization": "Basic " + base64.b64encode(b"c4c-mashup:guess").decode()}
    for headers in ({}, wrong, {"authorization": "Bearer x"}, {"authorization": "Basic !!!"}):
        answer = service.post(path, body, headers)
        assert answer.status_code == 401 and answer.json()["error"]
        assert answer.headers["www-authenticate"].startswith("Basic realm=")
    assert wechat.requests == [] and c4c.requests == []


def test_csrf_token_fetched_again_once_it_expires(start_c4c, c4c, wechat):
    service = start_c4c()
    write(service, "one", 5501)
    wait_texts(c4c, 1)
    c4c.expire_csrf()
    write(service, "two", 5502)
    wait_texts(c4c, 2)
    fetches = [r for r in c4c.requests if r.headers.get("x-csrf-token") == "fetch"]
    assert len(fetches) == 2
    refused = [r for r in c4c.modifying_requests() if r.status == 403]
    assert len(refused) == 1 and XSRF_COOKIE in refused[0].headers["cookie"]
    assert all("authorization" in r.headers for r in c4c.modifying_requests())


def test_a_token_refused_twice_is_retried_and_a_tenant_without_tokens_works(start_c4c, c4c, wechat):
    service = start_c4c()
    required = (403, {"error": {"code": "403", "message": {"lang": "en", "value": "CSRF token validation failed"}}},
                {"x-csrf-token": "Required"})
    c4c.script("POST " + ODATA + "SocialMediaUserProfileCollection", required, required)
    write(service, "despite the tokens", 5521)
    wait_texts(c4c, 1)
    assert service.metric("relay_outbox_jobs", status="dead") == 0
    c4c.csrf = False  # integration users: no token is issued or needed
    c4c.expire_csrf()
    c4c.script("POST " + ODATA + "SocialMediaActivityCollection", required)  # the old token refused once
    write(service, "no token at all", 5522)
    wait_texts(c4c, 2)
    assert "x-csrf-token" not in c4c.modifying_requests()[-1].headers


def test_soap_drops_characters_xml_cannot_carry(start_c4c, c4c, wechat):
    service = start_c4c("soap")
    write(service, "tab\there, vertical\x0btab, bell\x07", 5531)
    assert wait_texts(c4c, 1)[0]["Text"] == "tab\there, verticaltab, bell"


def test_outage_delays_but_loses_nothing_and_keeps_order(start_c4c, c4c, wechat, api):
    service = start_c4c(api)
    c4c.down = 503
    for n, text in enumerate(["第一", "第二", "第三"]):
        write(service, text, 5601 + n)
    c4c.wait_for(lambda: len([r for r in c4c.requests if r.status == 503]) >= 2, what="failed attempts")
    assert c4c.activities() == []
    c4c.down = None
    wait_texts(c4c, 3)
    assert texts_in_c4c(c4c) == ["第一", "第二", "第三"]


def test_bad_payload_is_dead_lettered_not_retried(start_c4c, c4c, wechat):
    service = start_c4c()
    write(service, "first", 5701)
    wait_texts(c4c, 1)
    c4c.script("POST " + ODATA + "SocialMediaActivityCollection",
               (400, {"error": {"code": "SY/530", "message": {"lang": "en", "value": "Text too long"}}}))
    write(service, "refused", 5702)
    write(service, "third", 5703)
    wait_texts(c4c, 2)
    assert texts_in_c4c(c4c) == ["first", "third"]
    assert service.metric("relay_outbox_jobs", status="dead") == 1
    assert len([r for r in c4c.modifying_requests() if r.status == 400]) == 1
    assert "Text too long" in service.logs()


def test_a_retried_delivery_finds_its_activity_instead_of_making_another(start_c4c, c4c, wechat, api):
    """The create went through but the answer was lost: the next attempt must find it by MsgId."""
    service = start_c4c(api)
    write(service, "first", 5801)
    root = wait_texts(c4c, 1)[0]
    create_in_tenant(c4c, CategoryCode="003", SocialMediaMessageID="5802", Text="second",
                     SocialMediaUserProfileUUID=root["SocialMediaUserProfileUUID"],
                     ParentSocialMediaActivityUUID=root["ObjectID"])
    write(service, "second", 5802)
    write(service, "third", 5803)
    wait_texts(c4c, 3)
    assert texts_in_c4c(c4c) == ["first", "second", "third"]


def test_other_events_make_no_activity(start_c4c, c4c, wechat):
    service = start_c4c()
    event = fresh_push("wechat/push.event.user_enter_tempsession.json", FromUserName=OPENID, Event="wxa_media_check")
    assert service.post("/", event, CLOUD_RUN).text == "success"
    write(service, "after the event", 5851)
    wait_texts(c4c, 1)
    assert texts_in_c4c(c4c) == ["after the event"]


def test_reply_wechat_refuses_shows_in_the_ticket(start_c4c, c4c, wechat, api):
    service = start_c4c(api)
    write(service, "hi", 5901)
    wait_texts(c4c, 1)
    wechat.script(SEND, (200, {"errcode": 45015, "errmsg": "response out of time limit"}))
    assert mashup(service, ticket_reply("too late", "70901", original_id="5901")).status_code == 200
    notice = wait_texts(c4c, 2)[1]
    assert "Not delivered to the WeChat user" in notice["Text"] and "too late" in notice["Text"]
    if api == "odata":
        assert notice["CategoryCode"] == "003" and notice["InitiatorCode"] == "1"
    assert wechat.texts_to(OPENID) == []


def test_undeliverable_reply_found_by_ticket_shows_in_that_ticket(start_c4c, c4c, wechat):
    """The agent answers in a second ticket of the user: the notice goes there, not to the relay's root."""
    service = start_c4c()
    write(service, "first ticket", 5951)
    first = wait_texts(c4c, 1)[0]
    c4c.link_contact(first["SocialMediaUserProfileUUID"], "1000443")
    second = create_in_tenant(c4c, CategoryCode="001", SocialMediaMessageID="phone-1", Text="second ticket",
                              SocialMediaUserProfileUUID=first["SocialMediaUserProfileUUID"])
    agent = create_in_tenant(c4c, CategoryCode="003", SocialMediaMessageID="agent-1", Text="answer", InitiatorCode="1",
                             SocialMediaUserProfileUUID=first["SocialMediaUserProfileUUID"],
                             ParentSocialMediaActivityUUID=second["ObjectID"])
    wechat.script(SEND, (200, {"errcode": 45047, "errmsg": "out of response count limit"}))
    reply = ticket_reply("answer", agent["ID"], ticket=c4c.ticket_for(second["ID"]))
    assert mashup(service, reply).status_code == 200
    notice = c4c.wait_for(lambda: [a for a in c4c.activities() if a["Text"].startswith("[WeChat relay]")],
                          what="the notice")[0]
    assert notice["RootSocialMediaActivityUUID"] == second["ObjectID"] != first["ObjectID"]
    assert notice["CategoryCode"] == "003" and "reply quota" in notice["Text"]


def test_reply_for_a_user_nobody_knows_is_logged_not_retried(start_c4c, c4c, wechat):
    service = start_c4c()
    answer = mashup(service, ticket_reply("for nobody", "71001", original_id="no-such-message"))
    assert answer.status_code == 200
    wechat.wait_for(lambda: service.metric("relay_deliveries_total", kind="send", result="undeliverable") == 1,
                    what="the reply counted as undeliverable")
    assert "names no WeChat user" in service.logs()
    assert service.metric("relay_deliveries_total", kind="send", result="retry") == 0
    assert [r.path for r in c4c.requests] == [ODATA + "SocialMediaActivityCollection"]  # one look-up, no retry
    assert wechat.requests == []


def test_a_profile_made_on_another_channel_resolves_the_reply_as_it_did_the_message(start_c4c, c4c, wechat):
    """Intake finds a profile by account id alone; the reply path must accept the same profile."""
    with httpx.Client(base_url=c4c.url + ODATA, auth=(c4c.user, c4c.password)) as tenant:
        token = tenant.get("", headers={"x-csrf-token": "fetch"}).headers["x-csrf-token"]
        made = tenant.post("SocialMediaUserProfileCollection", headers={"x-csrf-token": token}, json={
            "SocialMediaUserCategoryCode": "02", "SocialMediaUserProfileUserInformation": [{
                "SocialMediaChannelCode": "Z01", "ExternalPartyAccountID": "WXSOAP",
                "SocialMediaUserAccountID": OPENID, "SocialMediaUserName": "made over SOAP"}]})
    assert made.status_code == 201, made.text
    service = start_c4c()
    write(service, "hello again", 6001)
    wait_texts(c4c, 1)
    assert len(c4c.profiles()) == 1  # found, not made again
    mashup(service, ticket_reply("welcome back", "76001", original_id="6001"))
    wechat.wait_for(lambda: wechat.texts_to(OPENID) == ["welcome back"], what="the reply at WeChat")


def test_a_403_that_is_not_a_csrf_refusal_is_not_retried_as_one(start_c4c, c4c, wechat):
    service = start_c4c()
    forbidden = (403, {"error": {"code": "403", "message": {"lang": "en", "value": "No authorization"}}})
    c4c.script("POST " + ODATA + "SocialMediaActivityCollection", forbidden)
    write(service, "despite the 403", 6101)
    wait_texts(c4c, 1)
    fetches = [r for r in c4c.requests if r.method == "GET" and r.headers.get("x-csrf-token") == "fetch"]
    assert len(fetches) == 1  # the token was not fetched again for a refusal that was not about it
    assert '"a peer refused the relay\'s credentials' in service.logs()
