"""One exception tree for the relay: refusals of inbound requests and failures of deliveries."""
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


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help (bad request, configuration, refused)."""


class RecipientUnreachable(PermanentDeliveryError):
    """WeChat refuses to reach this user now (window closed, quota used): the desk is told.

    `reason` is a short machine word: `window_closed`, `quota_exhausted`, `rejected`.
    """

    def __init__(self, message: str, *, reason: Reason, errcode: int | None = None) -> None:
        super().__init__(message, errcode=errcode)
        self.reason = reason
