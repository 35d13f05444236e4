"""Desk adapters, one module each, and the registry core looks them up in: adding a desk is its own
module and one line here."""
from __future__ import annotations

from typing import Any

from core.desks.base import Callback, Delivered, Desk, DeskSettings
from core.desks.c4c import C4CDesk
from core.desks.easemob import EasemobDesk
from core.desks.echat import EchatDesk
from core.desks.inbox import InboxDesk
from core.desks.slack import SlackDesk
from core.desks.webhook import WebhookDesk

REGISTRY: dict[str, type[Desk[Any]]] = {
    desk.name: desk for desk in (
        InboxDesk,
        WebhookDesk,
        C4CDesk,
        EchatDesk,
        EasemobDesk,
        SlackDesk,
    )
}

DEFAULT_DESK = InboxDesk.name  # when RELAY_DESK is unset

__all__ = ["DEFAULT_DESK", "REGISTRY", "Callback", "Delivered", "Desk", "DeskSettings"]
