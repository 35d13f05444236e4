"""Durable state: accepted pushes (dedupe keys), conversations and the outbox, on SQLite or MySQL."""
from core.store.sql import SqlStore, open_store

__all__ = ["SqlStore", "open_store"]
