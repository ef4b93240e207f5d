"""Pragmatic's answers: the fields each endpoint returns on success, and the error answer."""

from __future__ import annotations

from aiohttp import web

from providers.identity import user_id
from providers.pragmatic import errors, schemas
from wallet.errors import MismatchError, RejectedError, WalletError
from wallet.money import Currency
from wallet.operations import Operation, Result

MAX_DESCRIPTION = 100
# Codes whose description carries the core's message, so a bad call says what was wrong.
_DETAILED = frozenset({errors.BAD_PARAMETERS, errors.GAME_NOT_FOUND})


def _balance(balance_minor: int | None, currency: Currency) -> list[schemas.Field]:
    if balance_minor is None:
        return []
    # Croupier keeps no bonus money of its own: all of the balance is cash.
    return [("cash", schemas.major(balance_minor, currency)), ("bonus", schemas.major(0, currency))]


def success(operation: str, op: Operation, result: Result, currency: Currency) -> web.Response:
    """Answer success with the fields the endpoint returns, amounts as exact JSON numbers."""
    balance = _balance(result.balance_minor, currency)
    transaction: schemas.Field = ("transactionId", str(result.transaction_id))
    fields: list[schemas.Field]
    if operation == "authenticate":
        who = user_id(op.operator, op.player_id)
        fields = [("userId", who), ("currency", op.currency), *balance, ("token", op.external_id)]
    elif operation == "balance":
        fields = [("currency", op.currency), *balance]
    elif operation == "debit":
        fields = [transaction, ("currency", op.currency), *balance, ("usedPromo", schemas.major(0, currency))]
    elif operation == "rollback":
        fields = [transaction]
    elif operation == errors.END_ROUND:
        fields = balance
    else:
        fields = [transaction, ("currency", op.currency), *balance]
    done = errors.SUCCESS
    return schemas.answer([*fields, ("error", done.code), ("description", done.description)])


def failure(
    operation: str, error: WalletError, op: Operation | None, currency: Currency | None
) -> web.Response:
    """Answer the native code for a core error, with the balance where the refusal knows it."""
    native = errors.native(error, operation)
    description = native.description
    if native in _DETAILED or isinstance(error, MismatchError):
        description = f"{description}: {error}"[:MAX_DESCRIPTION]
    fields: list[schemas.Field] = [("error", native.code), ("description", description)]
    if isinstance(error, MismatchError):
        # Not in Pragmatic's answer set, and ignored by it: names what differs for the operator.
        fields.append(("field", error.field))
    if isinstance(error, RejectedError) and error.balance_minor is not None and op is not None and currency:
        fields += [("currency", op.currency), *_balance(error.balance_minor, currency)]
    return schemas.answer(fields, status=native.http_status)
