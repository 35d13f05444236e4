"""Developer-server signatures and safe-mode AES against the published vectors A-D."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from core.bodies import sniff
from core.errors import BadRequest, Unauthorized
from core.wechat.crypto import check_signature, decrypt, signature
from core.wechat.push import Identity, parse_message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "wechat"


def vector(name: str) -> dict:
    return json.loads((FIXTURES / name).read_bytes())


A = vector("vector-A.official-json-safe-mode.json")
B = vector("vector-B.wxbizmsgcrypt-xml.json")
C = vector("vector-C.wechatpy-wecom.json")
D = vector("vector-D.plain-signature.json")
GET = vector("devserver-get-verification.json")
POST = vector("devserver-post-plaintext.json")


# -- A: official JSON safe mode ---------------------------------------------------------------------

def test_vector_a_signature_from_query():
    query = A["request"]["query"]
    assert signature(A["token"], query["timestamp"], query["nonce"]) == A["expected"]["signature"] == query["signature"]
    check_signature(query["signature"], A["token"], query["timestamp"], query["nonce"])


def test_vector_a_msg_signature_covers_encrypt():
    query, encrypt = A["request"]["query"], A["request"]["body"]["Encrypt"]
    assert signature(A["token"], query["timestamp"], query["nonce"], encrypt) == A["expected"]["msg_signature"]
    check_signature(query["msg_signature"], A["token"], query["timestamp"], query["nonce"], encrypt)


def test_vector_a_decrypts_to_the_exact_message():
    plain = decrypt(A["request"]["body"]["Encrypt"], A["encoding_aes_key"], A["appid"])
    assert plain == A["expected"]["decrypted"]["msg"]
    assert len(plain.encode()) == A["expected"]["decrypted"]["msg_len"]


def test_vector_a_decrypted_message_parses_to_the_event():
    plain = decrypt(A["request"]["body"]["Encrypt"], A["encoding_aes_key"], A["appid"])
    message = parse_message(sniff(plain.encode()), Identity(app_id=A["appid"]), None)
    assert (message.openid, message.event, message.created_at) == ("o9AgO5Kd5ggOC-bXrbNODIiE3bGY", "debug_demo",
                                                                  1714112445)


@pytest.mark.parametrize("vector,key", [(A, "reply"), (C, "encrypt_message")], ids=["A-reply", "C-encrypt"])
def test_encrypted_reply_vector_decrypts_and_its_msg_signature_reproduces(vector, key):
    encrypted = vector[key]
    encrypt = encrypted["expected"]["Encrypt"]
    assert decrypt(encrypt, vector["encoding_aes_key"], vector["appid"]) == encrypted["input"]["msg"]
    assert signature(vector["token"], encrypted["input"]["timestamp"], encrypted["input"]["nonce"], encrypt) == \
        encrypted["expected"]["MsgSignature"]


# -- B: WXBizMsgCrypt XML, compatible mode ----------------------------------------------------------

def test_vector_b_msg_signature():
    request = B["request"]
    assert signature(B["token"], request["timestamp"], request["nonce"], request["encrypt"]) == request["msg_signature"]
    check_signature(request["msg_signature"], B["token"], request["timestamp"], request["nonce"], request["encrypt"])


def test_vector_b_encrypt_in_body_is_the_one_signed():
    assert sniff(B["request"]["body_xml"].encode())["Encrypt"] == B["request"]["encrypt"]


def test_vector_b_decrypts_to_the_exact_message():
    assert decrypt(B["request"]["encrypt"], B["encoding_aes_key"], B["appid"]) == B["expected"]["decrypted"]["msg"]


def test_vector_b_decrypted_xml_parses_to_the_text_message():
    plain = decrypt(B["request"]["encrypt"], B["encoding_aes_key"], B["appid"])
    message = parse_message(sniff(plain.encode()), Identity(app_id=B["appid"]), None)
    assert (message.kind, message.openid, message.text) == ("text", "oyORnuP8q7ou2gfYjqLzSIWZf0rs", "abcdteT")
    assert (message.msg_id, message.created_at, message.to_user) == ("6054768590064713728", 1409735668,
                                                                      "gh_10f6c3c3ac5a")
    assert message.id == f"{B['appid']}:6054768590064713728"


# -- C: wechatpy (WeCom flavour) --------------------------------------------------------------------

def test_vector_c_echostr_signature_checks():
    given = C["check_signature"]["input"]
    check_signature(given["msg_signature"], C["token"], given["timestamp"], given["nonce"], given["echostr"])
    assert signature(C["token"], given["timestamp"], given["nonce"], given["echostr"]) == given["msg_signature"]


def test_vector_c_echostr_decrypts():
    given = C["check_signature"]["input"]
    assert decrypt(given["echostr"], C["encoding_aes_key"], C["appid"]) == "5927782489442352469"
    assert C["check_signature"]["expected"]["decrypted"]["msg"] == "5927782489442352469"


def test_vector_c_wrong_nonce_is_unauthorized():
    given = C["check_signature_should_fail"]["input"]
    with pytest.raises(Unauthorized):
        check_signature(given["msg_signature"], C["token"], given["timestamp"], given["nonce"], given["echostr"])


def test_vector_c_message_signature_and_decrypt():
    given = C["decrypt_message"]["input"]
    check_signature(given["msg_signature"], C["token"], given["timestamp"], given["nonce"], given["encrypt"])
    plain = decrypt(given["encrypt"], C["encoding_aes_key"], C["appid"])
    assert plain == C["decrypt_message"]["expected"]["decrypted"]["msg"]
    fields = sniff(plain.encode())
    assert (fields["Content"], fields["FromUserName"]) == ("test", "messense")




# -- D and developer-server examples: plain signature -----------------------------------------------

@pytest.mark.parametrize("case", D["cases"], ids=lambda case: "valid" if case["valid"] else "invalid")
def test_vector_d_plain_signature(case):
    assert (signature(case["token"], case["timestamp"], case["nonce"]) == case["signature"]) is case["valid"]
    if case["valid"]:
        check_signature(case["signature"], case["token"], case["timestamp"], case["nonce"])
    else:
        with pytest.raises(Unauthorized):
            check_signature(case["signature"], case["token"], case["timestamp"], case["nonce"])


def test_devserver_get_verification_signature():
    query = GET["request"]["query"]
    assert signature(GET["token"], query["timestamp"], query["nonce"]) == GET["expected"]["signature"]
    check_signature(query["signature"], GET["token"], query["timestamp"], query["nonce"])


def test_devserver_post_plaintext_signature_does_not_cover_the_body():
    query = POST["request"]["query"]
    assert signature(POST["token"], query["timestamp"], query["nonce"]) == POST["expected"]["signature"]
    check_signature(query["signature"], POST["token"], query["timestamp"], query["nonce"])


def test_signature_is_order_independent_sha1_of_sorted_parts():
    assert signature("AAAAA", "1714036504", "1514711492") == signature("AAAAA", "1514711492", "1714036504")
    assert GET["expected"]["joined"] == "".join(sorted([GET["token"], "1714036504", "1514711492"]))


# -- negative cases ---------------------------------------------------------------------------------

def test_wrong_appid_is_bad_request():
    with pytest.raises(BadRequest):
        decrypt(A["request"]["body"]["Encrypt"], A["encoding_aes_key"], "wx0000000000000000")


def test_appid_of_another_vector_is_bad_request():
    with pytest.raises(BadRequest):
        decrypt(B["request"]["encrypt"], B["encoding_aes_key"], A["appid"])


def test_wrong_aes_key_is_bad_request():
    with pytest.raises(BadRequest):
        decrypt(A["request"]["body"]["Encrypt"], B["encoding_aes_key"], A["appid"])


@pytest.mark.parametrize("where", [-1, -20, 0], ids=["last-byte", "last-block", "first-byte"])
def test_tampered_ciphertext_is_bad_request(where):
    raw = bytearray(base64.b64decode(A["request"]["body"]["Encrypt"]))
    if where == 0:
        raw = raw[16:]  # drop the first block: the length prefix becomes garbage
        raw = raw[:len(raw) - len(raw) % 32]
    else:
        raw[where] ^= 0x5A
    with pytest.raises(BadRequest):
        decrypt(base64.b64encode(bytes(raw)).decode(), A["encoding_aes_key"], A["appid"])


A_ENCRYPT = A["request"]["body"]["Encrypt"]


@pytest.mark.parametrize("encrypt", ["not base64 at all!", "+qdx1OKC*", "", "QUJD",
                                     A_ENCRYPT[:40] + "!" + A_ENCRYPT[40:], A_ENCRYPT[:40] + "\n" + A_ENCRYPT[40:]],
                         ids=["text", "bad-char", "empty", "too-short", "valid-with-bang-inside", "valid-with-newline"])
def test_non_base64_or_short_encrypt_is_bad_request(encrypt):
    with pytest.raises(BadRequest):
        decrypt(encrypt, A["encoding_aes_key"], A["appid"])


@pytest.mark.parametrize("encrypt", ["", base64.b64encode(b"x" * 16).decode(), base64.b64encode(b"x" * 48).decode()],
                         ids=["empty", "one-aes-block", "one-and-a-half-padded-blocks"])
def test_encrypt_not_in_whole_32_byte_blocks_is_refused_before_decrypting(encrypt):
    # WeChat pads to 32 bytes: anything else is refused by the length check, with its own message.
    with pytest.raises(BadRequest, match="32-byte blocks"):
        decrypt(encrypt, A["encoding_aes_key"], A["appid"])


@pytest.mark.parametrize("given", ["0" * 40, None, "", A["expected"]["signature"][:-1]],
                         ids=["zeros", "missing", "empty", "truncated"])
def test_wrong_signature_is_unauthorized(given):
    query = A["request"]["query"]
    with pytest.raises(Unauthorized):
        check_signature(given, A["token"], query["timestamp"], query["nonce"])


def test_msg_signature_over_another_encrypt_is_unauthorized():
    query = A["request"]["query"]
    with pytest.raises(Unauthorized):
        check_signature(query["msg_signature"], A["token"], query["timestamp"], query["nonce"], B["request"]["encrypt"])


def test_signature_with_wrong_token_is_unauthorized():
    query = A["request"]["query"]
    with pytest.raises(Unauthorized):
        check_signature(query["signature"], "BBBBB", query["timestamp"], query["nonce"])
