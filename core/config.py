"""Settings.from_env(): the only place that reads the environment. A bad value stops start-up,
naming the variable."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import quote

from core.errors import ConfigError

DESK_NAMES = ("webhook", "c4c", "echat", "easemob", "slack")


@dataclass(frozen=True)
class WeChatSettings:
    api_base: str = "http://api.weixin.qq.com"
    push_trust: str = "header"  # "header", "network" or "signed" (developer-server pushes only)
    appid: str | None = None
    secret: str | None = None
    token: str | None = None
    aes_key: str | None = None


@dataclass(frozen=True)
class WebhookSettings:
    url: str | None = None
    secret: str | None = None

    required = {"url": "WEBHOOK_URL", "secret": "WEBHOOK_SECRET"}


@dataclass(frozen=True)
class C4CSettings:
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


ECHAT_SYSTEM_NOTICES = ("start", "busy", "noreply", "end", "invite")


@dataclass(frozen=True)
class EchatSettings:
    token: str | None = None
    aes_key: str | None = None  # set: cipher mode (密文)
    appid: str | None = None
    chat_url: str | None = None  # Echat's H5 chat window, e.g. https://chat.echatsoft.com/visitor/mobile/chat.html?companyId=N
    chat_page: str | None = None  # or a Mini Program page whose web-view opens it, e.g. pages/echat/index
    handover_every: int = 600
    handover_title: str = "人工客服"
    handover_text: str = "点这里和人工客服继续聊，客服的回复也会发到这里。"
    handover_thumb_url: str | None = None  # set: the hand-over is a link card
    handover_quote: bool = False  # show the user's last words in the hand-over text
    system_notices: frozenset[str] = frozenset({"end"})

    required = {"token": "ECHAT_TOKEN"}


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///relay.db"
    wechat: WeChatSettings = field(default_factory=WeChatSettings)
    desk: str | None = None
    routes: tuple[tuple[str, str], ...] = ()
    max_body: int = 1 << 20
    retry_for: float = 86400.0  # dead-letter a job still failing after this long
    lease_seconds: float = 60.0
    worker_concurrency: int = 16
    log_level: str = "info"
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    c4c: C4CSettings = field(default_factory=C4CSettings)
    echat: EchatSettings = field(default_factory=EchatSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        get = _Reader(env)
        wechat = WeChatSettings(
            api_base=get.url("WX_API_BASE", "http://api.weixin.qq.com"),
            push_trust=get.choice("WX_PUSH_TRUST", ("header", "network", "signed"), "header"),
            appid=get.str("WX_APPID"),
            secret=get.str("WX_SECRET"),
            token=get.str("WX_TOKEN"),
            aes_key=get.str("WX_AES_KEY"),
        )
        if wechat.secret and not wechat.appid:
            raise ConfigError("WX_SECRET is set but WX_APPID is not: a stable_token needs both")
        if wechat.aes_key:
            if not re.fullmatch(r"[A-Za-z0-9]{43}", wechat.aes_key):
                raise ConfigError("WX_AES_KEY must be the 43-character EncodingAESKey")
            if not wechat.token or not wechat.appid:
                raise ConfigError("WX_AES_KEY needs WX_TOKEN and WX_APPID (safe mode checks both)")
        settings = cls(
            database_url=_database_url(env),
            wechat=wechat,
            desk=get.choice("RELAY_DESK", DESK_NAMES, None),
            routes=_routes(get.str("RELAY_ROUTES") or ""),
            max_body=get.int("RELAY_MAX_BODY", 1 << 20),
            retry_for=get.int("RELAY_RETRY_FOR", 86400),
            lease_seconds=get.int("RELAY_LEASE_SECONDS", 60),
            worker_concurrency=get.int("RELAY_WORKER_CONCURRENCY", 16),
            log_level=get.choice("RELAY_LOG_LEVEL", ("debug", "info", "warning", "error"), "info"),
            webhook=WebhookSettings(url=get.url("WEBHOOK_URL", None), secret=get.str("WEBHOOK_SECRET")),
            c4c=_c4c(get),
            echat=_echat(get),
        )
        for desk in settings.desks_in_use():
            section = getattr(settings, desk, None)
            for attr, variable in getattr(section, "required", {}).items():
                if not getattr(section, attr):
                    raise ConfigError(f"{variable} is required when the {desk} desk is in use")
        return settings

    def desks_in_use(self) -> list[str]:
        names = ([self.desk] if self.desk else []) + [desk for _, desk in self.routes]
        return list(dict.fromkeys(names))


def _c4c(get: _Reader) -> C4CSettings:
    base_url = get.url("C4C_BASE_URL", None)
    default_wechatid = f"{base_url}/sap/c4c/odata/cust/v1/zindividualcustomer/CustomerCommonCollection" \
        if base_url else None
    return C4CSettings(
        base_url=base_url, user=get.str("C4C_USER"), password=get.str("C4C_PASSWORD"),
        channel_id=get.str("C4C_CHANNEL_ID"), api=get.choice("C4C_API", ("odata", "soap"), "odata") or "odata",
        channel_code=get.str("C4C_CHANNEL_CODE") or "008",
        inbound_user=get.str("C4C_INBOUND_USER"), inbound_password=get.str("C4C_INBOUND_PASSWORD"),
        wechatid_url=get.url("C4C_WECHATID_URL", default_wechatid),
        change_notice=get.str("C4C_CHANGE_NOTICE") or C4CSettings.change_notice,
    )


def _echat(get: _Reader) -> EchatSettings:
    aes_key, appid = get.str("ECHAT_AES_KEY"), get.str("ECHAT_APPID")
    if aes_key and not re.fullmatch(r"[A-Za-z0-9]{43}", aes_key):
        raise ConfigError("ECHAT_AES_KEY must be the 43-character encodingAesKey from Echat's 开放API page")
    if aes_key and not appid:
        raise ConfigError("ECHAT_AES_KEY needs ECHAT_APPID: cipher-mode pushes end with Echat's appId")
    notices = frozenset(n.strip().lower() for n in (get.str("ECHAT_SYSTEM_NOTICES") or "end").split(",") if n.strip())
    if notices - {"none", *ECHAT_SYSTEM_NOTICES} or ("none" in notices and len(notices) > 1):
        raise ConfigError(f"ECHAT_SYSTEM_NOTICES must be none or a comma list of {', '.join(ECHAT_SYSTEM_NOTICES)}")
    settings = EchatSettings(
        token=get.str("ECHAT_TOKEN"), aes_key=aes_key, appid=appid,
        chat_url=get.url("ECHAT_CHAT_URL", None), chat_page=get.str("ECHAT_CHAT_PAGE"),
        handover_every=get.int("ECHAT_HANDOVER_EVERY", 600),
        handover_title=get.str("ECHAT_HANDOVER_TITLE") or EchatSettings.handover_title,
        handover_text=get.str("ECHAT_HANDOVER_TEXT") or EchatSettings.handover_text,
        handover_thumb_url=get.url("ECHAT_HANDOVER_THUMB_URL", None),
        handover_quote=get.choice("ECHAT_HANDOVER_QUOTE", ("on", "off"), "off") == "on",
        system_notices=notices - {"none"},
    )
    if settings.token and not (settings.chat_url or settings.chat_page):
        raise ConfigError("the echat desk needs ECHAT_CHAT_URL or ECHAT_CHAT_PAGE: the hand-over opens it")
    return settings


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def str(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def int(self, name: str, default: int) -> int:
        raw = self.str(name)
        if raw is None:
            return default
        if not (raw.isascii() and raw.isdigit()) or int(raw) <= 0:
            raise ConfigError(f"{name} must be a positive whole number, not {raw!r}")
        return int(raw)

    def choice(self, name: str, choices: tuple[str, ...], default: str | None) -> str | None:
        raw = self.str(name)
        if raw is None:
            return default
        if raw.lower() not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
        return raw.lower()

    def url(self, name: str, default: str | None) -> str | None:
        raw = self.str(name) or default
        if raw is not None and not re.match(r"https?://[^\s/]+", raw):
            raise ConfigError(f"{name} must be an http(s) URL")
        return raw.rstrip("/") if raw else raw


def _routes(raw: str) -> tuple[tuple[str, str], ...]:
    routes = []
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        prefix, sep, desk = pair.rpartition(":")
        if not sep or desk.lower() not in DESK_NAMES:
            raise ConfigError(f"RELAY_ROUTES entry {pair!r} must be session_from_prefix:desk, desk one of "
                              f"{', '.join(DESK_NAMES)}")
        routes.append((prefix, desk.lower()))
    return tuple(routes)


def _database_url(env: Mapping[str, str]) -> str:
    url = env.get("DATABASE_URL", "").strip()
    if not url and env.get("MYSQL_ADDRESS", "").strip():
        user = quote(env.get("MYSQL_USERNAME", "root"), safe="")
        password = quote(env.get("MYSQL_PASSWORD", ""), safe="")
        database = env.get("MYSQL_DATABASE", "").strip() or "relay"
        url = f"mysql://{user}:{password}@{env['MYSQL_ADDRESS'].strip()}/{database}"
    url = url or "sqlite:///relay.db"
    if not re.match(r"(sqlite:///.+|mysql://.+)$", url):
        raise ConfigError("DATABASE_URL must be sqlite:///path or mysql://user:password@host:port/database")
    return url
