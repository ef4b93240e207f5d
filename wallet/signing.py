"""HMAC-SHA256 request signing with key ids, as used by the Operator Wallet API v1."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

KEY_ID_HEADER = "X-Croupier-Key-Id"
TIMESTAMP_HEADER = "X-Croupier-Timestamp"
SIGNATURE_HEADER = "X-Croupier-Signature"
DEFAULT_MAX_SKEW_S = 300


class SignatureError(Exception):
    """The request's signature is missing, stale, unknown or wrong."""


def signing_payload(timestamp: str, method: str, path_qs: str, body: bytes) -> bytes:
    """Return the bytes that are signed: timestamp, method, path with query, and body."""
    return b"\n".join((timestamp.encode(), method.upper().encode(), path_qs.encode(), body))


def sign(secret: bytes, timestamp: str, method: str, path_qs: str, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of the signing payload."""
    payload = signing_payload(timestamp, method, path_qs, body)
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Signer:
    """Signs outgoing requests with one active key."""

    key_id: str
    secret: bytes

    def headers(self, method: str, path_qs: str, body: bytes, now_s: float | None = None) -> dict[str, str]:
        """Return the three signature headers for a request."""
        timestamp = str(int(time.time() if now_s is None else now_s))
        return {
            KEY_ID_HEADER: self.key_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.secret, timestamp, method, path_qs, body),
        }


@dataclass(frozen=True, slots=True)
class Verifier:
    """Checks incoming signatures against every key still accepted, so keys can rotate."""

    secrets: Mapping[str, bytes]
    max_skew_s: int = DEFAULT_MAX_SKEW_S

    def verify(
        self,
        headers: Mapping[str, str],
        method: str,
        path_qs: str,
        body: bytes,
        now_s: float | None = None,
    ) -> str:
        """Return the key id that signed the request, or raise SignatureError."""
        key_id = headers.get(KEY_ID_HEADER)
        timestamp = headers.get(TIMESTAMP_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        if not key_id or not timestamp or not signature:
            raise SignatureError("missing signature headers")
        secret = self.secrets.get(key_id)
        if secret is None:
            raise SignatureError(f"unknown key id {key_id!r}")
        if not timestamp.isdigit():
            raise SignatureError("timestamp is not an integer")
        now = time.time() if now_s is None else now_s
        if abs(now - int(timestamp)) > self.max_skew_s:
            raise SignatureError("timestamp outside the accepted window")
        expected = sign(secret, timestamp, method, path_qs, body)
        if not hmac.compare_digest(expected, signature):
            raise SignatureError("signature does not match")
        return key_id
