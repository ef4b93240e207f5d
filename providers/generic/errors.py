"""The generic protocol's error table: each core outcome, its code, HTTP status and retry advice."""

from __future__ import annotations

from typing import NamedTuple

from wallet.errors import Reason


class NativeError(NamedTuple):
    """A native error answer."""

    code: str
    http_status: int
    retryable: bool


ERROR_CODES: dict[Reason, NativeError] = {
    Reason.INSUFFICIENT_FUNDS: NativeError("INSUFFICIENT_FUNDS", 200, retryable=False),
    Reason.LIMIT_EXCEEDED: NativeError("LIMIT_EXCEEDED", 200, retryable=False),
    Reason.PLAYER_BLOCKED: NativeError("PLAYER_BLOCKED", 200, retryable=False),
    Reason.PLAYER_NOT_FOUND: NativeError("PLAYER_NOT_FOUND", 200, retryable=False),
    Reason.SESSION_EXPIRED: NativeError("SESSION_EXPIRED", 200, retryable=False),
    Reason.CURRENCY_MISMATCH: NativeError("CURRENCY_MISMATCH", 200, retryable=False),
    Reason.ROUND_CLOSED: NativeError("ROUND_CLOSED", 200, retryable=False),
    Reason.BET_NOT_FOUND: NativeError("BET_NOT_FOUND", 200, retryable=False),
    Reason.BET_ROLLED_BACK: NativeError("BET_ROLLED_BACK", 200, retryable=False),
    Reason.ALREADY_SETTLED: NativeError("ALREADY_SETTLED", 200, retryable=False),
    Reason.TRANSACTION_ROLLED_BACK: NativeError("TRANSACTION_ROLLED_BACK", 200, retryable=False),
    Reason.OPERATOR_REFUSED: NativeError("OPERATOR_REFUSED", 200, retryable=False),
    # The bet was cancelled at the operator: declined for good, the round may start again.
    Reason.OPERATOR_UNKNOWN: NativeError("BET_DECLINED", 200, retryable=False),
}

INVALID_REQUEST = NativeError("INVALID_REQUEST", 400, retryable=False)
TOO_LARGE = NativeError("INVALID_REQUEST", 413, retryable=False)
INVALID_SIGNATURE = NativeError("INVALID_SIGNATURE", 401, retryable=False)
MISMATCH = NativeError("TRANSACTION_MISMATCH", 409, retryable=False)
IN_PROGRESS = NativeError("IN_PROGRESS", 503, retryable=True)
UNAVAILABLE = NativeError("UNAVAILABLE", 503, retryable=True)
NOT_FOUND = NativeError("TRANSACTION_NOT_FOUND", 404, retryable=False)
