"""A fake Echat (一洽) that pushes agent messages to our service, signed and, in cipher mode (密文),
encrypted as Echat documents it. Written apart from core, from the documented scheme, so that the two
check each other.

Signature: lower-case hex sha1 of "".join(sorted([token, timestamp, nonce])), in the query string.
Cipher mode uses WeChat's scheme: key = b64decode(EncodingAESKey + "="), AES-256-CBC, IV = key[:16],
plaintext = 16 random bytes + 4-byte big-endian len(msg) + msg + appId, PKCS#7-padded to 32 bytes,
body <xml><Encrypt><![CDATA[base64]]></Encrypt></xml>. Whether Echat then also signs the Encrypt
value is unknown, hence `sign_encrypt`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import struct
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "echat"
MSG_TYPES = ("msgReply", "msgSend", "chatSend")
PAD_BLOCK = 32  # WeChat pads to 32 bytes, not to the AES block size
TIMEOUT = 10.0

_LINE = re.compile(r"<(?P<name>[A-Za-z_][\w.-]*)>(?P<inner>.*)</(?P=name)>")
_CDATA = re.compile(r"<!\[CDATA\[(?P<text>.*)\]\]>")
_NAME = re.compile(r"[A-Za-z_][\w.-]*")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass
class FakeEchat:
    """One Echat account's open-API settings: Token, and EncodingAESKey + appId for cipher mode."""

    token: str
    aes_key: str | None = None  # set → cipher mode (密文)
    appid: str = "echat-app-1"
    sign_encrypt: bool = False  # cipher mode: also sign the Encrypt value (WeChat's msg_signature)

    def signature(self, timestamp: str, nonce: str, encrypt: str | None = None) -> str:
        """sha1 hex of the sorted, concatenated token, timestamp, nonce (and Encrypt, if given)."""
        parts = [self.token, timestamp, nonce] + ([] if encrypt is None else [encrypt])
        return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()

    def _key(self) -> bytes:
        if self.aes_key is None:
            raise ValueError("plaintext mode: no aes_key")
        try:
            key = base64.b64decode(self.aes_key + "=", validate=True)
        except binascii.Error as exc:
            raise ValueError(f"bad EncodingAESKey: {exc}") from None
        if len(self.aes_key) != 43 or len(key) != 32:
            raise ValueError("EncodingAESKey must be 43 base64 characters (32 bytes)")
        return key

    def _cipher(self) -> Cipher:
        key = self._key()
        return Cipher(algorithms.AES(key), modes.CBC(key[:16]))

    def encrypt(self, xml: bytes) -> str:
        """Base64 ciphertext of random16 + len + xml + appId, PKCS#7-padded to 32 bytes."""
        plain = os.urandom(16) + struct.pack(">I", len(xml)) + xml + self.appid.encode()
        n = PAD_BLOCK - len(plain) % PAD_BLOCK
        enc = self._cipher().encryptor()
        return base64.b64encode(enc.update(plain + bytes([n]) * n) + enc.finalize()).decode()

    def decrypt(self, encrypt: str) -> bytes:
        """Inverse of `encrypt`: the message; ValueError on bad padding, length or appId."""
        data = base64.b64decode(encrypt, validate=True)
        if not data or len(data) % 16:
            raise ValueError("ciphertext is not a whole number of AES blocks")
        dec = self._cipher().decryptor()
        plain = dec.update(data) + dec.finalize()
        n = plain[-1]
        if not 1 <= n <= PAD_BLOCK or plain[-n:] != bytes([n]) * n:
            raise ValueError("bad PKCS#7 padding")
        plain = plain[:-n]
        if len(plain) < 20:
            raise ValueError("plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise ValueError("message length past the end")
        if plain[20 + length:] != self.appid.encode():
            raise ValueError("appId does not match")
        return plain[20:20 + length]

    def wrap(self, xml: bytes) -> bytes:
        """The body Echat sends: `xml` as is in plaintext mode, else the Encrypt envelope."""
        if self.aes_key is None:
            return xml
        return f"<xml><Encrypt><![CDATA[{self.encrypt(xml)}]]></Encrypt></xml>".encode()

    def query(self, msg_type: str, *, timestamp: int | None = None, nonce: str | None = None,
              body: bytes = b"") -> dict[str, str]:
        """The push's query string. `body` (from `wrap`) is read only to sign its Encrypt value
        (cipher mode with `sign_encrypt`)."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = _nonce() if nonce is None else nonce
        encrypt = None
        if self.aes_key is not None and self.sign_encrypt:
            encrypt = ET.fromstring(body).findtext("Encrypt") if body else None
            if not encrypt:
                raise ValueError("sign_encrypt needs the wrapped body")
        return {"timestamp": ts, "nonce": nonce, "signature": self.signature(ts, nonce, encrypt),
                "dataType": "staffPush", "msgType": msg_type}

    def push(self, url: str, msg_type: str, xml: bytes, *, timestamp: int | None = None,
             nonce: str | None = None, signature: str | None = None) -> httpx.Response:
        """POST `xml` (wrapped in cipher mode) to `url` (our /echat; its own query is kept) as Echat
        does; `signature` replaces the computed one (forgeries)."""
        body = self.wrap(xml)
        params = self.query(msg_type, timestamp=timestamp, nonce=nonce, body=body)
        if signature is not None:
            params["signature"] = signature
        return httpx.post(httpx.URL(url).copy_merge_params(params), content=body,
                          headers={"content-type": "text/xml; charset=utf-8"}, timeout=TIMEOUT)


def _nonce() -> str:
    return str(10**8 + secrets.randbelow(9 * 10**8))


def _cdata(value: str) -> str:
    # "]]>" cannot stand inside one CDATA section: end it after "]]" and start a new one before ">".
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def sample(msg_type: str, **fields: str | int | None) -> bytes:
    """The corrected fixture `echat/<msg_type>.xml`, one element per line as Echat sends it, with the
    named top-level elements' text replaced (CDATA stays CDATA), unknown ones appended as CDATA before
    </xml>, and those given None removed."""
    if msg_type not in MSG_TYPES:
        raise ValueError(f"msg_type must be one of {MSG_TYPES}")
    lines = (FIXTURES / f"{msg_type}.xml").read_text(encoding="utf-8").split("\n")
    if lines[0] != "<xml>" or lines[-2:] != ["</xml>", ""]:
        raise ValueError(f"{msg_type}.xml is not in the one-element-per-line layout")
    head, body, tail = lines[:1], lines[1:-2], lines[-2:]
    for name, value in fields.items():
        if not _NAME.fullmatch(name):
            raise ValueError(f"not an XML element name: {name!r}")
        if value is not None and _NOT_XML.search(str(value)):
            raise ValueError(f"{name}: characters XML 1.0 cannot carry")
    out: list[str] = []
    seen: set[str] = set()
    for line in body:
        m = _LINE.fullmatch(line)
        if m is None:
            raise ValueError(f"{msg_type}.xml: unexpected line {line!r}")
        name, inner = m["name"], m["inner"]
        if name not in fields:
            out.append(line)
            continue
        seen.add(name)
        value = fields[name]
        if value is None:
            continue
        text = _cdata(str(value)) if _CDATA.fullmatch(inner) else _text(str(value))
        out.append(f"<{name}>{text}</{name}>")
    for name, value in fields.items():
        if name not in seen and value is not None:
            out.append(f"<{name}>{_cdata(str(value))}</{name}>")
    return "\n".join(head + out + tail).encode()
