"""Pragmatic's error table: each core outcome, its native code, HTTP status and retry advice."""

from __future__ import annotations

from typing import NamedTuple

from wallet.errors import (
    AuthenticationError,
    InProgressError,
    InvalidRequestError,
    MismatchError,
    Reason,
    RejectedError,
    TransactionNotFoundError,
    UnavailableError,
    WalletError,
)

# The one route whose retryable failure has its own code (130 instead of 100).
END_ROUND = "end_round"


class NativeError(NamedTuple):
    """A native error answer: `error` and `description`, always with HTTP 200."""

    code: int
    description: str
    # True where the answer asks Pragmatic to try again (for a bet: to refund it).
    retry: bool = False
    http_status: int = 200


class GameNotFoundError(InvalidRequestError):
    """The game is not in the configured catalogue; nothing is written."""


SUCCESS = NativeError(0, "Success")
INSUFFICIENT_BALANCE = NativeError(1, "Insufficient balance")
PLAYER_NOT_FOUND = NativeError(2, "Player not found or logged out")
BET_NOT_ALLOWED = NativeError(3, "Bet is not allowed")
TOKEN_INVALID = NativeError(4, "Player authentication failed")
INVALID_HASH = NativeError(5, "Invalid hash code")
PLAYER_FROZEN = NativeError(6, "Player is frozen")
BAD_PARAMETERS = NativeError(7, "Bad parameters")
GAME_NOT_FOUND = NativeError(8, "Game not found or disabled")
BET_LIMIT = NativeError(50, "Bet limit has been reached")
INTERNAL_RETRY = NativeError(100, "Internal server error, retry", retry=True)
INTERNAL_NO_RETRY = NativeError(120, "Internal server error, no retry")
END_ROUND_RETRY = NativeError(130, "Internal server error on endRound, retry", retry=True)
# Never produced: Croupier runs no reality checks and sends no betLimits at authentication.
REALITY_CHECK = NativeError(210, "Reality check")
OUT_OF_LIMITS = NativeError(310, "Bet is out of the player's limits")

ERROR_CODES: dict[Reason, NativeError] = {
    Reason.INSUFFICIENT_FUNDS: INSUFFICIENT_BALANCE,
    Reason.LIMIT_EXCEEDED: BET_LIMIT,
    Reason.PLAYER_BLOCKED: PLAYER_FROZEN,
    Reason.PLAYER_NOT_FOUND: PLAYER_NOT_FOUND,
    Reason.SESSION_EXPIRED: TOKEN_INVALID,
    # The currency is fixed at authentication: an account in another one is another player.
    Reason.CURRENCY_MISMATCH: PLAYER_NOT_FOUND,
    Reason.ROUND_CLOSED: BET_NOT_ALLOWED,
    # A late bet whose refund came first: refused for good, and Pragmatic has already refunded it.
    Reason.TRANSACTION_ROLLED_BACK: BET_NOT_ALLOWED,
    Reason.OPERATOR_REFUSED: BET_NOT_ALLOWED,
    # 120 is the only refusal Pragmatic neither retries nor queues for reconciliation: these
    # answers are final, so retrying them for a day would change nothing.
    Reason.BET_NOT_FOUND: INTERNAL_NO_RETRY,
    Reason.BET_ROLLED_BACK: INTERNAL_NO_RETRY,
    Reason.ALREADY_SETTLED: INTERNAL_NO_RETRY,
    # The bet was cancelled at the operator already; 120 keeps Pragmatic from refunding it too.
    Reason.OPERATOR_UNKNOWN: INTERNAL_NO_RETRY,
}


def _by_code() -> dict[int, frozenset[Reason]]:
    table: dict[int, set[Reason]] = {}
    for reason, answer in ERROR_CODES.items():
        table.setdefault(answer.code, set()).add(reason)
    return {code: frozenset(found) for code, found in table.items()}


REASONS_BY_CODE = _by_code()


def reasons(code: int) -> frozenset[Reason]:
    """Return every core reason that this table answers with the native code."""
    return REASONS_BY_CODE.get(code, frozenset())


def native(error: WalletError, operation: str) -> NativeError:
    """Return the native answer for a core error on one route."""
    if isinstance(error, RejectedError):
        return ERROR_CODES[error.reason]
    if isinstance(error, (InProgressError, UnavailableError)):
        return END_ROUND_RETRY if operation == END_ROUND else INTERNAL_RETRY
    if isinstance(error, AuthenticationError):
        return INVALID_HASH
    if isinstance(error, GameNotFoundError):
        return GAME_NOT_FOUND
    # A reused reference means the provider's books differ from ours: final, never retried.
    if isinstance(error, (MismatchError, TransactionNotFoundError)):
        return INTERNAL_NO_RETRY
    return BAD_PARAMETERS
