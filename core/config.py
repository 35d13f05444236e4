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
