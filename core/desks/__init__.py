"""Desk adapters, one module each, and the registry core looks them up in."""
from __future__ import annotations

from core.desks.base import Callback, Desk
from core.desks.webhook import WebhookDesk

REGISTRY: dict[str, type[Desk]] = {
    WebhookDesk.name: WebhookDesk,
}

__all__ = ["REGISTRY", "Callback", "Desk"]
