"""Every WeChat push fixture, sniffed from its bytes, becomes the expected UserMessage."""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest

from core.bodies import sniff
from core.errors import BadRequest
from core.wechat.push import Identity, identity_from_headers, is_probe, parse_message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "wechat"
APP = "wxcloudrunapp"  # what x-wx-appid says in these tests
CLOUD_RUN = Identity(app_id=APP)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(name: str, identity: Identity = CLOUD_RUN, default_app: str | None = None):
    return parse_message(sniff(fixture(name)), identity, default_app)


def push_fields(name: str = "push.text.json", **changes: Any) -> dict[str, Any]:
    """A JSON fixture's fields with `changes` applied (None removes a field)."""
    fields = json.loads(fixture(name))
    for key, value in changes.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return fields


NONE_OF_THE_REST = dict(text=None, pic_url=None, media_id=None, title=None, appid=None, pagepath=None,
                        thumb_url=None, thumb_media_id=None, session_from=None, event=None)

TEXT = dict(NONE_OF_THE_REST, kind="text", msgtype="text", openid="fromUser", to_user="toUser",
            msg_id="1234567890123456", id=f"{APP}:1234567890123456", created_at=1482048670, text="this is a test")
IMAGE = dict(NONE_OF_THE_REST, kind="image", msgtype="image", openid="fromUser", to_user="toUser",
             msg_id="1234567890123456", id=f"{APP}:1234567890123456", created_at=1482048670,
             pic_url="this is a url", media_id="media_id")
PAGE = dict(NONE_OF_THE_REST, kind="miniprogrampage", msgtype="miniprogrampage", openid="fromUser", to_user="toUser",
            msg_id="1234567890123456", id=f"{APP}:1234567890123456", created_at=1482048670)
SESSION = dict(NONE_OF_THE_REST, kind="session", msgtype="event", openid="fromUser", to_user="toUser", msg_id=None,
               id=f"{APP}:event:fromUser:1482048670:user_enter_tempsession", created_at=1482048670,
               event="user_enter_tempsession", session_from="sessionFrom")
CLOUD_RUN_TEXT = dict(NONE_OF_THE_REST, kind="text", msgtype="text", openid="oVneZ57wJnV-ObtCiGv26PRrOz2g",
                      to_user="gh_919b00572d95", created_at=1651049934, text="回复文本")

