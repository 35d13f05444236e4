"""Settings.from_env(): the only place that reads the environment. A bad value stops start-up,
naming the variable.

The relay's own settings live here; each desk declares and parses its own (`Desk.settings_type`), and
this module walks the desk registry, so adding a desk never touches it."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from core import __version__
from core.desks import DEFAULT_DESK, REGISTRY, Desk, DeskSettings
from core.env import EnvReader
from core.errors import ConfigError
from core.models import Retention
from core.wechat.settings import WeChatSettings

DAY = 86400.0
Registry = Mapping[str, type[Desk[Any]]]


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///relay.db"
    wechat: WeChatSettings = field(default_factory=WeChatSettings)
    desk: str | None = DEFAULT_DESK
    routes: tuple[tuple[str, str], ...] = ()
    max_body: int = 1 << 20
    body_seconds: float = 10.0  # a request body must arrive within this
    retry_for: float = 86400.0  # dead-letter a job still failing after this long
    lease_seconds: float = 60.0
    worker_concurrency: int = 16
    log_level: str = "info"
    retention: Retention = field(default_factory=Retention)
    sandbox: bool = False  # RELAY_SANDBOX: /sandbox and an in-process stand-in for the WeChat API
    desks: Mapping[str, DeskSettings] = field(default_factory=dict)  # every registered desk's own settings

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, registry: Registry = REGISTRY, *,
                 store_explicit: bool = False) -> Settings:
        """`store_explicit`: the default of RELAY_STORE_EXPLICIT (on where a local SQLite file is lost,
        as in the cloud function)."""
        reader = EnvReader(os.environ if env is None else env)
        return cls.read(reader, registry, store_explicit=store_explicit)

    @classmethod
    def read(cls, env: EnvReader, registry: Registry = REGISTRY, *, store_explicit: bool = False) -> Settings:
        names = tuple(registry)
        settings = cls(
            database_url=_database_url(env, env.flag("RELAY_STORE_EXPLICIT", store_explicit)),
            wechat=WeChatSettings.from_env(env),
            desk=env.optional_choice("RELAY_DESK", names) or (DEFAULT_DESK if DEFAULT_DESK in registry else None),
            routes=_routes(env.str("RELAY_ROUTES") or "", names),
            max_body=env.int("RELAY_MAX_BODY", 1 << 20),
            body_seconds=env.int("RELAY_BODY_TIMEOUT", 10),
            retry_for=env.int("RELAY_RETRY_FOR", 86400),
            lease_seconds=env.int("RELAY_LEASE_SECONDS", 60),
            worker_concurrency=env.int("RELAY_WORKER_CONCURRENCY", 16),
            log_level=env.choice("RELAY_LOG_LEVEL", ("debug", "info", "warning", "error"), "info"),
            retention=Retention(dead_letters=env.int("RELAY_DEAD_KEEP_DAYS", 30) * DAY,
                                conversations=env.int("RELAY_CONVERSATION_KEEP_DAYS", 90) * DAY),
            sandbox=env.flag("RELAY_SANDBOX"),
            desks={name: desk.settings_type.from_env(env) for name, desk in registry.items()},
        )
        for name in settings.desks_in_use():
            missing = settings.desks[name].missing()
            if missing:
                raise ConfigError(f"the {name} desk is in use (RELAY_DESK/RELAY_ROUTES) but "
                                  f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set")
        return settings

    def summary(self) -> dict[str, object]:
        """The active set-up for the start-up line: no secrets, no secret path."""
        wx = self.wechat
        return {"version": __version__, "store": self.database_url.split(":", 1)[0], "desk": self.desk,
                "desks": self.desks_in_use(), "routes": len(self.routes), "push_trust": wx.push_trust,
                "push_path": "/" if wx.push_path == "/" else "secret (WX_PUSH_PATH)",
                "token": "stable_token (WX_SECRET)" if wx.secret else "none: Cloud Run's open-API service adds it",
                "developer_server": "safe mode" if wx.aes_key else ("plaintext" if wx.token else "off")}

    def desks_in_use(self) -> list[str]:
        names = ([self.desk] if self.desk else []) + [desk for _, desk in self.routes]
        return list(dict.fromkeys(names))


def variables_read(registry: Registry = REGISTRY) -> set[str]:
    """Every environment variable the relay and its desks read (for the docs check and test harnesses)."""
    reader = EnvReader({})
    Settings.read(reader, registry)
    return reader.names


def _routes(raw: str, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    routes = []
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        prefix, sep, desk = pair.rpartition(":")
        if not sep or desk.lower() not in names:
            raise ConfigError(f"RELAY_ROUTES entry {pair!r} must be session_from_prefix:desk, desk one of "
                              f"{', '.join(names)}")
        routes.append((prefix, desk.lower()))
    return tuple(routes)


def _database_url(env: EnvReader, explicit: bool) -> str:
    """DATABASE_URL, else the MYSQL_* variables Cloud Run injects, else (unless `explicit`) ./relay.db."""
    url, address = env.str("DATABASE_URL"), env.str("MYSQL_ADDRESS")
    if explicit and not (url or address):
        raise ConfigError("MySQL is not configured: enable MySQL for the service (Cloud Run injects MYSQL_ADDRESS, "
                          "MYSQL_USERNAME, MYSQL_PASSWORD; set MYSQL_DATABASE) or set DATABASE_URL; a local SQLite "
                          "file is lost on restart and not shared by replicas, so DATABASE_URL=sqlite:///... must be "
                          "chosen explicitly here (RELAY_STORE_EXPLICIT is on)")
    user, password = env.str("MYSQL_USERNAME", "root") or "root", env.raw("MYSQL_PASSWORD")
    database = env.str("MYSQL_DATABASE", "relay")
    if not url and address:
        url = f"mysql://{quote(user, safe='')}:{quote(password, safe='')}@{address}/{database}"
    url = url or "sqlite:///relay.db"
    if not re.match(r"(sqlite:///.+|mysql://.+)$", url):
        raise ConfigError("DATABASE_URL must be sqlite:///path or mysql://user:password@host:port/database")
    return url
