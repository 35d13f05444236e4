"""core.signing: HMAC-SHA256 over timestamp + "." + body, within a 5-minute window."""
from __future__ import annotations

import hashlib
import hmac

import pytest

from core.errors import Unauthorized
from core.signing import sign, verify

SECRET = "whsec-test-secret"
NOW = 1_800_000_000.0
BODY = '{"conversation_id": "wxapp:oUser", "text": "你好"}'.encode()


def independent_signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def stamp(offset: float = 0) -> str:
    return str(int(NOW + offset))


def test_sign_matches_independent_hmac_sha256():
    timestamp = stamp()
    assert sign(SECRET, timestamp, BODY) == independent_signature(SECRET, timestamp, BODY)


def test_sign_covers_timestamp_and_body():
    assert sign(SECRET, stamp(), BODY) != sign(SECRET, stamp(1), BODY)
    assert sign(SECRET, stamp(), BODY) != sign(SECRET, stamp(), BODY + b" ")
    assert sign(SECRET, stamp(), BODY) != sign("other-secret", stamp(), BODY)


def test_verify_accepts_an_independently_signed_request():
    verify(SECRET, stamp(), independent_signature(SECRET, stamp(), BODY), BODY, NOW)


@pytest.mark.parametrize("offset", [-299, 299, -300, 300])
def test_verify_accepts_timestamps_within_five_minutes(offset):
    timestamp = stamp(offset)
    verify(SECRET, timestamp, sign(SECRET, timestamp, BODY), BODY, NOW)


@pytest.mark.parametrize("offset", [-301, 301], ids=["301s-old", "301s-in-future"])
def test_verify_rejects_timestamps_outside_five_minutes(offset):
    timestamp = stamp(offset)
    with pytest.raises(Unauthorized):
        verify(SECRET, timestamp, sign(SECRET, timestamp, BODY), BODY, NOW)


@pytest.mark.parametrize("signature", [
    "sha256=" + "0" * 64,
    independent_signature("other-secret", stamp(), BODY),
    independent_signature(SECRET, stamp(), BODY)[:-1],
    independent_signature(SECRET, stamp(), BODY).removeprefix("sha256="),
], ids=["zeros", "other-secret", "truncated", "no-prefix"])
def test_verify_rejects_a_wrong_signature(signature):
    with pytest.raises(Unauthorized):
        verify(SECRET, stamp(), signature, BODY, NOW)


def test_verify_rejects_a_tampered_body():
    with pytest.raises(Unauthorized):
        verify(SECRET, stamp(), sign(SECRET, stamp(), BODY), BODY + b"x", NOW)


@pytest.mark.parametrize("timestamp", ["soon", "1800000000.5", "-1800000000", " 1800000000", "²"],
                         ids=["word", "fraction", "negative", "space", "superscript"])
def test_verify_rejects_a_non_numeric_timestamp(timestamp):
    # Signed correctly, so only the timestamp can be the reason.
    with pytest.raises(Unauthorized):
        verify(SECRET, timestamp, sign(SECRET, timestamp, BODY), BODY, NOW)


@pytest.mark.parametrize("timestamp,signature", [
    (None, "sha256=" + "0" * 64), ("", "sha256=" + "0" * 64), (stamp(), None), (stamp(), ""), (None, None),
], ids=["no-timestamp", "empty-timestamp", "no-signature", "empty-signature", "neither"])
def test_verify_rejects_missing_headers(timestamp, signature):
    with pytest.raises(Unauthorized):
        verify(SECRET, timestamp, signature, BODY, NOW)


def test_verify_reads_timestamps_of_up_to_twelve_digits_zero_padded_too():
    timestamp = "00" + stamp()  # 12 characters, still NOW
    verify(SECRET, timestamp, sign(SECRET, timestamp, BODY), BODY, NOW)


@pytest.mark.parametrize("timestamp", ["000" + stamp(), "9" * 5000], ids=["13-zero-padded", "5000-digits"])
def test_verify_refuses_timestamps_over_twelve_digits_before_reading_them(timestamp):
    # "000" + NOW would be fresh if read; 5000 digits would make int() raise ValueError, not Unauthorized.
    with pytest.raises(Unauthorized, match="stale or malformed"):
        verify(SECRET, timestamp, sign(SECRET, timestamp, BODY), BODY, NOW)
