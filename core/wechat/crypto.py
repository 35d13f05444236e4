"""Developer-server signatures and safe-mode AES (wechatpy's cipher, our constant-time checks)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from wechatpy.crypto import PrpCrypto

from core.errors import BadRequest, Unauthorized


def signature(token: str, *parts: str) -> str:
    """sha1 over the sorted, concatenated token, timestamp, nonce (and Encrypt in safe mode)."""
    return hashlib.sha1("".join(sorted([token, *parts])).encode()).hexdigest()


def check_signature(given: str | None, token: str, *parts: str) -> None:
    if not given or not hmac.compare_digest(given.lower().encode(), signature(token, *parts).encode()):
        raise Unauthorized("bad signature")


def decrypt(encrypt: str, aes_key: str, appid: str) -> str:
    """Decrypt a safe-mode `Encrypt` value; the trailing appid must be ours."""
    try:
        raw = base64.b64decode(encrypt, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Encrypt is not base64") from None
    if not raw or len(raw) % 32:
        raise BadRequest("Encrypt is not a whole number of 32-byte blocks")
    key = base64.b64decode(aes_key + "=")
    try:
        return str(PrpCrypto(key).decrypt(encrypt, appid))
    except Exception:  # wrong appid, bad padding or length, not UTF-8: all mean "not for us"
        raise BadRequest("Encrypt does not decrypt to a message for this app") from None
