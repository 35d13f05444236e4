"""A fake SAP Cloud for Customer tenant: OData v2 (Basic auth, CSRF token + session cookie pairs) and
the deprecated SOAP (A2X) social media services, sharing one store of profiles, activities and tickets."""
from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import re
import secrets
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

from tests.fakes.server import Answer, FakeServer, Recorded

ODATA = "/sap/c4c/odata/v1/c4codataapi/"
CUST = "/sap/c4c/odata/cust/v1/zindividualcustomer/"
SOAP = "/sap/bc/srt/scs/sap/"
GLOB = "http://sap.com/xi/SAPGlobal20/Global"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XSRF_COOKIE = "sap-XSRF_ABC_123"
MODIFYING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
XML = {"content-type": "text/xml; charset=utf-8"}
SOAP_SERVICES = {  # endpoint -> (request root, response root, handler)
    "managesocialmediaactivityin": ("SocialMediaActivityBundleMaintainRequestsync",
                                    "SocialMediaActivityBundleMaintainConfirmation_sync", "_soap_maintain_activity"),
    "querysocialmediaactivityin": ("SocialMediaActivityByElementsQuery_sync",
                                   "SocialMediaActivityByElementsResponse_sync", "_soap_query_activity"),
    "managesocialmediauserprofilein": ("SocialMediaUserProfileBundleMaintainRequest_sync",
                                       "SocialMediaUserProfileBundleMaintainConfirmation_sync",
                                       "_soap_maintain_profile"),
    "requestforsocialmediauserprofi": ("SocialMediaUserProfileRequest_sync",
                                       "SocialMediaUserProfileResponse_sync", "_soap_read_profile"),
}
ROW_FIELDS = ("SocialMediaChannelCode", "ExternalPartyAccountID", "SocialMediaUserAccountID", "SocialMediaUserName")
ACTIVITY_REQUIRED = ("SocialMediaMessageID", "Text", "SocialMediaActivityProviderID", "SocialMediaChannelCode",
                     "InitiatorCode")
ENTITY_SETS = ["SocialMediaUserProfileCollection", "SocialMediaActivityCollection", "ServiceRequestCollection"]
_LITERAL = re.compile(r"'((?:[^']|'')*)'")
_FILTER = re.compile(r"\s*(\w+)\s+eq\s+('(?:[^']|'')*')\s*")
_DASHED = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def literal(value: str | None) -> str | None:
    """The text of an OData string literal (`'O''Brien'` -> `O'Brien`), or None if it is not one."""
    match = _LITERAL.fullmatch(value or "")
    return match.group(1).replace("''", "'") if match else None


def dashed(object_id: str) -> str:
    """A 32-hex ObjectID as the dashed lower-case GUID the SOAP services use."""
    return str(uuid.UUID(object_id))


def plain(guid: Any) -> str:
    """A GUID in either form as a 32-hex upper-case ObjectID (anything else as an unmatchable string)."""
    return guid.replace("-", "").upper() if isinstance(guid, str) else ""


def odata_error(status: int, text: str, headers: dict[str, str] | None = None) -> Answer:
    body = {"error": {"code": str(status), "message": {"lang": "en", "value": text}}}
    return (status, body, headers) if headers else (status, body)


def results(value: Any, status: int = 200) -> Answer:
    return status, {"d": {"results": value}}


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _children(element: ET.Element | None, name: str) -> list[ET.Element]:
    return [c for c in element if c.tag.rpartition("}")[2] == name] if element is not None else []


def _child(element: ET.Element | None, *path: str) -> ET.Element | None:
    for name in path:
        element = next(iter(_children(element, name)), None)
    return element


def _text(element: ET.Element | None, *path: str) -> str:
    found = _child(element, *path)
    return (found.text or "") if found is not None else ""


def _el(tag: str, inner: str = "") -> str:
    return f"<{tag}>{inner}</{tag}>" if inner else f"<{tag}/>"


def _leaf(tag: str, text: str) -> str:
    return _el(tag, escape(text))


def _ids(entity: dict[str, Any]) -> str:
    """The numeric ID and the dashed UUID of a stored entity, as SOAP answers carry them."""
    return _leaf("ID", entity["ID"]) + _leaf("UUID", dashed(entity["ObjectID"]))


def _log(note: str = "") -> str:
    """An empty Log, or one error item (severity 3), as the A2X services report business errors."""
    if not note:
        return "<Log/>"
    item = _leaf("TypeID", "001(/SMM/)") + _leaf("SeverityCode", "3") + _leaf("Note", note)
    return _el("Log", _leaf("MaximumLogItemSeverityCode", "3") + _el("Item", item))


