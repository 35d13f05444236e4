"""One exception tree for the relay: refusals of inbound requests, bad settings, failed deliveries.

    RelayError (an inbound request refused; `status` is the HTTP answer, the message its JSON error)
    ├── BadRequest (400): a body or field that cannot be a push or a callback
    ├── Unauthorized (401): a wrong, missing, stale or replayed signature or password
    ├── Forbidden (403): a request this configuration does not take (trust mode, mode off)
    ├── NotFound (404)
    │   └── UnknownRecipient: a desk reply names a user the relay never heard from
    ├── MethodNotAllowed (405)
    ├── RequestTimeout (408): a body that did not arrive in time (a slow-drip client)
    └── TooLarge (413): a body over RELAY_MAX_BODY
    ConfigError: a missing or contradictory setting; start-up stops with its one-line message
    DeliveryError (an outbox job failed; the outbox decides what follows)
    ├── TransientDeliveryError: retried with backoff (network, 5xx, 429, busy), honouring `retry_after`
    │   └── CredentialsRefused: 401/403 from a peer; logged at error on every try
    └── PermanentDeliveryError: dead-lettered (refused, misconfigured)
        └── RecipientUnreachable: WeChat will not reach this user now; the desk is told (`reason`)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.models import Reason


class RelayError(Exception):
    """A request the relay refuses; `status` is the HTTP answer."""

    status = 400

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}  # e.g. the WWW-Authenticate challenge of a 401


class BadRequest(RelayError):
    status = 400


class Unauthorized(RelayError):
    status = 401


class Forbidden(RelayError):
    status = 403


class NotFound(RelayError):
    status = 404


class UnknownRecipient(NotFound):
    """A desk reply names a user the relay has never heard from."""


class MethodNotAllowed(RelayError):
    status = 405


class Conflict(RelayError):
    status = 409


class RequestTimeout(RelayError):
    status = 408


class TooLarge(RelayError):
    status = 413


class UnsupportedMediaType(RelayError):
    status = 415


class TooManyRequests(RelayError):
    """Throttled; `Retry-After` in the headers says for how long."""

    status = 429


class ConfigError(Exception):
    """A missing or contradictory setting; names the variable."""


class DeliveryError(Exception):
    """A delivery to WeChat or a desk failed."""

    def __init__(self, message: str, *, errcode: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.retry_after = retry_after


class TransientDeliveryError(DeliveryError):
    """Worth retrying later (network, 5xx, busy, rate limits)."""


class CredentialsRefused(TransientDeliveryError):
    """A peer refused the relay's credentials (HTTP 401/403): a configuration fault, logged loudly on
    every try and retried with backoff, so that what waited is delivered once the setting is fixed."""


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help (bad request, configuration, refused)."""


class RecipientUnreachable(PermanentDeliveryError):
    """WeChat refuses to reach this user now (window closed, quota used): the desk is told.

    `reason` is a short machine word: `window_closed`, `quota_exhausted`, `rejected`.
    """

    def __init__(self, message: str, *, reason: Reason, errcode: int | None = None) -> None:
        super().__init__(message, errcode=errcode)
        self.reason = reason
