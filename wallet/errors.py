"""The closed set of domain errors the wallet core raises; each adapter maps them to native codes."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why an operation was refused; stored with a rejection so a replay gives the same answer."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    LIMIT_EXCEEDED = "limit_exceeded"
    PLAYER_BLOCKED = "player_blocked"
    PLAYER_NOT_FOUND = "player_not_found"
    SESSION_EXPIRED = "session_expired"
    CURRENCY_MISMATCH = "currency_mismatch"
    ROUND_CLOSED = "round_closed"
    BET_NOT_FOUND = "bet_not_found"
    BET_ROLLED_BACK = "bet_rolled_back"
    ALREADY_SETTLED = "already_settled"
    TRANSACTION_ROLLED_BACK = "transaction_rolled_back"
    OPERATOR_REFUSED = "operator_refused"
    OPERATOR_UNKNOWN = "operator_unknown"


class WalletError(Exception):
    """Base of every error the wallet core raises."""

    retryable = False


class InvalidRequestError(WalletError):
    """The request is malformed: bad types, bad amount, unknown currency; nothing is written."""


class BodyTooLargeError(InvalidRequestError):
    """The request body is over the size limit; it was not read to the end."""


class AuthenticationError(WalletError):
    """The caller's signature, token or address is not accepted; nothing is written."""


class RejectedError(WalletError):
    """The operation was refused for a business reason; the refusal is stored and replays."""

    def __init__(
        self, reason: Reason, message: str = "", balance_minor: int | None = None, *, replay: bool = False
    ) -> None:
        super().__init__(message or reason.value)
        self.reason = reason
        self.balance_minor = balance_minor
        self.replay = replay


class MismatchError(WalletError):
    """The external id was used before with different data; names the field that differs."""

    def __init__(self, field: str) -> None:
        super().__init__(f"transaction id reused with a different {field}")
        self.field = field


class InProgressError(WalletError):
    """Another copy of the same operation is being applied right now; retry later."""

    retryable = True


class UnavailableError(WalletError):
    """The operator's wallet or our database could not give a definite answer; retry later."""

    retryable = True


class TransactionNotFoundError(WalletError):
    """A look-up named a transaction that does not exist."""
