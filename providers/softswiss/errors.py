"""The protocol's error table: each core outcome, its native code, HTTP status and retry advice."""

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

# The status most of this protocol's refusals travel with (Precondition Failed).
REFUSED_HTTP = 412
# From this status up the provider retries.
RETRY_HTTP = 500


class NativeError(NamedTuple):
    """A native error answer: `code` goes in the body, `http_status` on the response."""

    code: int
    http_status: int
    message: str

    @property
    def retryable(self) -> bool:
        """Return whether the provider retries this answer with the same action ids (5xx)."""
        return self.http_status >= RETRY_HTTP


ERROR_CODES: dict[Reason, NativeError] = {
    Reason.INSUFFICIENT_FUNDS: NativeError(100, REFUSED_HTTP, "player has not enough funds"),
    Reason.PLAYER_NOT_FOUND: NativeError(101, REFUSED_HTTP, "player is invalid"),
    # The protocol has no code for a session; its session is the player's, so 'player is invalid'.
    Reason.SESSION_EXPIRED: NativeError(101, REFUSED_HTTP, "player is invalid: session expired"),
    # The operator's maximum bet is the casino's limit (106), not a player's own limit (105).
    Reason.LIMIT_EXCEEDED: NativeError(106, REFUSED_HTTP, "bet exceeded max bet limit"),
    Reason.PLAYER_BLOCKED: NativeError(110, REFUSED_HTTP, "player is disabled"),
    Reason.CURRENCY_MISMATCH: NativeError(154, REFUSED_HTTP, "currency is not allowed for the player"),
    # Croupier's own codes (120-126) for refusals the protocol does not name; a provider that
    # does not know them still reads a 4xx as a final refusal.
    Reason.ROUND_CLOSED: NativeError(120, REFUSED_HTTP, "round is finished"),
    Reason.BET_NOT_FOUND: NativeError(121, REFUSED_HTTP, "no bet in this round"),
    Reason.BET_ROLLED_BACK: NativeError(122, REFUSED_HTTP, "the round's bet was rolled back"),
    Reason.ALREADY_SETTLED: NativeError(123, REFUSED_HTTP, "the round is already settled"),
    Reason.TRANSACTION_ROLLED_BACK: NativeError(124, REFUSED_HTTP, "the action was rolled back"),
    Reason.OPERATOR_REFUSED: NativeError(125, REFUSED_HTTP, "the casino's wallet refused"),
    # The bet was cancelled at the operator: final, so the provider does not retry it.
    Reason.OPERATOR_UNKNOWN: NativeError(126, REFUSED_HTTP, "the bet was declined"),
}

BAD_REQUEST = NativeError(400, 400, "bad request")
TOO_LARGE = NativeError(400, 413, "bad request: body too large")
FORBIDDEN = NativeError(403, 403, "forbidden: request sign doesn't match")
NOT_FOUND = NativeError(404, 404, "not found")
MISMATCH = NativeError(409, 409, "action_id reused with different data")
# 500 and above: the provider retries with the same action ids.
UNAVAILABLE = NativeError(500, 500, "internal error, retry")
IN_PROGRESS = NativeError(503, 503, "the same action is being processed, retry")

# Codes the protocol defines that Croupier never sends (no such check in the core), and what
# they mean if a simulator or a log meets them.
UNUSED_CODES: dict[int, str] = {
    105: "player reached customized bet limit",
    153: "game is not available in the player's country",
}

_BY_CLASS: tuple[tuple[type[WalletError], NativeError], ...] = (
    (BodyTooLargeError, TOO_LARGE),
    (AuthenticationError, FORBIDDEN),
    (MismatchError, MISMATCH),
    (InProgressError, IN_PROGRESS),
    (UnavailableError, UNAVAILABLE),
    (TransactionNotFoundError, NOT_FOUND),
)


TABLE = ErrorTable(ERROR_CODES, _BY_CLASS, BAD_REQUEST, lambda answer: answer.code)


def native(error: WalletError) -> NativeError:
    """Return the native answer for a core error."""
    return TABLE.native(error)


def reasons_for(code: int) -> frozenset[Reason]:
    """Return the core reasons answered with a code."""
    return TABLE.reasons_for(code)
