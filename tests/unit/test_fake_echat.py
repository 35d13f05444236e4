"""tests/fakes/echat.py itself: signature vectors, cipher layout, sample() and the push on the wire."""
from __future__ import annotations

import base64
import hashlib
import struct
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.conftest import FIXTURES, fixture_json
from tests.fakes.echat import MSG_TYPES, FakeEchat, sample

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters
XML = sample("chatSend", content="你好, agent here")


def raw_decrypt(aes_key: str, encrypt: str) -> bytes:
    """Decrypt without the fake, padding and all."""
    key = base64.b64decode(aes_key + "=")
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    return dec.update(base64.b64decode(encrypt)) + dec.finalize()


@pytest.mark.parametrize("case", fixture_json("echat/signature.json")["cases"], ids=lambda c: c["id"])
def test_signature_reproduces_the_vectors(case):
    assert FakeEchat(case["token"]).signature(case["timestamp"], case["nonce"]) == case["signature"]


def test_signature_with_encrypt_sorts_four_values():
    want = hashlib.sha1("".join(sorted(["tok", "1500000237", "345678", "ENC="])).encode()).hexdigest()
    assert FakeEchat("tok").signature("1500000237", "345678", "ENC=") == want
    assert want != FakeEchat("tok").signature("1500000237", "345678")


def test_query_defaults():
    q = FakeEchat("jerry").query("msgSend")
    assert list(q) == ["timestamp", "nonce", "signature", "dataType", "msgType"]
    assert abs(int(q["timestamp"]) - time.time()) < 5 and q["nonce"].isdigit()
    assert q["dataType"] == "staffPush" and q["msgType"] == "msgSend"
    assert q["signature"] == FakeEchat("jerry").signature(q["timestamp"], q["nonce"])
    assert FakeEchat("jerry").query("chatSend", timestamp=1500000237, nonce="345678")["signature"] == \
        "3e095102d2fb7293451523204a4c2bfedcf4b4c8"


def test_query_signs_encrypt_only_with_sign_encrypt():
    fake = FakeEchat("tok", AES_KEY)
    body = fake.wrap(XML)
    encrypt = ET.fromstring(body).findtext("Encrypt")
    assert fake.query("chatSend", timestamp=1, nonce="2", body=body)["signature"] == fake.signature("1", "2")
    fake.sign_encrypt = True
    assert fake.query("chatSend", timestamp=1, nonce="2", body=body)["signature"] == \
        fake.signature("1", "2", encrypt)
    with pytest.raises(ValueError):
        fake.query("chatSend")


@pytest.mark.parametrize("msg", [b"", b"x" * 12, XML, "长".encode() * 500])
def test_encrypt_decrypt_round_trip_and_layout(msg):
    fake = FakeEchat("tok", AES_KEY, appid="wx-appid-1")
    encrypt = fake.encrypt(msg)
    assert fake.decrypt(encrypt) == msg
    plain = raw_decrypt(AES_KEY, encrypt)
    assert len(plain) % 32 == 0
    n = plain[-1]
    assert 1 <= n <= 32 and plain[-n:] == bytes([n]) * n
    assert len(plain) - n == 16 + 4 + len(msg) + len(b"wx-appid-1")
    assert struct.unpack(">I", plain[16:20])[0] == len(msg)
    assert plain[20:20 + len(msg)] == msg and plain[20 + len(msg):-n] == b"wx-appid-1"


def test_a_full_block_of_padding_when_already_aligned():
    msg = b"m" * (64 - 20 - len("echat-app-1"))
    plain = raw_decrypt(AES_KEY, FakeEchat("tok", AES_KEY).encrypt(msg))
    assert len(plain) == 96 and plain[-32:] == bytes([32]) * 32


def test_encrypt_is_randomised_and_checks_appid_and_key():
    fake = FakeEchat("tok", AES_KEY)
    first, second = fake.encrypt(XML), fake.encrypt(XML)
    assert first != second
    assert raw_decrypt(AES_KEY, first)[16:] == raw_decrypt(AES_KEY, second)[16:]
    with pytest.raises(ValueError):
        FakeEchat("tok", AES_KEY, appid="other").decrypt(first)
    with pytest.raises(ValueError):
        FakeEchat("tok", AES_KEY[:-1]).encrypt(XML)
    with pytest.raises(ValueError):
        FakeEchat("tok").encrypt(XML)


def test_wrap():
    assert FakeEchat("tok").wrap(XML) == XML
    fake = FakeEchat("tok", AES_KEY)
    body = fake.wrap(XML)
    root = ET.fromstring(body)
    assert root.tag == "xml" and [e.tag for e in root] == ["Encrypt"]
    assert body == f"<xml><Encrypt><![CDATA[{root.findtext('Encrypt')}]]></Encrypt></xml>".encode()
    assert fake.decrypt(root.findtext("Encrypt")) == XML


