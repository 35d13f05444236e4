"""The inbox's own settings."""
from __future__ import annotations

from dataclasses import dataclass

from core.desks.base import DeskSettings
from core.env import EnvReader


@dataclass(frozen=True)
class InboxSettings(DeskSettings):
    keep_days: int = 90  # RELAY_INBOX_KEEP_DAYS: then a message's text and picture are deleted

    @classmethod
    def from_env(cls, env: EnvReader) -> InboxSettings:
        return cls(keep_days=env.int("RELAY_INBOX_KEEP_DAYS", 90))
