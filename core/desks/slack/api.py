"""The Slack Web API over the relay's shared httpx client: form-encoded calls with the bot token in the
Authorization header, Slack's HTTP 200 `ok: false` answers mapped to transient or permanent errors, the
external file upload, and downloads of private files."""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx

from core.desks.slack.pace import Pace, RateLimited
from core.errors import CredentialsRefused, PermanentDeliveryError, TransientDeliveryError
from core.http import check_status, retry_after, send

# `ok: false` errors worth retrying (https://docs.slack.dev/reference/methods: the errors every method shares)
TRANSIENT_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                              "request_timeout", "team_added_to_org"})
# `ok: false` errors that mean the app's set-up is wrong (token, scopes, the bot not in the channel): like a
# 401, a configuration fault that is logged loudly and waited out, so what waited is posted once it is fixed
SETUP_ERRORS = frozenset({"not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired",
                          "no_permission", "missing_scope", "not_allowed_token_type", "ekm_access_denied",
                          "team_access_not_granted", "org_login_required", "not_in_channel", "channel_not_found",
                          "is_archived"})
FILE_HOSTS = ("slack.com", "slack-gov.com")  # where url_private points; the bot token goes nowhere else


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class SlackApi:
    def __init__(self, api_base: str, token: str, http: httpx.AsyncClient, pace: Pace) -> None:
        self.api_base, self.http, self.pace = api_base, http, pace
        self._auth = {"authorization": f"Bearer {token}"}
        self._own_host = urlsplit(api_base).hostname or ""

    async def post(self, method: str, key: str, **fields: Any) -> dict[str, Any]:
        """A call that posts in the channel: it waits for its turn (pace.py; `key` names the post, so a
        post put back keeps its turn), and Slack's Retry-After holds every post."""
        await self.pace.turn(key)
        try:
            return await self.call(method, **fields)
        except RateLimited as exc:
            self.pace.hold(exc.retry_after or 1.0)
            raise

    async def call(self, method: str, **fields: Any) -> dict[str, Any]:
        """POST one Web API method (None fields left out); the answer when `ok`, else an error."""
        data = {name: _form_value(value) for name, value in fields.items() if value is not None}
        response = await send(self.http, "POST", f"{self.api_base}/{method}", data=data, headers=self._auth)
        try:
            check_status(response, detail=method)
        except TransientDeliveryError as exc:
            if response.status_code == 429:
                raise RateLimited(str(exc), retry_after=exc.retry_after) from None
            raise
        try:
            answer = response.json()
        except ValueError:
            raise TransientDeliveryError(f"Slack {method}: the answer is not JSON") from None
        if not isinstance(answer, dict):
            raise TransientDeliveryError(f"Slack {method}: the answer is not a JSON object")
        if answer.get("ok") is True:
            return answer
        error = str(answer.get("error") or "unknown_error")[:200]
        message = f"Slack {method}: {error}"
        if error == "ratelimited":
            raise RateLimited(message, retry_after=retry_after(response))
        if error in TRANSIENT_ERRORS:
            raise TransientDeliveryError(message, retry_after=retry_after(response))
        if error in SETUP_ERRORS:
            raise CredentialsRefused(message)
        raise PermanentDeliveryError(message)

    async def upload(self, key: str, data: bytes, filename: str, title: str, channel: str, thread_ts: str) -> str:
        """Share a file in a thread with the external upload flow (files.upload is retired); its id.
        Sharing posts in the channel, so it takes a turn as `key`."""
        grant = await self.call("files.getUploadURLExternal", filename=filename, length=len(data))
        upload_url, file_id = grant.get("upload_url"), grant.get("file_id")
        if not isinstance(upload_url, str) or not upload_url.startswith(("https://", "http://")) or not file_id:
            raise TransientDeliveryError("Slack files.getUploadURLExternal: no upload_url or file_id")
        check_status(await send(self.http, "POST", upload_url, content=data,
                                headers={"content-type": "application/octet-stream"}), detail="file upload")
        await self.post("files.completeUploadExternal", key, files=[{"id": file_id, "title": title}],
                        channel_id=channel, thread_ts=thread_ts)
        return str(file_id)

    async def download(self, url: str, limit: int) -> bytes:
        """A private Slack file (url_private or a thumbnail), fetched with the bot token."""
        host = urlsplit(url).hostname or ""
        if not (host == self._own_host or any(host == h or host.endswith("." + h) for h in FILE_HOSTS)):
            raise PermanentDeliveryError(f"a Slack file on {host or 'no host'}: the bot token is not sent there")
        response = check_status(await send(self.http, "GET", url, headers=self._auth), detail="Slack file")
        if response.headers.get("content-type", "").startswith("text/html"):
            raise CredentialsRefused("Slack answered a login page for a file: give the app the files:read scope")
        if len(response.content) > limit:
            raise PermanentDeliveryError(f"a Slack file of {len(response.content)} bytes: over {limit}")
        return response.content