def _hits(count: int) -> str:
    return _el("ProcessingConditions", _leaf("ReturnedQueryHitsNumberValue", str(count))
               + _leaf("MoreHitsAvailableIndicator", "false"))


def _envelope(inner: str) -> bytes:
    return (f'<soap-env:Envelope xmlns:soap-env="{SOAP_ENV}"><soap-env:Header/>'
            f"<soap-env:Body>{inner}</soap-env:Body></soap-env:Envelope>").encode()


def _fault(text: str, status: int = 500) -> Answer:
    fault = ('<soap-env:Fault><faultcode>soap-env:Client</faultcode>'
             f'<faultstring xml:lang="en">{escape(text)}</faultstring></soap-env:Fault>')
    return status, _envelope(fault), XML


@dataclass
class FakeC4C(FakeServer):
    """Every request needs Basic `user:password`; OData writes need a fetched CSRF token plus its cookie."""

    user: str = "relay"
    password: str = "relay-secret"
    csrf: bool = True  # False: like a tenant that issues no CSRF tokens (integration users)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._data = threading.RLock()
        self._csrf: dict[str, str] = {}  # token -> session cookie it was issued with
        self._profiles: list[dict[str, Any]] = []
        self._activities: list[dict[str, Any]] = []
        self._tickets: list[dict[str, str]] = []
        self._ticket_roots: dict[str, str] = {}  # ticket ID -> root activity ObjectID
        self._contacts: dict[str, str] = {}  # profile ObjectID -> business partner ID
        self._wechat_ids: list[dict[str, str]] = []
        self._ids = {"profile": itertools.count(6066), "activity": itertools.count(59160),
                     "ticket": itertools.count(1034190)}

    # ---- helpers for tests
    def expire_csrf(self) -> None:
        """Forget every issued token, as a real tenant's tokens expire."""
        with self._data:
            self._csrf.clear()

    def add_ticket(self, buyer_contact_id: str) -> str:
        with self._data:
            return self._new_ticket(buyer_contact_id)["ID"]

    def ticket_for(self, activity_id: str) -> str | None:
        """The ticket of the conversation holding an activity (given by ID or ObjectID)."""
        with self._data:
            found = self._find_activity(activity_id)
            root = found["RootSocialMediaActivityUUID"] if found else None
            return next((t for t, r in self._ticket_roots.items() if r == root), None)

    def link_contact(self, profile_object_id: str, contact_id: str) -> None:
        with self._data:
            self._contacts[plain(profile_object_id)] = contact_id

    def set_wechat_id(self, customer_guid: str, wechat_id: str) -> None:
        with self._data:
            self._wechat_ids = [r for r in self._wechat_ids if r["ParentObjectID"] != customer_guid]
            self._wechat_ids.append({"ObjectID": uuid.uuid4().hex.upper(), "ParentObjectID": customer_guid,
                                     "WechatID": wechat_id})

    def profiles(self) -> list[dict[str, Any]]:
        with self._data:
            return copy.deepcopy(self._profiles)

    def activities(self) -> list[dict[str, Any]]:
        with self._data:
            return copy.deepcopy(self._activities)

    def activity(self, object_id: str) -> dict[str, Any] | None:
        with self._data:
            return copy.deepcopy(self._find_activity(object_id))

    def activities_for(self, openid: str) -> list[dict[str, Any]]:
        with self._data:
            mine = {p["ObjectID"] for p in self._profiles_with("SocialMediaUserAccountID", openid)}
            return [dict(a) for a in self._activities if a["SocialMediaUserProfileUUID"] in mine]

    def modifying_requests(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method in MODIFYING]

    # ---- HTTP
    def answer(self, recorded: Recorded) -> Answer:
        if not self._authorized(recorded.headers.get("authorization", "")):
            return odata_error(401, "Unauthorized", {"www-authenticate": 'Basic realm="SAP"'})
        path = unquote(recorded.path)
        if path.startswith(SOAP):
            return self._soap(path[len(SOAP):], recorded)
        with self._data:
            if recorded.method in MODIFYING and self.csrf and not self._csrf_ok(recorded.headers):
                return odata_error(403, "CSRF token validation failed", {"x-csrf-token": "Required"})
            status, value, *extra = self._odata(recorded.method, path, recorded)
            headers = dict(extra[0]) if extra else {}
            if self.csrf and recorded.method == "GET" and recorded.headers.get("x-csrf-token", "").lower() == "fetch":
                token, session = secrets.token_urlsafe(24), secrets.token_hex(16)
                self._csrf[token] = session
                headers.update({"x-csrf-token": token, "set-cookie": f"{XSRF_COOKIE}={session}; path=/; HttpOnly"})
            return status, value, headers

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return scheme.lower() == "basic" and given == f"{self.user}:{self.password}".encode()

    def _csrf_ok(self, headers: dict[str, str]) -> bool:
        session = self._csrf.get(headers.get("x-csrf-token", ""))
        cookies = dict(part.strip().partition("=")[::2] for part in headers.get("cookie", "").split(";"))
        return session is not None and cookies.get(XSRF_COOKIE) == session

    # ---- OData
    def _odata(self, method: str, path: str, recorded: Recorded) -> Answer:
        query = recorded.query
        if path.startswith(CUST) and method == "GET" and path[len(CUST):] == "CustomerCommonCollection":
            return self._filtered(self._wechat_ids, query, {"ParentObjectID"})
        if path in (ODATA, ODATA.rstrip("/")):
            return (200, {"d": {"EntitySets": ENTITY_SETS}}) if method == "GET" else odata_error(405, "Not allowed")
        name = path[len(ODATA):] if path.startswith(ODATA) else None
        route = (method, name)
        if route == ("GET", "GetSocialMediaUserProfile"):
            return self._lookup_profiles(query)
        if route == ("POST", "SocialMediaUserProfileCollection"):
            return self._create_profile(recorded.body)
        if route == ("POST", "SocialMediaActivityCollection"):
            return self._create_activity(recorded.body)
        if route == ("GET", "SocialMediaActivityCollection"):
            return self._filtered(self._activities, query, {"SocialMediaMessageID", "ID"})
        if route == ("GET", "ServiceRequestCollection"):
            return self._filtered(self._tickets, query, {"ID"})
        match = re.fullmatch(r"SocialMediaUserProfileCollection\('([^']*)'\)(/SocialMediaUserProfileUserInformation)?",
                             name or "")
        if method == "GET" and match:
            profile = self._find_profile(match.group(1))
            if profile is None:
                return odata_error(404, f"Resource not found for segment 'SocialMediaUserProfile' ({match.group(1)})")
            rows = profile["SocialMediaUserProfileUserInformation"]
            return results(copy.deepcopy(rows) if match.group(2) else self._entity(profile))
        return odata_error(404, f"Resource not found for segment '{name or path}'")

    def _filtered(self, rows: list[dict[str, Any]], query: dict[str, str], fields: set[str]) -> Answer:
        expression = query.get("$filter")
        if expression is None:
            return results([dict(r) for r in rows])
        match = _FILTER.fullmatch(expression)
        if not match or match.group(1) not in fields:
            return odata_error(400, f"Unsupported $filter: {expression}")
        value = literal(match.group(2))
        return results([dict(r) for r in rows if r.get(match.group(1)) == value])

    def _lookup_profiles(self, query: dict[str, str]) -> Answer:
        if "SocialMediaUserAccountID" in query:
            found = self._profiles_with("SocialMediaUserAccountID", literal(query["SocialMediaUserAccountID"]))
        elif "BusinessPartnerInternalID" in query:  # ExternalPartyAccountID optional
            contact = literal(query["BusinessPartnerInternalID"])
            candidates = (self._profiles_with("ExternalPartyAccountID", literal(query["ExternalPartyAccountID"]))
                          if "ExternalPartyAccountID" in query else self._profiles)
            found = [p for p in candidates if self._contacts.get(p["ObjectID"]) == contact]
        else:
            return odata_error(400, "GetSocialMediaUserProfile needs SocialMediaUserAccountID or "
                                    "BusinessPartnerInternalID")
        return results([self._entity(p) for p in found])

    def _create_profile(self, body: bytes) -> Answer:
        data = _json_object(body)
        if data is None:
            return odata_error(400, "The request body is not a JSON object")
        rows = data.get("SocialMediaUserProfileUserInformation")
        if not isinstance(rows, list) or not rows or not all(
                isinstance(r, dict) and r.get("SocialMediaUserAccountID") for r in rows):
            return odata_error(400, "SocialMediaUserAccountID is required in SocialMediaUserProfileUserInformation")
        refs = data.get("SocialMediaUserProfileBupaReference") or []
        if not isinstance(refs, list) or not all(
                isinstance(r, dict) and _DASHED.fullmatch(str(r.get("BusinessPartnerUUID", ""))) for r in refs):
            return odata_error(400, "BusinessPartnerUUID must be a dashed GUID")
        profile = self._new_profile(str(data.get("SocialMediaUserCategoryCode", "02")),
                                    [{f: str(r.get(f, "")) for f in ROW_FIELDS} for r in rows])
        if refs:
            profile["SocialMediaUserProfileBupaReference"] = copy.deepcopy(refs)
        return results(self._entity(profile), 201)

    def _create_activity(self, body: bytes) -> Answer:
        data = _json_object(body)
        if data is None:
            return odata_error(400, "The request body is not a JSON object")
        if data.get("CategoryCode") not in ("001", "003"):
            return odata_error(400, "CategoryCode must be 001 or 003")
        for name in ACTIVITY_REQUIRED:
            if not isinstance(data.get(name), str) or not data[name].strip():
                return odata_error(400, f"{name} is required")
        profile = self._find_profile(data.get("SocialMediaUserProfileUUID"))
        if profile is None:
            return odata_error(400, "SocialMediaUserProfileUUID does not identify a social media user profile")
        parent = None
        if data["CategoryCode"] == "003":
            parent = self._find_activity(data.get("ParentSocialMediaActivityUUID"), by_id=False)
            if parent is None:
                return odata_error(400, "ParentSocialMediaActivityUUID does not identify a social media activity")
        return results(dict(self._new_activity(profile, parent, data)), 201)

    # ---- SOAP (A2X)
    def _soap(self, endpoint: str, recorded: Recorded) -> Answer:
        service = SOAP_SERVICES.get(endpoint)
        if service is None:
            return 404, b"Service not found", {"content-type": "text/plain"}
        if recorded.method != "POST":
            return _fault("Only POST is supported", 405)
        try:
            envelope = ET.fromstring(recorded.body)
        except ET.ParseError as exc:
            return _fault(f"The request is not well-formed XML: {exc}")
        body = _child(envelope, "Body")
        request = body[0] if body is not None and len(body) else None
        if envelope.tag != f"{{{SOAP_ENV}}}Envelope" or request is None or request.tag != f"{{{GLOB}}}{service[0]}":
            return _fault(f"Expected {{{GLOB}}}{service[0]} in a SOAP 1.1 envelope")
        with self._data:
            inner = getattr(self, service[2])(request)
        return 200, _envelope(f'<n0:{service[1]} xmlns:n0="{GLOB}">{inner}</n0:{service[1]}>'), XML

    def _soap_maintain_activity(self, request: ET.Element) -> str:
        sma = _child(request, "SocialMediaActivity")
        profile_id, text = _text(sma, "SocialMediaUserProfileID"), _text(sma, "InteractionContent", "Text")
        profile = next((p for p in self._profiles if p["ID"] == profile_id), None)
        if profile is None:
            return _log(f"Social media user profile {profile_id} does not exist")
        if not text.strip():
            return _log("Text is required")
        roots = [a for a in self._activities
                 if a["SocialMediaUserProfileUUID"] == profile["ObjectID"] and a["CategoryCode"] == "001"]
        row = profile["SocialMediaUserProfileUserInformation"][0]
        activity = self._new_activity(profile, roots[-1] if roots else None, {
            "SocialMediaMessageID": _text(sma, "SocialMediaMessageID"), "Text": text, "InitiatorCode": "2",
            "SocialMediaActivityProviderID": _text(sma, "SocialMediaActivityProviderID"),
            "SocialMediaChannelCode": row["SocialMediaChannelCode"],
            "SocialMediaMessageAuthor": row["SocialMediaUserName"]})
        return _el("SocialMediaActivity", _ids(activity)) + _log()

    def _soap_query_activity(self, request: ET.Element) -> str:
        selection = _child(request, "SocialMediaActivitySelectionByElements", "SelectionBySocialMediaMessageID")
        if selection is None:
            return _log("Selection by SocialMediaMessageID is required")
        message_id = _text(selection, "LowerBoundarySocialMediaMessageID")
        hits = [a for a in self._activities if a["SocialMediaMessageID"] == message_id]
        items = "".join(_el("SocialMediaActivity", _ids(a) + _leaf("SocialMediaMessageID", a["SocialMediaMessageID"])
                            + _leaf("SocialMediaUserProfileID",
                                    self._find_profile(a["SocialMediaUserProfileUUID"])["ID"])
                            + _el("InteractionContent", _leaf("Text", a["Text"]))) for a in hits)
        return items + _hits(len(hits)) + _log()

    def _soap_maintain_profile(self, request: ET.Element) -> str:
        smup = _child(request, "SocialMediaUserProfile")
        if _text(smup, "UUID"):  # a bind/update of an existing profile
            profile = self._find_profile(_text(smup, "UUID"))
            if profile is None:
                return _log(f"Social media user profile {_text(smup, 'UUID')} does not exist")
        else:
            rows = [{"SocialMediaChannelCode": _text(info, "SocialMediaChannelCode"), "ExternalPartyAccountID": "",
                     "SocialMediaUserAccountID": _text(info, "SocialMediaUserAccountID"),
                     "SocialMediaUserName": f"{_text(info, 'GivenName')} {_text(info, 'FamilyName')}".strip()}
                    for info in _children(smup, "UserInformation")]
            if not rows or not all(r["SocialMediaUserAccountID"] for r in rows):
                return _log("SocialMediaUserAccountID is required")
            profile = self._new_profile(_text(smup, "SocialMediaUserCategoryCode") or "02", rows)
        if _text(smup, "CustomerInternalID"):
            self._contacts[profile["ObjectID"]] = _text(smup, "CustomerInternalID")
        return _el("SocialMediaUserProfile", _ids(profile)) + _log()

    def _soap_read_profile(self, request: ET.Element) -> str:
        selection = _child(request, "SocialMediaUserProfileSelectionByElements")
        by_id = _child(selection, "SelectionBySocialMediaUserProfileID")
        by_account = _child(selection, "SelectionBySocialMediaUserProfileUserAccountID")
        if by_id is not None:
            hits = [p for p in self._profiles if p["ID"] == _text(by_id, "LowerBoundarySocialMediaUserProfileID")]
        elif by_account is not None:
            hits = self._profiles_with("SocialMediaUserAccountID", _text(
                by_account, "LowerBoundarySocialMediaUserProfileUserAccountID"))
        else:
            return _log("Selection by SocialMediaUserProfileID or UserAccountID is required")
        items = "".join(_el("SocialMediaUserProfile", _ids(p) + "".join(
            _el("UserInformation", _leaf("SocialMediaUserAccountID", r["SocialMediaUserAccountID"])
                + _leaf("SocialMediaChannelCode", r["SocialMediaChannelCode"]))
            for r in p["SocialMediaUserProfileUserInformation"])) for p in hits)
        return items + _hits(len(hits)) + _log()

    # ---- the store (callers hold self._data)
    @staticmethod
    def _entity(profile: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in profile.items() if not isinstance(v, list)}

    def _profiles_with(self, field: str, value: str | None) -> list[dict[str, Any]]:
        return [p for p in self._profiles if any(r[field] == value for r in p["SocialMediaUserProfileUserInformation"])]

    def _find_profile(self, object_id: Any) -> dict[str, Any] | None:
        return next((p for p in self._profiles if p["ObjectID"] == plain(object_id)), None)

    def _find_activity(self, key: Any, by_id: bool = True) -> dict[str, Any] | None:
        return next((a for a in self._activities if a["ObjectID"] == plain(key) or (by_id and a["ID"] == key)), None)

    def _new_profile(self, category: str, rows: list[dict[str, str]]) -> dict[str, Any]:
        profile = {"ObjectID": uuid.uuid4().hex.upper(), "ID": str(next(self._ids["profile"])),
                   "SocialMediaUserCategoryCode": category, "SocialMediaUserProfileUserInformation": rows}
        self._profiles.append(profile)
        return profile

    def _new_activity(self, profile: dict[str, Any], parent: dict[str, Any] | None,
                      data: dict[str, Any]) -> dict[str, Any]:
        object_id = uuid.uuid4().hex.upper()
        activity = {
            "ObjectID": object_id, "ID": str(next(self._ids["activity"])), "CategoryCode": "003" if parent else "001",
            "SocialMediaMessageID": data["SocialMediaMessageID"], "SocialMediaUserProfileUUID": profile["ObjectID"],
            "ParentSocialMediaActivityUUID": parent["ObjectID"] if parent else "",
            "RootSocialMediaActivityUUID": parent["RootSocialMediaActivityUUID"] if parent else object_id,
            **{f: str(data.get(f) or "") for f in ("Text", "InitiatorCode", "SocialMediaActivityProviderID",
                                                   "SocialMediaChannelCode", "SocialMediaMessageAuthor")},
            "PrivateSocialMediaMessageIndicator": bool(data.get("PrivateSocialMediaMessageIndicator", False)),
        }
        self._activities.append(activity)
        if parent is None:
            ticket = self._new_ticket(self._contacts.get(profile["ObjectID"], ""))
            self._ticket_roots[ticket["ID"]] = object_id
        return activity

    def _new_ticket(self, buyer_contact_id: str) -> dict[str, str]:
        ticket = {"ID": str(next(self._ids["ticket"])), "ObjectID": uuid.uuid4().hex.upper(),
                  "BuyerMainContactPartyID": buyer_contact_id}
        self._tickets.append(ticket)
        return ticket