EXPECTED = {
    "push.text.xml": TEXT,
    "push.text.json": TEXT,
    "push.image.xml": IMAGE,
    "push.image.json": IMAGE,
    # The XML and JSON samples are published with different values.
    "push.miniprogrampage.xml": dict(PAGE, title="Title", appid="AppId", pagepath="PagePath",
                                     thumb_url="ThumbUrl", thumb_media_id="ThumbMediaId"),
    "push.miniprogrampage.json": dict(PAGE, title="title", appid="appid", pagepath="path",
                                      thumb_url="", thumb_media_id=""),
    "push.event.user_enter_tempsession.xml": SESSION,
    "push.event.user_enter_tempsession.json": SESSION,
    "cloudrun-push.text.msgid64.json": dict(CLOUD_RUN_TEXT, msg_id="23637352235060880",
                                            id=f"{APP}:23637352235060880"),
    "cloudrun-push.text.msgid64-odd.constructed.json": dict(CLOUD_RUN_TEXT, msg_id="23637352235060881",
                                                            id=f"{APP}:23637352235060881"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_push_fixture_parses_into_expected_message(name):
    message = parse(name)
    got = {field: getattr(message, field) for field in EXPECTED[name]}
    assert got == EXPECTED[name]
    assert (message.app_id, message.from_appid) == (APP, None)


def test_odd_64bit_msgid_kept_exact():
    message = parse("cloudrun-push.text.msgid64-odd.constructed.json")
    assert message.msg_id == "23637352235060881"
    assert isinstance(message.msg_id, str)
    # Through a float it would become ...880, the neighbouring message's id.
    assert message.id != parse("cloudrun-push.text.msgid64.json").id


def test_xml_and_json_forms_of_a_push_give_the_same_message():
    for kind in ("text", "image", "event.user_enter_tempsession"):
        assert parse(f"push.{kind}.xml") == parse(f"push.{kind}.json")


def test_cloudfunction_event_string_msgid_and_appid_from_tousername():
    message = parse("cloudfunction-event.text.json", identity=Identity())
    assert message.msg_id == "49d72d67b16d115e7935ac386f2f0fa41535298877_1555684067"
    assert (message.kind, message.text, message.openid) == ("text", "测试", "ohl4L0Rnhq7vmmbT_DaNQa4ePaz0")
    assert message.created_at == 1555684067
    # A cloud function's ToUserName is the appid; with nothing else naming the app, it is the app.
    assert message.app_id == "wx3d289323f5900f8e"
    assert message.id == "wx3d289323f5900f8e:49d72d67b16d115e7935ac386f2f0fa41535298877_1555684067"


def test_configured_appid_used_when_no_header_names_the_app():
    message = parse("push.text.json", identity=Identity(), default_app="wxconfigured")
    assert (message.app_id, message.id) == ("wxconfigured", "wxconfigured:1234567890123456")


# -- dedupe of events -------------------------------------------------------------------------------

def test_identical_events_share_a_dedupe_id():
    first = parse_message(push_fields("push.event.user_enter_tempsession.json"), CLOUD_RUN, None)
    again = parse_message(push_fields("push.event.user_enter_tempsession.json"), CLOUD_RUN, None)
    assert first.id == again.id


def test_events_at_different_create_times_get_different_dedupe_ids():
    first = parse_message(push_fields("push.event.user_enter_tempsession.json"), CLOUD_RUN, None)
    later = parse_message(push_fields("push.event.user_enter_tempsession.json", CreateTime=1482048671), CLOUD_RUN, None)
    assert first.id != later.id


def test_events_from_different_users_get_different_dedupe_ids():
    first = parse_message(push_fields("push.event.user_enter_tempsession.json"), CLOUD_RUN, None)
    other = parse_message(push_fields("push.event.user_enter_tempsession.json", FromUserName="otherUser"),
                          CLOUD_RUN, None)
    assert first.id != other.id


def test_different_events_at_the_same_time_get_different_dedupe_ids():
    enter = parse_message(push_fields("push.event.user_enter_tempsession.json"), CLOUD_RUN, None)
    other = parse_message(push_fields("push.event.user_enter_tempsession.json", Event="debug_demo"), CLOUD_RUN, None)
    assert enter.id != other.id


# -- identity ---------------------------------------------------------------------------------------

def test_resource_reuse_from_appid_names_the_app():
    identity = identity_from_headers({"x-wx-appid": "wxprovider", "x-wx-from-appid": "wxcaller"})
    message = parse("push.text.json", identity=identity, default_app="wxconfigured")
    assert (message.app_id, message.from_appid) == ("wxcaller", "wxcaller")
    assert message.id == "wxcaller:1234567890123456"


def test_x_wx_appid_names_the_app_without_resource_reuse():
    identity = identity_from_headers({"x-wx-appid": "wxprovider"})
    message = parse("push.text.json", identity=identity, default_app="wxconfigured")
    assert (message.app_id, message.from_appid) == ("wxprovider", None)


def test_body_fromusername_wins_over_openid_header():
    identity = identity_from_headers({"x-wx-appid": APP, "x-wx-openid": "oHeader"})
    assert parse("push.text.json", identity=identity).openid == "fromUser"


@pytest.mark.parametrize("header", ["x-wx-openid", "x-wx-from-openid"])
def test_missing_fromusername_falls_back_to_openid_header(header):
    identity = identity_from_headers({"x-wx-appid": APP, header: "oHeader"})
    message = parse_message(push_fields(FromUserName=None), identity, None)
    assert message.openid == "oHeader"


def test_push_without_any_openid_is_refused():
    identity = identity_from_headers({"x-wx-appid": APP})
    with pytest.raises(BadRequest):
        parse_message(push_fields(FromUserName=None), identity, None)


def test_push_without_msgtype_is_refused():
    with pytest.raises(BadRequest):
        parse_message(push_fields(MsgType=None), CLOUD_RUN, None)


def test_non_numeric_create_time_is_refused():
    with pytest.raises(BadRequest):
        parse_message(push_fields(CreateTime="yesterday"), CLOUD_RUN, None)


# -- other types ------------------------------------------------------------------------------------

def test_voice_push_becomes_other_with_a_notice_naming_voice():
    fields = push_fields(MsgType="voice", Content=None, MediaId="media_id", Format="amr")
    message = parse_message(fields, CLOUD_RUN, None)
    assert (message.kind, message.msgtype, message.msg_id) == ("other", "voice", "1234567890123456")
    assert "voice" in message.notice()


def test_voice_push_in_xml_becomes_other():
    body = fixture("push.text.xml").replace(b"<![CDATA[text]]>", b"<![CDATA[voice]]>")
    message = parse_message(sniff(body), CLOUD_RUN, None)
    assert (message.kind, message.msgtype) == ("other", "voice")
    assert "voice" in message.notice()


def test_unknown_event_becomes_other_with_a_notice_naming_the_event():
    body = fixture("devserver-post-plaintext.json")
    fields = json.loads(body)["request"]["body"]
    message = parse_message(fields, CLOUD_RUN, None)
    assert message.kind == "other"
    assert "debug_demo" in message.notice()


def test_session_notice_carries_session_from():
    assert "sessionFrom" in parse("push.event.user_enter_tempsession.json").notice()


# -- sniffing and the probe -------------------------------------------------------------------------

def test_sniff_reads_only_bytes_so_content_type_cannot_mislead_it():
    # JSON-mode pushes have been seen declared as text/xml: the header never reaches the parser.
    assert list(inspect.signature(sniff).parameters) == ["body"]
    assert sniff(fixture("push.text.json")) == json.loads(fixture("push.text.json"))
    assert sniff(fixture("push.text.xml"))["Content"] == "this is a test"


@pytest.mark.parametrize("name", ["probe.CheckContainerPath.json", "probe.CheckContainerPath.xml"])
def test_check_container_path_probe_is_recognised(name):
    body = fixture(name)
    assert is_probe(body, sniff(body))


@pytest.mark.parametrize("body", [b"CheckContainerPath", b"CheckContainerPath\n"])
def test_bare_check_container_path_body_is_a_probe(body):
    assert is_probe(body, None)


@pytest.mark.parametrize("name", ["push.text.json", "push.text.xml", "push.event.user_enter_tempsession.json"])
def test_real_pushes_are_not_probes(name):
    body = fixture(name)
    assert not is_probe(body, sniff(body))


def test_other_bare_bodies_are_not_probes():
    assert not is_probe(b"CheckContainerPathX", None)
    assert not is_probe(b"", None)
