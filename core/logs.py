"""JSON log lines on stdout: one line per event, no secrets, no message text at info level."""
from __future__ import annotations

import json
import logging
import re
import sys
from urllib.parse import urlsplit, urlunsplit

_RESERVED = set(vars(logging.makeLogRecord({})))
# Characters that reorder or hide text on a terminal (bidi controls, zero-width marks): shown escaped.
_INVISIBLE = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def _visible(line: str) -> str:
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


def safe_url(url: str) -> str:
    """A URL for logs and stored errors: no user:password, no query (tokens live there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def describe(exc: BaseException) -> str:
    """An exception for one log line: its type and the first 200 characters of its message."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}".rstrip(": ")


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
        return _visible(json.dumps(line, ensure_ascii=False, default=str))


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

