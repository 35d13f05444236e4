"""JSON log lines on stdout: one line per event, no secrets, no message text at info level."""
from __future__ import annotations

import json
import logging
import sys

_RESERVED = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def setup(level: str = "info") -> None:
    """Route the `relay` logger to stdout as JSON lines (idempotent)."""
    logger = logging.getLogger("relay")
    logger.setLevel(level.upper())
    if not any(getattr(h, "_relay", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        handler._relay = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False


def get(name: str) -> logging.Logger:
    return logging.getLogger(f"relay.{name}")

