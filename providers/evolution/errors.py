"""Evolution's status table: each core outcome, its status, HTTP status and whether Evolution retries."""

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


class NativeError(NamedTuple):
    """One Evolution status: business errors are HTTP 200 with the status in the body."""

    code: str
    http_status: int
    retryable: bool


OK = "OK"
TEMPORARY_ERROR = NativeError("TEMPORARY_ERROR", 200, retryable=True)
OPERATION_IN_PROCESS = NativeError("OPERATION_IN_PROCESS", 200, retryable=True)
UNKNOWN_ERROR = NativeError("UNKNOWN_ERROR", 200, retryable=False)
INVALID_SID = NativeError("INVALID_SID", 200, retryable=False)
INVALID_TOKEN_ID = NativeError("INVALID_TOKEN_ID", 200, retryable=False)
INVALID_PARAMETER = NativeError("INVALID_PARAMETER", 200, retryable=False)
INSUFFICIENT_FUNDS = NativeError("INSUFFICIENT_FUNDS", 200, retryable=False)
BET_ALREADY_EXIST = NativeError("BET_ALREADY_EXIST", 200, retryable=False)
BET_ALREADY_SETTLED = NativeError("BET_ALREADY_SETTLED", 200, retryable=False)
BET_DOES_NOT_EXIST = NativeError("BET_DOES_NOT_EXIST", 200, retryable=False)
FINAL_ERROR_ACTION_FAILED = NativeError("FINAL_ERROR_ACTION_FAILED", 200, retryable=False)

ERROR_CODES: dict[Reason, NativeError] = {
    Reason.INSUFFICIENT_FUNDS: INSUFFICIENT_FUNDS,
    # The sheet's closed status list has no limit or lock status: the debit is refused for good.
    Reason.LIMIT_EXCEEDED: FINAL_ERROR_ACTION_FAILED,
    Reason.PLAYER_BLOCKED: FINAL_ERROR_ACTION_FAILED,
    # Evolution's own certification expects INVALID_PARAMETER for a user it may not play for.
    Reason.PLAYER_NOT_FOUND: INVALID_PARAMETER,
    Reason.SESSION_EXPIRED: INVALID_SID,
    Reason.CURRENCY_MISMATCH: INVALID_PARAMETER,
    Reason.ROUND_CLOSED: FINAL_ERROR_ACTION_FAILED,
    Reason.BET_NOT_FOUND: BET_DOES_NOT_EXIST,
    # A credit for a cancelled bet: the bet is settled (by its cancel).
    Reason.BET_ROLLED_BACK: BET_ALREADY_SETTLED,
    Reason.ALREADY_SETTLED: BET_ALREADY_SETTLED,
    # A debit whose cancel came first.
    Reason.TRANSACTION_ROLLED_BACK: FINAL_ERROR_ACTION_FAILED,
    Reason.OPERATOR_REFUSED: FINAL_ERROR_ACTION_FAILED,
    # The operator's wallet gave no answer in time; the bet was cancelled there.
    Reason.OPERATOR_UNKNOWN: FINAL_ERROR_ACTION_FAILED,
}

ALL_CODES = (
    OK,
    TEMPORARY_ERROR.code,
    UNKNOWN_ERROR.code,
    INVALID_SID.code,
    INVALID_TOKEN_ID.code,
    INVALID_PARAMETER.code,
    INSUFFICIENT_FUNDS.code,
    BET_ALREADY_EXIST.code,
    BET_ALREADY_SETTLED.code,
    BET_DOES_NOT_EXIST.code,
    FINAL_ERROR_ACTION_FAILED.code,
    OPERATION_IN_PROCESS.code,
)
RETRYABLE_CODES = frozenset({TEMPORARY_ERROR.code, OPERATION_IN_PROCESS.code})


class InvalidParameterError(InvalidRequestError):
    """A malformed request whose uuid is known, so the answer still echoes it."""

    def __init__(self, message: str, uuid: str | None) -> None:
        super().__init__(message)
        self.uuid = uuid


class InvalidTokenError(AuthenticationError):
    """A wrong authToken; the uuid is echoed where the body had one."""

    def __init__(self, message: str, uuid: str | None) -> None:
        super().__init__(message)
        self.uuid = uuid


class InvalidSidError(RejectedError):
    """A check, sid or balance request whose sid is not a live Evolution session."""

    def __init__(self, uuid: str | None) -> None:
        super().__init__(Reason.SESSION_EXPIRED, "the sid is unknown or expired")
        self.uuid = uuid


def echoed_uuid(error: WalletError) -> str | None:
    """Return the uuid an error raised before an operation existed carries."""
    if isinstance(error, (InvalidParameterError, InvalidTokenError, InvalidSidError)):
        return error.uuid
    return None


def native(error: WalletError, operation: str) -> NativeError:
    """Return the status for a core error on one endpoint."""
    if isinstance(error, RejectedError):
        return ERROR_CODES[error.reason]
    if isinstance(error, MismatchError):
        # The refId was used before with other data: a debit that exists, or a bet already settled.
        return BET_ALREADY_EXIST if operation == "debit" else BET_ALREADY_SETTLED
    table: list[tuple[type[WalletError], NativeError]] = [
        (InvalidRequestError, INVALID_PARAMETER),  # BodyTooLargeError included
        (AuthenticationError, INVALID_TOKEN_ID),
        (InProgressError, OPERATION_IN_PROCESS),
        (UnavailableError, TEMPORARY_ERROR),
        (TransactionNotFoundError, BET_DOES_NOT_EXIST),
    ]
    for cls, found in table:
        if isinstance(error, cls):
            return found
    return UNKNOWN_ERROR