@pytest.mark.parametrize("msg_type", MSG_TYPES)
def test_sample_without_fields_is_the_fixture(msg_type):
    assert sample(msg_type) == (FIXTURES / f"echat/{msg_type}.xml").read_bytes()
    assert ET.fromstring(sample(msg_type)).findtext("msgId") == "345678"


def test_sample_overrides_additions_and_removals():
    body = sample("msgReply", replyContent="您好 & <再见>", msgId=42, visitorType="5", mediaId="chan-1",
                  pushInfo="info", myData=None, viewUrl=None)
    root = ET.fromstring(body)
    assert root.findtext("replyContent") == "您好 & <再见>"
    assert root.findtext("msgId") == "42" and root.findtext("visitorType") == "5"
    assert root.find("myData") is None and root.find("viewUrl") is None
    assert [e.tag for e in root][-3:] == ["unreadMsgCount", "mediaId", "pushInfo"]
    assert root.findtext("mediaId") == "chan-1" and root.findtext("pushInfo") == "info"
    lines = body.decode().split("\n")
    assert lines[0] == "<xml>" and lines[-2:] == ["</xml>", ""]
    assert "<replyContent><![CDATA[您好 & <再见>]]></replyContent>" in lines  # CDATA stays CDATA
    assert "<msgId>42</msgId>" in lines and "<visitorType>5</visitorType>" in lines  # bare stays bare
    assert lines[-3] == "<pushInfo><![CDATA[info]]></pushInfo>"
    assert len(lines) == len(sample("msgReply").split(b"\n"))  # two removed, two added


def test_sample_escapes_bare_text_and_removing_an_absent_element_is_a_no_op():
    root = ET.fromstring(sample("chatSend", msgId="1 < 2 & 3 > 2", nonesuch=None))
    assert root.findtext("msgId") == "1 < 2 & 3 > 2" and root.find("nonesuch") is None


@pytest.mark.parametrize("value", ["a]]>b", "]]>", "x]]", "]]>]]>", "]", "", "a]]]>b"])
def test_sample_cdata_end_marker_stays_well_formed(value):
    root = ET.fromstring(sample("chatSend", content=value, extra=value))
    assert root.findtext("content") == value and root.findtext("extra") == value


def test_sample_rejects_what_xml_cannot_carry():
    with pytest.raises(ValueError):
        sample("chatSend", content="bell\x07")
    with pytest.raises(ValueError):
        sample("readSend")


@pytest.mark.parametrize("msg_type", MSG_TYPES)
def test_as_published_fixtures_are_malformed(msg_type):
    with pytest.raises(ET.ParseError):
        ET.fromstring((FIXTURES / f"echat/{msg_type}.as-published.xml").read_bytes())


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A bare HTTP server that records one push and answers `success`."""
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers["content-length"]))
            got.append({"path": url.path, "query": parse_qsl(url.query), "body": body,
                        "content-type": self.headers["content-type"]})
            self.send_response(200)
            self.send_header("content-length", "7")
            self.end_headers()
            self.wfile.write(b"success")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/echat", got
    httpd.shutdown()
    httpd.server_close()


def test_push_plaintext_on_the_wire(receiver):
    url, got = receiver
    response = FakeEchat("jerry").push(url, "chatSend", XML, timestamp=1500000237, nonce="345678")
    assert response.status_code == 200 and response.text == "success"
    (req,) = got
    assert req["path"] == "/echat" and req["body"] == XML and req["content-type"].startswith("text/xml")
    assert req["query"] == [("timestamp", "1500000237"), ("nonce", "345678"),
                            ("signature", "3e095102d2fb7293451523204a4c2bfedcf4b4c8"),
                            ("dataType", "staffPush"), ("msgType", "chatSend")]


@pytest.mark.parametrize("sign_encrypt", [False, True])
def test_push_cipher_on_the_wire(receiver, sign_encrypt):
    url, got = receiver
    fake = FakeEchat("tok", AES_KEY, sign_encrypt=sign_encrypt)
    fake.push(url, "msgReply", sample("msgReply"))
    (req,) = got
    q = dict(req["query"])
    encrypt = ET.fromstring(req["body"]).findtext("Encrypt")
    assert fake.decrypt(encrypt) == sample("msgReply")
    want = fake.signature(q["timestamp"], q["nonce"], encrypt if sign_encrypt else None)
    assert q["signature"] == want


def test_push_signature_override(receiver):
    url, got = receiver
    FakeEchat("tok").push(url + "?extra=1", "msgSend", sample("msgSend"), signature="0" * 40)
    q = dict(got[0]["query"])
    assert q["signature"] == "0" * 40 and q["extra"] == "1"
