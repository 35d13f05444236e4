"""The Easemob desk's settings: the IM app, the kefu IM service number, the callback rule's secret,
and how visitors are routed."""
from __future__ import annotations

import re
from dataclasses import dataclass

from core.desks.base import DeskSettings
from core.env import EnvReader
from core.errors import ConfigError

IM_NAME = re.compile(r"[a-z0-9_.-]{1,64}")  # what Easemob accepts as an IM user id


@dataclass(frozen=True)
class EasemobSettings(DeskSettings):
    base_url: str | None = "https://a1.easemob.com"
    org: str | None = None
    app: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    service_number: str | None = None  # the kefu IM service number (imServiceNumber): the agents' side
    callback_secret: str | None = None  # the post-send callback rule's secret
    # (SessionFrom prefix, kefu queue name) pairs, first match wins; "" matches every visitor
    queues: tuple[tuple[str, str], ...] = ()
    undeliverable_note: bool = True  # tell the agent in the kefu conversation when WeChat refused a reply

    required = {"org": "EASEMOB_ORG", "app": "EASEMOB_APP", "client_id": "EASEMOB_CLIENT_ID",
                "client_secret": "EASEMOB_CLIENT_SECRET", "service_number": "EASEMOB_SERVICE_NUMBER",
                "callback_secret": "EASEMOB_CALLBACK_SECRET"}

    @property
    def app_url(self) -> str:
        """The app's REST root: https://host/org/app."""
        return f"{self.base_url}/{self.org}/{self.app}"

    @classmethod
    def from_env(cls, env: EnvReader) -> EasemobSettings:
        service_number = env.str("EASEMOB_SERVICE_NUMBER")
        if service_number and not IM_NAME.fullmatch(service_number):
            raise ConfigError("EASEMOB_SERVICE_NUMBER must be the IM user id of the kefu service number "
                              "(lower-case a-z, 0-9, _ - ., at most 64)")
        return cls(
            base_url=env.url("EASEMOB_BASE_URL", cls.base_url), org=env.str("EASEMOB_ORG"),
            app=env.str("EASEMOB_APP"), client_id=env.str("EASEMOB_CLIENT_ID"),
            client_secret=env.str("EASEMOB_CLIENT_SECRET"), service_number=service_number,
            callback_secret=env.str("EASEMOB_CALLBACK_SECRET"), queues=_queues(env.str("EASEMOB_QUEUES") or ""),
            undeliverable_note=env.flag("EASEMOB_UNDELIVERABLE_NOTE", default=True),
        )

    def queue_for(self, session_from: str | None) -> str | None:
        """The kefu queue (skill group) a visitor who opened the chat from `session_from` is routed to."""
        for prefix, queue in self.queues:
            if (session_from or "").startswith(prefix):
                return queue
        return None


def _queues(raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        prefix, sep, queue = pair.rpartition(":")
        if not sep or not queue.strip():
            raise ConfigError(f"EASEMOB_QUEUES entry {pair!r} must be session_from_prefix:queue_name")
        pairs.append((prefix, queue.strip()))
    return tuple(pairs)
