"""Desk adapters, one module each, and the registry core looks them up in."""
from __future__ import annotations

from core.desks.base import Callback, Delivered, Desk
from core.desks.c4c import C4CDesk
from core.desks.echat import EchatDesk
from core.desks.webhook import WebhookDesk

REGISTRY: dict[str, type[Desk]] = {
    WebhookDesk.name: WebhookDesk,
    C4CDesk.name: C4CDesk,
    EchatDesk.name: EchatDesk,
}

__all__ = ["REGISTRY", "Callback", "Delivered", "Desk"]
