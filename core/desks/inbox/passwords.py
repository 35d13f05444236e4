"""Agent passwords: scrypt from the standard library (salted, memory-hard), and the random tokens of
sessions and set-up links, kept only as SHA-256 digests.

A hash reads `scrypt$<n>$<r>$<p>$<salt, base64>$<key, base64>`, so the parameters can grow later
without breaking stored hashes. n=2**14, r=8, p=1 take about 16 MiB and some 50 ms per check here."""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

N, R, P, KEY_BYTES, SALT_BYTES = 2 ** 14, 8, 1, 32, 16
MAXMEM = 64 * 1024 * 1024
MIN_LENGTH, MAX_LENGTH = 10, 256


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=MAXMEM, dklen=KEY_BYTES)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, N, R, P)
    return f"scrypt${N}${R}${P}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time; a malformed stored hash never matches."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
        return hmac.compare_digest(computed, base64.b64decode(key))
    except ValueError:
        return False


@functools.cache
def dummy_hash() -> str:
    """Checked against for unknown names, so that they take as long as known ones."""
    return hash_password(secrets.token_urlsafe(16))


def password_problem(password: object) -> str | None:
    """Why a new password is refused, or None."""
    if not isinstance(password, str) or not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        return f"a password must be {MIN_LENGTH} to {MAX_LENGTH} characters"
    return None


def generate_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, 120 bits


def new_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """What the store keeps of a token: a stolen copy of the table opens no session."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(session_token: str) -> str:
    """The session's CSRF token, derived from it: only a page that was told it (login, me) can send it."""
    return hashlib.sha256(b"inbox-csrf:" + session_token.encode()).hexdigest()
