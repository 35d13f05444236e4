"""The C4C desk's settings: the tenant, the channel, and the credentials of the inbound routes."""
from __future__ import annotations

from dataclasses import dataclass

from core.desks.base import DeskSettings
from core.env import EnvReader

WECHATID_PATH = "/sap/c4c/odata/cust/v1/zindividualcustomer/CustomerCommonCollection"


@dataclass(frozen=True)
class C4CSettings(DeskSettings):
    base_url: str | None = None  # the tenant, https://myNNNNNN.crm.ondemand.com
    user: str | None = None
    password: str | None = None
    channel_id: str | None = None  # SocialMediaActivityProviderID / ExternalPartyAccountID
    api: str = "odata"  # or "soap" (A2X services, deprecated by SAP)
    channel_code: str = "008"  # SocialMediaChannelCode of WeChat
    inbound_user: str | None = None
    inbound_password: str | None = None
    wechatid_url: str | None = None  # the OData collection with the WechatID extension field
    change_notice: str = "您的客户资料已更新。"

    required = {"base_url": "C4C_BASE_URL", "user": "C4C_USER", "password": "C4C_PASSWORD",
                "channel_id": "C4C_CHANNEL_ID", "inbound_user": "C4C_INBOUND_USER",
                "inbound_password": "C4C_INBOUND_PASSWORD"}

    @classmethod
    def from_env(cls, env: EnvReader) -> C4CSettings:
        base_url = env.url("C4C_BASE_URL")
        return cls(
            base_url=base_url, user=env.str("C4C_USER"), password=env.str("C4C_PASSWORD"),
            channel_id=env.str("C4C_CHANNEL_ID"), api=env.choice("C4C_API", ("odata", "soap"), "odata"),
            channel_code=env.str("C4C_CHANNEL_CODE", cls.channel_code) or cls.channel_code,
            inbound_user=env.str("C4C_INBOUND_USER"), inbound_password=env.str("C4C_INBOUND_PASSWORD"),
            wechatid_url=env.url("C4C_WECHATID_URL", f"{base_url}{WECHATID_PATH}" if base_url else None),
            change_notice=env.str("C4C_CHANGE_NOTICE", cls.change_notice) or cls.change_notice,
        )
