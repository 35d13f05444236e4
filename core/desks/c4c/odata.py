"""C4C's OData v2 API (`c4codataapi`): Basic auth on every call, a CSRF token fetched into the same
cookie jar as the modifying calls, answers under `d.results`."""
from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import httpx

from core.desks.c4c.settings import C4CSettings
from core.desks.c4c.social import Activity, Profile
from core.errors import TransientDeliveryError
from core.http import check_status, make_client, send

API_PATH = "/sap/c4c/odata/v1/c4codataapi/"
JSON = {"accept": "application/json"}
ROOT, FOLLOW_UP = "001", "003"  # SocialMediaActivity CategoryCode
FROM_CUSTOMER, FROM_AGENT_SIDE = "2", "1"  # InitiatorCode


def literal(value: str) -> str:
    """An OData string literal: single quotes, inner quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def query(**params: str) -> str:
    return "?" + "&".join(f"{name}={quote(value, safe=chr(39) + '(),=')}" for name, value in params.items())


def with_query(url: str, **params: str) -> str:
    """`url` with `params` added, whether or not it has a query already."""
    extra = query(**params)
    return url + ("&" + extra[1:] if "?" in url else extra)


def _error_text(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
        return str(message.get("value", message) if isinstance(message, dict) else message)
    except (ValueError, KeyError, TypeError):
        return response.text[:200].strip()


def checked(response: httpx.Response) -> httpx.Response:
    """check_status with C4C's own error text (401/403 wait for the credentials to be fixed; any other
    4xx means the call itself is wrong and retrying cannot help)."""
    if response.is_success:
        return response
    hint = " (check C4C_USER/C4C_PASSWORD and the user's rights)" if response.status_code in (401, 403) else ""
    return check_status(response, f"C4C: {_error_text(response)}{hint}")


def results(response: httpx.Response) -> Any:
    try:
        return response.json()["d"]["results"]
    except (ValueError, KeyError, TypeError):  # e.g. a login page from a proxy in front of the tenant
        raise TransientDeliveryError(f"C4C {response.request.url.path}: the answer is not OData JSON") from None


class ODataClient:
    """One cookie jar for this tenant: C4C accepts a CSRF token only with the cookies it came with."""

    def __init__(self, settings: C4CSettings) -> None:
        self.base = f"{settings.base_url}{API_PATH}"
        self.auth = httpx.BasicAuth(settings.user or "", settings.password or "")
        self.http = make_client()
        self._token: str | None = None
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self.http.aclose()

    async def get(self, path_or_url: str) -> Any:
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        return results(checked(await send(self.http, "GET", url, auth=self.auth, headers=JSON)))

    async def post(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        token = await self._csrf(stale=None)
        response = await self._post(collection, body, token)
        if _csrf_refused(response):
            response = await self._post(collection, body, await self._csrf(stale=token))  # expired: once more
            if _csrf_refused(response):  # expired again meanwhile: the outbox tries later
                raise TransientDeliveryError(f"C4C {collection}: CSRF token refused twice")
        created = results(checked(response))
        if not isinstance(created, dict):
            raise TransientDeliveryError(f"C4C {collection}: the answer holds no created entity")
        return created

    async def _post(self, collection: str, body: dict[str, Any], token: str) -> httpx.Response:
        headers = {**JSON, "x-csrf-token": token} if token else JSON
        return await send(self.http, "POST", self.base + collection, json=body, auth=self.auth, headers=headers)

    async def _csrf(self, stale: str | None) -> str:
        """The current token; a fresh one when `stale` is the current one (concurrent callers fetch once).
        "" when the tenant issues none (SAP: not needed for integration users): calls go without one."""
        async with self._lock:
            if self._token is None or self._token == stale:
                response = checked(await send(self.http, "GET", self.base, auth=self.auth,
                                              headers={**JSON, "x-csrf-token": "fetch"}))
                token = response.headers.get("x-csrf-token", "")
                self._token = "" if token.lower() == "required" else token
            return self._token


def _csrf_refused(response: httpx.Response) -> bool:
    return response.status_code == 403 and response.headers.get("x-csrf-token", "").lower() == "required"


def _profile(entity: dict[str, Any]) -> Profile:
    return Profile(uuid=str(entity["ObjectID"]), id=str(entity.get("ID", "")))


def _activity(entity: dict[str, Any]) -> Activity:
    uuid = str(entity["ObjectID"])
    return Activity(uuid=uuid, id=str(entity.get("ID", "")), root_uuid=str(entity.get("RootSocialMediaActivityUUID")
                                                                            or uuid),
                    profile_uuid=str(entity.get("SocialMediaUserProfileUUID") or ""))


class ODataSocialMedia:
    """Profiles and activities through `c4codataapi` (SAP's recommended route)."""

    def __init__(self, client: ODataClient, settings: C4CSettings) -> None:
        self.client, self.settings = client, settings

    async def find_profile(self, openid: str) -> Profile | None:
        found = await self.client.get("GetSocialMediaUserProfile" + query(SocialMediaUserAccountID=literal(openid)))
        return _profile(found[0]) if found else None

    async def create_profile(self, openid: str) -> Profile:
        return _profile(await self.client.post("SocialMediaUserProfileCollection", {
            "SocialMediaUserCategoryCode": "02",
            "SocialMediaUserProfileUserInformation": [{
                "SocialMediaChannelCode": self.settings.channel_code,
                "ExternalPartyAccountID": self.settings.channel_id,
                "SocialMediaUserAccountID": openid,
                "SocialMediaUserName": f"WeChat {openid[-6:]}",
            }],
        }))

    async def find_activity(self, message_id: str) -> Activity | None:
        return await self._activity_where("SocialMediaMessageID", message_id)

    async def activity_by_id(self, activity_id: str) -> Activity | None:
        """An activity by its C4C number (the Mashup's `sma_id`: the agent's reply)."""
        return await self._activity_where("ID", activity_id)

    async def _activity_where(self, field: str, value: str) -> Activity | None:
        found = await self.client.get("SocialMediaActivityCollection" + query(
            **{"$filter": f"{field} eq {literal(value)}"}))
        mine = [e for e in found if e.get("SocialMediaActivityProviderID") in (None, self.settings.channel_id)]
        return _activity(mine[0]) if mine else None

    async def create_activity(self, profile: Profile, message_id: str, text: str, root: Activity | None,
                              from_agent_side: bool = False) -> Activity:
        body = {
            "CategoryCode": FOLLOW_UP if root else ROOT,
            "SocialMediaMessageID": message_id,
            "SocialMediaUserProfileUUID": profile.uuid,
            "SocialMediaActivityProviderID": self.settings.channel_id,
            "SocialMediaChannelCode": self.settings.channel_code,
            "InitiatorCode": FROM_AGENT_SIDE if from_agent_side else FROM_CUSTOMER,
            "PrivateSocialMediaMessageIndicator": True,
            "Text": text,
        }
        if root:
            body["ParentSocialMediaActivityUUID"] = root.root_uuid
        return _activity(await self.client.post("SocialMediaActivityCollection", body))

    async def openid_of_activity(self, message_id: str) -> tuple[str, Activity] | None:
        activity = await self.find_activity(message_id)
        if activity is None or not activity.profile_uuid:
            return None
        openid = await self.openid_of_profile(activity.profile_uuid)
        return (openid, activity) if openid else None

    async def openid_of_profile(self, profile_uuid: str) -> str | None:
        rows = await self.client.get(
            f"SocialMediaUserProfileCollection({literal(profile_uuid)})/SocialMediaUserProfileUserInformation")
        # Ours first; then any account: intake found this profile by account id alone (one made over SOAP
        # or on another channel), and the desk accepts only an id it linked to a user of this relay.
        ours = [r for r in rows if r.get("ExternalPartyAccountID") == self.settings.channel_id] or \
            [r for r in rows if r.get("SocialMediaChannelCode") == self.settings.channel_code] or rows
        return next((str(r["SocialMediaUserAccountID"]).strip() for r in ours
                     if str(r.get("SocialMediaUserAccountID") or "").strip()), None)

    async def openid_of_ticket(self, ticket_id: str) -> str | None:
        """Ticket → buyer's main contact → that contact's profile on our channel → account id."""
        tickets = await self.client.get("ServiceRequestCollection" + query(
            **{"$filter": f"ID eq {literal(ticket_id)}"}))
        contact = tickets[0].get("BuyerMainContactPartyID") if tickets else None
        if not contact:
            return None
        contact_id = literal(str(contact))
        profiles = await self.client.get("GetSocialMediaUserProfile" + query(
            BusinessPartnerInternalID=contact_id, ExternalPartyAccountID=literal(self.settings.channel_id or "")))
        if not profiles:  # A2X-created profiles carry no ExternalPartyAccountID
            profiles = await self.client.get("GetSocialMediaUserProfile" + query(BusinessPartnerInternalID=contact_id))
        for profile in profiles:
            openid = await self.openid_of_profile(str(profile["ObjectID"]))
            if openid:
                return openid
        return None

    async def wechat_id(self, url: str, customer: str) -> str | None:
        """The WechatID extension field of a customer (the ABSL field exposed by a custom OData service)."""
        rows = await self.client.get(with_query(url, **{"$filter": f"ParentObjectID eq {literal(customer)}"}))
        return next((str(r["WechatID"]).strip() for r in rows if str(r.get("WechatID") or "").strip()), None)
