"""The protocol's authentication: hex HMAC-SHA256 of the raw body in `X-REQUEST-SIGN`."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from wallet.errors import AuthenticationError

SIGN_HEADER = "X-REQUEST-SIGN"
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def sign(secret: bytes, body: bytes) -> str:
    """Return the lowercase hex HMAC-SHA256 of the body keyed with the shared auth token."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secrets: Mapping[str, bytes], signature: str | None, body: bytes) -> None:
    """Raise AuthenticationError unless the signature matches the body under a configured token."""
    if signature is None:
        raise AuthenticationError(f"{SIGN_HEADER} header is missing")
    # The shape is checked first so compare_digest only ever sees ASCII of one length.
    if not _HEX_SHA256.fullmatch(signature):
        raise AuthenticationError(f"{SIGN_HEADER} is not a hex HMAC-SHA256")
    given = signature.lower().encode()
    # Every configured token is tried (and every comparison made), so a token can rotate
    # without a window in which the provider's calls are refused.
    matched = False
    for secret in secrets.values():
        matched |= hmac.compare_digest(sign(secret, body).encode(), given)
    if not matched:
        raise AuthenticationError("request sign doesn't match")
