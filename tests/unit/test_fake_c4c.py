"""Quick checks of the fake C4C tenant itself: auth, CSRF, OData shapes, SOAP round trips."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.c4c import ODATA, SOAP, FakeC4C, literal

OPENID = "o0KlM1i2_4-zHRmDk-IWGRlA1Cjc"
ENVELOPE = ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:glob="http://sap.com/xi/SAPGlobal20/Global"><soapenv:Header/><soapenv:Body>'
            '<glob:{root}>{inner}</glob:{root}></soapenv:Body></soapenv:Envelope>')


@pytest.fixture
def client(c4c: FakeC4C) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=c4c.url, auth=(c4c.user, c4c.password)) as client:
        yield client


def fetch_token(client: httpx.Client) -> str:
    response = client.get(ODATA, headers={"x-csrf-token": "fetch"})
    assert response.status_code == 200 and "EntitySets" in response.json()["d"]
    return response.headers["x-csrf-token"]


def create_profile(client: httpx.Client, token: str, openid: str = OPENID) -> dict:
    row = {"SocialMediaChannelCode": "008", "ExternalPartyAccountID": "WXOData",
           "SocialMediaUserAccountID": openid, "SocialMediaUserName": "Jerry"}
    response = client.post(ODATA + "SocialMediaUserProfileCollection", headers={"x-csrf-token": token},
                           json={"SocialMediaUserCategoryCode": "02", "SocialMediaUserProfileUserInformation": [row]})
    assert response.status_code == 201, response.text
    return response.json()["d"]["results"]


def activity_body(profile: dict, message_id: str, **extra: str) -> dict:
    return {"CategoryCode": "001", "SocialMediaMessageID": message_id,
            "SocialMediaUserProfileUUID": profile["ObjectID"], "Text": "hello", "InitiatorCode": "2",
            "SocialMediaActivityProviderID": "WXOData", "SocialMediaChannelCode": "008", **extra}


def soap(client: httpx.Client, endpoint: str, root: str, inner: str) -> ET.Element:
    response = client.post(SOAP + endpoint, content=ENVELOPE.format(root=root, inner=inner),
                           headers={"content-type": "text/xml"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/xml")
    return ET.fromstring(response.content)[1][0]  # Envelope/Body/n0:...


def test_literal_parsing():
    assert literal("'O''Brien'") == "O'Brien"
    assert literal("''") == ""
    assert literal("O'Brien") is None and literal("'a'b'") is None and literal(None) is None


def test_requests_without_basic_auth_get_401(c4c: FakeC4C):
    for auth in (None, ("relay", "wrong")):
        response = httpx.get(c4c.url + ODATA, auth=auth)
        assert response.status_code == 401
        assert response.json()["error"]["message"]["value"] == "Unauthorized"
    assert httpx.post(c4c.url + SOAP + "querysocialmediaactivityin", content=b"<x/>").status_code == 401


def test_csrf_token_must_come_with_its_cookie(c4c: FakeC4C, client: httpx.Client):
    url = ODATA + "SocialMediaUserProfileCollection"
    response = client.post(url, json={})
    assert response.status_code == 403 and response.headers["x-csrf-token"] == "Required"
    assert response.json()["error"]["message"]["value"] == "CSRF token validation failed"

    token = fetch_token(client)
    assert "sap-XSRF_ABC_123" in client.cookies
    with httpx.Client(base_url=c4c.url, auth=(c4c.user, c4c.password)) as other:  # no cookie jar shared
        assert other.post(url, json={}, headers={"x-csrf-token": token}).status_code == 403
        other_token = fetch_token(other)
        assert other.post(url, json={}, headers={"x-csrf-token": token}).status_code == 403  # wrong session
        assert other.post(url, json={}, headers={"x-csrf-token": other_token}).status_code == 400  # passes CSRF

    profile = create_profile(client, token)
    assert len(profile["ObjectID"]) == 32 and profile["ObjectID"] == profile["ObjectID"].upper()
    assert profile["ID"] == "6066" and "SocialMediaUserProfileUserInformation" not in profile
    assert [r.status for r in c4c.modifying_requests()] == [403, 403, 403, 400, 201]


def test_expire_csrf_forces_a_new_fetch(c4c: FakeC4C, client: httpx.Client):
    token = fetch_token(client)
    create_profile(client, token)
    c4c.expire_csrf()
    response = client.post(ODATA + "SocialMediaUserProfileCollection", json={}, headers={"x-csrf-token": token})
    assert response.status_code == 403 and response.headers["x-csrf-token"] == "Required"
    assert create_profile(client, fetch_token(client), "other")["ID"] == "6067"


def test_function_import_and_user_information(c4c: FakeC4C, client: httpx.Client):
    profile = create_profile(client, fetch_token(client))
    found = client.get(ODATA + "GetSocialMediaUserProfile",
                       params={"SocialMediaUserAccountID": f"'{OPENID}'", "$format": "json"}).json()
    assert found == {"d": {"results": [profile]}}
    assert client.get(ODATA + "GetSocialMediaUserProfile",
                      params={"SocialMediaUserAccountID": "'nobody'"}).json()["d"]["results"] == []

    c4c.link_contact(profile["ObjectID"], "1000443")
    by_contact = {"BusinessPartnerInternalID": "'1000443'", "ExternalPartyAccountID": "'WXOData'"}
    assert client.get(ODATA + "GetSocialMediaUserProfile", params=by_contact).json()["d"]["results"] == [profile]
    rows = client.get(ODATA + f"SocialMediaUserProfileCollection('{profile['ObjectID']}')"
                      "/SocialMediaUserProfileUserInformation").json()["d"]["results"]
    assert [r["SocialMediaUserAccountID"] for r in rows] == [OPENID]
    missing = client.get(ODATA + "SocialMediaUserProfileCollection('00')/SocialMediaUserProfileUserInformation")
    assert missing.status_code == 404 and "error" in missing.json()

    c4c.set_wechat_id("00163E20C9511EE7B8975BD4AB3F60C0", "wx-jerry")
    wechat = client.get("/sap/c4c/odata/cust/v1/zindividualcustomer/CustomerCommonCollection",
                        params={"$filter": "ParentObjectID eq '00163E20C9511EE7B8975BD4AB3F60C0'"}).json()
    assert [r["WechatID"] for r in wechat["d"]["results"]] == ["wx-jerry"]


def test_follow_up_lands_under_the_root_and_its_ticket(c4c: FakeC4C, client: httpx.Client):
    token = fetch_token(client)
    profile = create_profile(client, token)
    c4c.link_contact(profile["ObjectID"], "1000443")
    url, headers = ODATA + "SocialMediaActivityCollection", {"x-csrf-token": token}
    root = client.post(url, json=activity_body(profile, "m1"), headers=headers).json()["d"]["results"]
    assert (root["ID"], root["RootSocialMediaActivityUUID"]) == ("59160", root["ObjectID"])
    follow = client.post(url, headers=headers, json=activity_body(
        profile, "m2", CategoryCode="003", ParentSocialMediaActivityUUID=root["ObjectID"])).json()["d"]["results"]
    assert follow["RootSocialMediaActivityUUID"] == root["ObjectID"] == follow["ParentSocialMediaActivityUUID"]
    assert c4c.ticket_for(follow["ID"]) == c4c.ticket_for(root["ObjectID"]) == "1034190"
    assert [a["SocialMediaMessageID"] for a in c4c.activities_for(OPENID)] == ["m1", "m2"]

    bad = client.post(url, headers=headers, json=activity_body(profile, "m3", CategoryCode="003"))
    assert bad.status_code == 400 and "ParentSocialMediaActivityUUID" in bad.text
    assert "Text" in client.post(url, headers=headers, json=activity_body(profile, "m3", Text="")).text

    hits = client.get(url, params={"$filter": "SocialMediaMessageID eq 'm2'"}).json()["d"]["results"]
    assert hits == [follow]
    assert client.get(url, params={"$filter": "Text eq 'hello'"}).status_code == 400
    tickets = client.get(ODATA + "ServiceRequestCollection", params={"$filter": "ID eq '1034190'"}).json()
    assert tickets["d"]["results"][0]["BuyerMainContactPartyID"] == "1000443"
    assert c4c.add_ticket("42") == "1034191"


def test_soap_create_and_query_round_trip(c4c: FakeC4C, client: httpx.Client):
    created = soap(client, "managesocialmediauserprofilein", "SocialMediaUserProfileBundleMaintainRequest_sync",
                   f"<SocialMediaUserProfile><SocialMediaUserCategoryCode>02</SocialMediaUserCategoryCode>"
                   f"<UserInformation ><SocialMediaUserAccountID>{OPENID}</SocialMediaUserAccountID>"
                   "<SocialMediaChannelCode>905</SocialMediaChannelCode><FamilyName>Wang</FamilyName>"
                   "<GivenName>Jerry</GivenName></UserInformation></SocialMediaUserProfile>")
    assert created.tag == "{http://sap.com/xi/SAPGlobal20/Global}SocialMediaUserProfileBundleMaintainConfirmation_sync"
    profile_id = created.findtext("SocialMediaUserProfile/ID")
    profile_uuid = created.findtext("SocialMediaUserProfile/UUID")
    assert profile_id == "6066" and profile_uuid.replace("-", "").upper() == c4c.profiles()[0]["ObjectID"]

    sma = soap(client, "managesocialmediaactivityin", "SocialMediaActivityBundleMaintainRequestsync",
               f"<SocialMediaActivity><SocialMediaMessageID>1004</SocialMediaMessageID><SocialMediaUserProfileID>"
               f"{profile_id}</SocialMediaUserProfileID><SocialMediaActivityProviderID>ZJERRYWC"
               "</SocialMediaActivityProviderID><InteractionContent ><Text>Tom &amp; Jerry</Text>"
               "</InteractionContent></SocialMediaActivity>")
    assert sma.findtext("SocialMediaActivity/ID") == "59160" and sma.find("Log") is not None
    assert c4c.activities()[0]["CategoryCode"] == "001"

    query = soap(client, "querysocialmediaactivityin", "SocialMediaActivityByElementsQuery_sync",
                 "<SocialMediaActivitySelectionByElements><SelectionBySocialMediaMessageID><InclusionExclusionCode>I"
                 "</InclusionExclusionCode><IntervalBoundaryTypeCode>1</IntervalBoundaryTypeCode>"
                 "<LowerBoundarySocialMediaMessageID >1004</LowerBoundarySocialMediaMessageID>"
                 "</SelectionBySocialMediaMessageID></SocialMediaActivitySelectionByElements>")
    assert query.findtext("SocialMediaActivity/SocialMediaUserProfileID") == profile_id
    assert query.findtext("SocialMediaActivity/InteractionContent/Text") == "Tom & Jerry"
    assert query.findtext("ProcessingConditions/ReturnedQueryHitsNumberValue") == "1"

    read = soap(client, "requestforsocialmediauserprofi", "SocialMediaUserProfileRequest_sync",
                "<SocialMediaUserProfileSelectionByElements><SelectionBySocialMediaUserProfileID>"
                f"<LowerBoundarySocialMediaUserProfileID >{profile_id}</LowerBoundarySocialMediaUserProfileID>"
                "</SelectionBySocialMediaUserProfileID></SocialMediaUserProfileSelectionByElements>")
    assert read.findtext("SocialMediaUserProfile/UserInformation/SocialMediaUserAccountID") == OPENID
    odata = client.get(ODATA + "GetSocialMediaUserProfile", params={"SocialMediaUserAccountID": f"'{OPENID}'"})
    assert odata.json()["d"]["results"][0]["ID"] == profile_id  # one store behind both protocols


def test_soap_errors(client: httpx.Client):
    failed = soap(client, "managesocialmediaactivityin", "SocialMediaActivityBundleMaintainRequestsync",
                  "<SocialMediaActivity><SocialMediaUserProfileID>999</SocialMediaUserProfileID>"
                  "<InteractionContent><Text>x</Text></InteractionContent></SocialMediaActivity>")
    assert failed.findtext("Log/MaximumLogItemSeverityCode") == "3" and failed.find("SocialMediaActivity") is None
    broken = client.post(SOAP + "managesocialmediaactivityin", content=b"<soapenv:Envelope",
                         headers={"content-type": "text/xml"})
    assert broken.status_code == 500 and b"<faultcode>soap-env:Client</faultcode>" in broken.content
