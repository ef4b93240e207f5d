"""The house API's error table: each core outcome, its code, HTTP status and whether to retry."""

from __future__ import annotations

from typing import NamedTuple

from providers.errortable import ErrorTable
from wallet.errors import (
    AuthenticationError,
    BodyTooLargeError,
    InProgressError,
    MismatchError,
    Reason,
    TransactionNotFoundError,
    UnavailableError,
    WalletError,
)

# A refused bet: understood, and declined for a business reason.
REFUSED_HTTP = 422


class NativeError(NamedTuple):
    """An error answer: `code` in the body, `http_status` on the response."""

    code: str
    http_status: int
    retryable: bool = False


ERROR_CODES: dict[Reason, NativeError] = {
    reason: NativeError(reason.value.upper(), REFUSED_HTTP) for reason in Reason
} | {
    # The bet was cancelled at the operator: declined for good; a new round may be played.
    Reason.OPERATOR_UNKNOWN: NativeError("BET_DECLINED", REFUSED_HTTP),
}

INVALID_REQUEST = NativeError("INVALID_REQUEST", 400)
TOO_LARGE = NativeError("INVALID_REQUEST", 413)
UNAUTHORIZED = NativeError("UNAUTHORIZED", 401)
MISMATCH = NativeError("ROUND_MISMATCH", 409)
NOT_FOUND = NativeError("NOT_FOUND", 404)
IN_PROGRESS = NativeError("IN_PROGRESS", 503, retryable=True)
UNAVAILABLE = NativeError("UNAVAILABLE", 503, retryable=True)
# Look-ups that are understood but cannot answer yet (verify before the seed is revealed).
NOT_YET = NativeError("NOT_YET", 409)

_BY_CLASS: tuple[tuple[type[WalletError], NativeError], ...] = (
    (BodyTooLargeError, TOO_LARGE),
    (AuthenticationError, UNAUTHORIZED),
    (MismatchError, MISMATCH),
    (InProgressError, IN_PROGRESS),
    (UnavailableError, UNAVAILABLE),
    (TransactionNotFoundError, NOT_FOUND),
)


TABLE = ErrorTable(ERROR_CODES, _BY_CLASS, INVALID_REQUEST, lambda answer: answer.code)


def native(error: WalletError) -> NativeError:
    """Return the native answer for a core error."""
    return TABLE.native(error)


def reasons_for(code: str) -> frozenset[Reason]:
    """Return the core reasons answered with a code."""
    return TABLE.reasons_for(code)
