"""The A2X SOAP services the seed code uses (SAP marks them deprecated): compatibility route.

Requests follow the published envelopes with every value XML-escaped; answers are parsed with a real
XML parser (no DTDs), matching elements by local name whatever prefixes the tenant uses."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar
from xml.sax import saxutils

import httpx

from core.bodies import parse_xml
from core.desks.c4c.odata import checked
from core.desks.c4c.settings import C4CSettings
from core.desks.c4c.social import Activity, Profile
from core.errors import BadRequest, PermanentDeliveryError, TransientDeliveryError
from core.http import send

SERVICES = {
    "manage_activity": "/sap/bc/srt/scs/sap/managesocialmediaactivityin",
    "query_activity": "/sap/bc/srt/scs/sap/querysocialmediaactivityin",
    "manage_profile": "/sap/bc/srt/scs/sap/managesocialmediauserprofilein",
    "read_profile": "/sap/bc/srt/scs/sap/requestforsocialmediauserprofi",  # the truncated name is real
}
ENVELOPE = ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
            ' xmlns:glob="http://sap.com/xi/SAPGlobal20/Global"><soapenv:Header/><soapenv:Body>'
            '<glob:{root}>{content}</glob:{root}></soapenv:Body></soapenv:Envelope>')
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")  # XML 1.0 cannot carry these
EQUALS = "<InclusionExclusionCode>I</InclusionExclusionCode><IntervalBoundaryTypeCode>1</IntervalBoundaryTypeCode>"


def escape(value: str) -> str:
    """Text for an element: characters XML 1.0 cannot carry dropped (C4C would refuse the call), the
    rest escaped."""
    return saxutils.escape(NOT_XML.sub("", value))


def _local(name: str) -> str:
    return name.rsplit(":", 1)[-1]


def find_all(tree: Any, name: str) -> list[Any]:
    """Every element called `name` (any prefix), depth first, in document order."""
    found: list[Any] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            for item in value if isinstance(value, list) else [value]:
                if _local(key) == name:
                    found.append(item)
                found.extend(find_all(item, name))
    elif isinstance(tree, list):
        for item in tree:
            found.extend(find_all(item, name))
    return found


def text_of(tree: Any, name: str) -> str | None:
    for item in find_all(tree, name):
        value = item.get("#text") if isinstance(item, dict) else item
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


class SoapSocialMedia:
    def __init__(self, http: httpx.AsyncClient, settings: C4CSettings) -> None:
        self.http, self.settings = http, settings
        self.auth = httpx.BasicAuth(settings.user or "", settings.password or "")

    async def _call(self, service: str, root: str, content: str) -> Any:
        body = ENVELOPE.format(root=root, content=content).encode()
        response = await send(self.http, "POST", f"{self.settings.base_url}{SERVICES[service]}", content=body,
                              auth=self.auth, headers={"content-type": "text/xml; charset=utf-8"})
        fault = _fault(response)
        if fault:
            raise (TransientDeliveryError if response.status_code >= 500 and "Client" not in fault[0]
                   else PermanentDeliveryError)(f"C4C {service}: SOAP fault {fault[0]}: {fault[1]}")
        tree = _parse(checked(response), service)
        errors = [text_of(item, "Note") or "no note" for item in find_all(tree, "Item")
                  if text_of(item, "SeverityCode") == "3"]
        if errors:
            raise PermanentDeliveryError(f"C4C {service}: {'; '.join(errors)}")
        return tree

    async def find_profile(self, openid: str) -> Profile | None:
        tree = await self._call("read_profile", "SocialMediaUserProfileRequest_sync", (
            "<SocialMediaUserProfileSelectionByElements><SelectionBySocialMediaUserProfileUserAccountID>"
            f"{EQUALS}<LowerBoundarySocialMediaUserProfileUserAccountID>{escape(openid)}"
            "</LowerBoundarySocialMediaUserProfileUserAccountID></SelectionBySocialMediaUserProfileUserAccountID>"
            "</SocialMediaUserProfileSelectionByElements>"))
        return next((_profile(p) for p in find_all(tree, "SocialMediaUserProfile")), None)

    async def create_profile(self, openid: str) -> Profile:
        tree = await self._call("manage_profile", "SocialMediaUserProfileBundleMaintainRequest_sync", (
            "<SocialMediaUserProfile><SocialMediaUserCategoryCode>02</SocialMediaUserCategoryCode><UserInformation>"
            f"<SocialMediaUserAccountID>{escape(openid)}</SocialMediaUserAccountID>"
            f"<SocialMediaChannelCode>{escape(self.settings.channel_code)}</SocialMediaChannelCode>"
            f"<FamilyName>{escape(openid[-6:])}</FamilyName><GivenName>WeChat</GivenName>"
            "</UserInformation></SocialMediaUserProfile>"))
        return _one(tree, "SocialMediaUserProfile", _profile, "manage_profile")

    async def find_activity(self, message_id: str) -> Activity | None:
        return next((activity for activity, _ in await self._activities(message_id)), None)

    async def create_activity(self, profile: Profile, message_id: str, text: str, root: Activity | None,
                              from_agent_side: bool = False) -> Activity:
        """C4C threads A2X activities by profile itself: there is no parent to name."""
        tree = await self._call("manage_activity", "SocialMediaActivityBundleMaintainRequestsync", (
            f"<SocialMediaActivity><SocialMediaMessageID>{escape(message_id)}</SocialMediaMessageID>"
            f"<SocialMediaUserProfileID>{escape(profile.id)}</SocialMediaUserProfileID>"
            f"<SocialMediaActivityProviderID>{escape(self.settings.channel_id or '')}</SocialMediaActivityProviderID>"
            f"<InteractionContent><Text>{escape(text)}</Text></InteractionContent></SocialMediaActivity>"))
        return _one(tree, "SocialMediaActivity", lambda a: _activity(a, profile.uuid), "manage_activity")

    async def openid_of_activity(self, message_id: str) -> tuple[str, Activity] | None:
        for activity, profile_id in await self._activities(message_id):
            tree = await self._call("read_profile", "SocialMediaUserProfileRequest_sync", (
                "<SocialMediaUserProfileSelectionByElements><SelectionBySocialMediaUserProfileID>"
                f"{EQUALS}<LowerBoundarySocialMediaUserProfileID>{escape(profile_id)}"
                "</LowerBoundarySocialMediaUserProfileID></SelectionBySocialMediaUserProfileID>"
                "</SocialMediaUserProfileSelectionByElements>"))
            openid = text_of(tree, "SocialMediaUserAccountID")
            if openid:
                return openid, activity
        return None

    async def _activities(self, message_id: str) -> list[tuple[Activity, str]]:
        tree = await self._call("query_activity", "SocialMediaActivityByElementsQuery_sync", (
            "<SocialMediaActivitySelectionByElements><SelectionBySocialMediaMessageID>"
            f"{EQUALS}<LowerBoundarySocialMediaMessageID>{escape(message_id)}</LowerBoundarySocialMediaMessageID>"
            "</SelectionBySocialMediaMessageID></SocialMediaActivitySelectionByElements>"))
        if text_of(tree, "ReturnedQueryHitsNumberValue") in (None, "0"):
            return []
        return [(_activity(a, ""), text_of(a, "SocialMediaUserProfileID") or "")
                for a in find_all(tree, "SocialMediaActivity") if text_of(a, "ID")]


def _fault(response: httpx.Response) -> tuple[str, str] | None:
    if b"Fault" not in response.content[:2000]:
        return None
    try:
        tree = parse_xml(response.content)
    except BadRequest:
        return None
    faults = find_all(tree, "Fault")
    if not faults:
        return None
    return text_of(faults[0], "faultcode") or "?", text_of(faults[0], "faultstring") or "no faultstring"


def _parse(response: httpx.Response, service: str) -> Any:
    try:
        return parse_xml(response.content)
    except BadRequest as exc:
        raise TransientDeliveryError(f"C4C {service}: the answer is not SOAP XML ({exc.message})") from None


def _profile(element: Any) -> Profile:
    return Profile(uuid=text_of(element, "UUID") or "", id=text_of(element, "ID") or "")


def _activity(element: Any, profile_uuid: str) -> Activity:
    uuid = text_of(element, "UUID") or ""
    return Activity(uuid=uuid, id=text_of(element, "ID") or "", root_uuid=uuid, profile_uuid=profile_uuid)


T = TypeVar("T")


def _one(tree: Any, name: str, build: Callable[[Any], T], service: str) -> T:
    for element in find_all(tree, name):
        if text_of(element, "ID"):
            return build(element)
    raise PermanentDeliveryError(f"C4C {service}: the confirmation names no {name} ID")
