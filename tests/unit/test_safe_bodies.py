"""core.bodies.sniff: JSON objects and XML documents only; DTDs, entities and junk are refused."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.bodies import parse_json_object, sniff
from core.errors import BadRequest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "wechat"
TEXT_XML = (FIXTURES / "push.text.xml").read_bytes()
TEXT_JSON = (FIXTURES / "push.text.json").read_bytes()

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<xml><ToUserName>toUser</ToUserName><FromUserName>fromUser</FromUserName><CreateTime>1482048670</CreateTime>
<MsgType>text</MsgType><Content>&lol9;</Content><MsgId>1</MsgId></xml>"""

XXE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>toUser</ToUserName><FromUserName>fromUser</FromUserName><CreateTime>1482048670</CreateTime>
<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>"""


@pytest.mark.parametrize("body", [b"hello", b"\x00\x01\x02garbage", b"success", b"CheckContainerPath", b"\xff\xfe<"],
                         ids=["word", "binary", "success", "bare-probe", "utf16-bom"])
def test_garbage_is_refused(body):
    with pytest.raises(BadRequest):
        sniff(body)


@pytest.mark.parametrize("body", [b"", b"  \r\n\t", b"\xef\xbb\xbf"], ids=["empty", "whitespace", "bom-only"])
def test_empty_body_is_refused(body):
    with pytest.raises(BadRequest):
        sniff(body)


@pytest.mark.parametrize("body", [b'[{"MsgType": "text"}]', b"  []", b'"text"', b"42", b"null"])
def test_json_that_is_not_an_object_is_refused(body):
    with pytest.raises(BadRequest):
        sniff(body)


def test_json_array_is_refused_even_by_the_object_parser():
    with pytest.raises(BadRequest):
        parse_json_object(b'[{"MsgType": "text"}]')


@pytest.mark.parametrize("body", [b'{"MsgType": "text"', b"{MsgType: text}", b'{"a": 1,}', b'{"a": "\xff"}',
                                  TEXT_JSON[:-5]],
                         ids=["unclosed", "unquoted", "trailing-comma", "bad-utf8", "truncated-fixture"])
def test_malformed_json_is_refused(body):
    with pytest.raises(BadRequest):
        sniff(body)


def test_absurdly_deep_json_is_refused_not_crashed():
    body = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(BadRequest):
        sniff(body)


@pytest.mark.parametrize("body", [b"<xml><a>1</xml>", b"<xml>", b"<xml></xml><xml></xml>", b"<",
                                  b"<xml><a>&nope;</a></xml>", TEXT_XML[:-10]],
                         ids=["mismatched", "unclosed", "two-roots", "lone-bracket", "undefined-entity",
                              "truncated-fixture"])
def test_malformed_xml_is_refused(body):
    with pytest.raises(BadRequest):
        sniff(body)


def test_billion_laughs_doctype_is_refused():
    with pytest.raises(BadRequest):
        sniff(BILLION_LAUGHS)


def test_xxe_entity_to_etc_passwd_is_refused():
    with pytest.raises(BadRequest):
        sniff(XXE)


@pytest.mark.parametrize("doctype", [b"<!DOCTYPE xml>", b"<!doctype xml>",
                                     b'<!DOCTYPE xml SYSTEM "http://127.0.0.1/x.dtd">'],
                         ids=["upper", "lower", "external"])
def test_doctype_without_entities_is_refused(doctype):
    with pytest.raises(BadRequest):
        sniff(doctype + b"\n" + TEXT_XML)


def test_doctype_after_declaration_and_comment_is_refused():
    with pytest.raises(BadRequest):
        sniff(b'<?xml version="1.0"?>\n<!-- hello -->\n<!DOCTYPE xml [<!ENTITY e "x">]>\n<xml><a>&e;</a></xml>')


def test_doctype_words_typed_by_a_user_inside_cdata_are_text():
    body = TEXT_XML.replace(b"this is a test", b'<!DOCTYPE html><!ENTITY x "y"><p>hi</p>')
    assert sniff(body)["Content"] == '<!DOCTYPE html><!ENTITY x "y"><p>hi</p>'


@pytest.mark.parametrize("prefix", [b"\xef\xbb\xbf", b"  \r\n\t", b"\xef\xbb\xbf\n  "],
                         ids=["bom", "whitespace", "both"])
@pytest.mark.parametrize("body", [TEXT_XML, TEXT_JSON], ids=["xml", "json"])
def test_bom_and_leading_whitespace_are_tolerated(prefix, body):
    fields = sniff(prefix + body)
    assert (fields["MsgType"], fields["Content"], fields["FromUserName"]) == ("text", "this is a test", "fromUser")


def test_xml_fields_are_those_under_the_root():
    fields = sniff(TEXT_XML)
    assert "xml" not in fields
    assert fields["ToUserName"] == "toUser"
    assert fields["MsgId"] == "1234567890123456"
