"""Durable state: accepted pushes (dedupe keys), conversations and the outbox, on SQLite or MySQL."""
from core.store.sql import SqlStore, check_store, open_store

__all__ = ["SqlStore", "check_store", "open_store"]
