"""What the relay does with each WeChat errcode (facts: fixtures/wechat/errors.json)."""
from __future__ import annotations

from core.models import Reason

ACTIONS: dict[int, str] = {
    0: "none",
    -1: "retry_backoff",
    40001: "refresh_token_retry",
    40014: "refresh_token_retry",
    42001: "refresh_token_retry",
    41001: "config_error",
    40003: "drop_alert",
    40004: "drop",
    40007: "reupload",
    43004: "drop",
    45002: "split_truncate",
    45009: "stop_alert",
    45011: "backoff_60s",
    45015: "drop_session_expired",
    45047: "drop_until_user_writes",
    45072: "ignore",
    45080: "ignore",
    45081: "ignore",
    48001: "config_error",
    85105: "config_error",
    85107: "config_error",
    85112: "config_error",
    85113: "retry_later",
    40164: "config_error",
    40101: "config_error",
}

# 41001 "access_token missing" also means Cloud Run's open-API sidecar is not up yet: retried, not
# dead-lettered, for this long after start (its FAQ: "called during container startup").
SIDECAR_GRACE = 300.0

# How long to wait before retrying, for codes whose wait is known.
RETRY_AFTER = {"backoff_60s": 60.0, "retry_later": 120.0, "stop_alert": 3600.0}
TRANSIENT = {"retry_backoff", "backoff_60s", "retry_later", "stop_alert"}
# The user cannot be reached now: give up and tell the desk; the reason word the desk sees.
UNREACHABLE = {
    "drop_session_expired": Reason.WINDOW_CLOSED,
    "drop_until_user_writes": Reason.QUOTA_EXHAUSTED,
    "drop_alert": Reason.REJECTED,
    "drop": Reason.REJECTED,
    "split_truncate": Reason.REJECTED,  # after one shortened resend (core.wechat.api)
    "reupload": Reason.REJECTED,  # after one fresh upload, where the relay uploaded the media itself
}


def action(errcode: int) -> str:
    """The action for a code; unknown codes are treated as configuration errors (dead letter, loud log)."""
    return ACTIONS.get(errcode, "config_error")
