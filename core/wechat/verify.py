"""Verification of WeChat pushes, kept apart from routing as desks keep theirs in `parse_callback`.

Checks run cheapest first and before the body is parsed: who may push (`WX_PUSH_TRUST`), then the
developer-server signature and its timestamp, and only then the body. No I/O: a signature that must
serve one request only is returned as a `replay_key` for the relay to record."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core import signing
from core.bodies import sniff
from core.errors import BadRequest, Forbidden, MethodNotAllowed, Unauthorized
from core.web import Request, Response
from core.wechat import crypto
from core.wechat.push import PROBE, Identity, identity_from_headers, is_probe
from core.wechat.settings import WeChatSettings

PROBE_MAX = 256  # bytes: a CheckContainerPath probe is tiny, so a larger body is never parsed as one


@dataclass(frozen=True)
class VerifiedPush:
    """A push that passed its checks: the answer when there is nothing to store (a probe, a URL
    check), else the fields to store and who they are for."""

    answer: Response | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    identity: Identity = field(default_factory=Identity)
    replay_key: str | None = None  # the signature covers no body: it may serve this request only


class PushVerifier:
    def __init__(self, settings: WeChatSettings, clock: Callable[[], float]) -> None:
        self.settings, self.clock = settings, clock

    def check_head(self, request: Request, length: int) -> None:
        """The checks that need no body, for a shell to run before it reads one (`length` is the declared
        size): a stranger's body is then never read into memory. Raise to refuse."""
        if "signature" in request.query:
            self._signed(request)
        elif length > PROBE_MAX:  # not a probe, which may come without credentials
            self._trusted(request)

    def verify(self, request: Request) -> VerifiedPush:
        """Raise Unauthorized/Forbidden before parsing; BadRequest for a body that is not a push."""
        if "signature" in request.query:
            return self._developer_server(request)
        if len(request.body) <= PROBE_MAX and PROBE.encode() in request.body and request.method == "POST":
            body = request.body.strip()
            if is_probe(body, sniff(body) if body != PROBE.encode() else None):
                return VerifiedPush(answer=Response.text("success"))
        self._trusted(request)
        return VerifiedPush(fields=sniff(request.body), identity=identity_from_headers(request.headers))

    def _trusted(self, request: Request) -> None:
        """An unsigned push: allowed by WX_PUSH_TRUST?"""
        if request.method != "POST":
            raise MethodNotAllowed("POST pushes here; GET is the developer-server URL check and needs signature")
        trust = self.settings.push_trust
        if trust == "signed":
            raise Forbidden("unsigned pushes are refused here (WX_PUSH_TRUST=signed): sign with WX_TOKEN")
        if trust == "header" and not (request.header("x-wx-source") or request.header("x-wx-sources")):
            raise Forbidden("push without an x-wx-source header (set WX_PUSH_TRUST=network if public access is off)")

    def _signed(self, request: Request) -> str:
        """Check a developer-server signature and its timestamp; returns the replay key."""
        wx, query = self.settings, request.query
        if not wx.token:
            raise Forbidden("developer-server mode is off: WX_TOKEN is not set")
        if request.method not in ("GET", "POST"):
            raise MethodNotAllowed("use GET or POST")
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        crypto.check_signature(query.get("signature"), wx.token, timestamp, nonce)
        signing.check_fresh(timestamp, self.clock())
        # The signature covers neither the body nor the method: one (timestamp, nonce, signature), one request.
        return f"wechat:{timestamp}:{nonce}:{query.get('signature', '').lower()}"

    def _developer_server(self, request: Request) -> VerifiedPush:
        wx, query = self.settings, request.query
        replay_key = self._signed(request)
        if request.method == "GET":
            return VerifiedPush(answer=Response.text(query.get("echostr", "")), replay_key=replay_key)
        encrypted = query.get("encrypt_type", "").lower() == "aes"
        if wx.aes_key and not encrypted:
            raise Unauthorized("safe mode is configured (WX_AES_KEY): plaintext pushes are refused")
        if encrypted and not (wx.aes_key and wx.appid):
            raise Forbidden("safe-mode push but WX_AES_KEY/WX_APPID are not set")
        fields = sniff(request.body)
        if encrypted:
            encrypt = fields.get("Encrypt")
            if not isinstance(encrypt, str):
                raise BadRequest("safe-mode push without Encrypt")
            crypto.check_signature(query.get("msg_signature"), wx.token or "", query.get("timestamp", ""),
                                   query.get("nonce", ""), encrypt)
            fields = sniff(crypto.decrypt(encrypt, wx.aes_key or "", wx.appid or "").encode())
        return VerifiedPush(fields=fields, identity=Identity(app_id=wx.appid), replay_key=replay_key)
