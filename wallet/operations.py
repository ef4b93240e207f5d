"""Canonical wallet operations and their results: what every adapter produces and consumes."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

import orjson

from wallet.errors import Reason

# Croupier's transaction ids are uuid5 of the scoped idempotency key, so every retry of one
# operation (on any node, after any crash) sends the operator the same id.
TRANSACTION_NAMESPACE = uuid.UUID("6f1c2f7e-5b1e-4c55-9d0f-63726f757069")


class Kind(StrEnum):
    """The canonical operations."""

    BALANCE = "balance"
    DEBIT = "debit"
    CREDIT = "credit"
    ROLLBACK = "rollback"
    END_ROUND = "end_round"


class CreditKind(StrEnum):
    """What a credit pays; all but WIN may arrive without a bet."""

    WIN = "win"
    BONUS = "bonus"
    JACKPOT = "jackpot"
    PROMO = "promo"
    FREEROUND = "freeround"


WITHOUT_BET = frozenset({CreditKind.BONUS, CreditKind.JACKPOT, CreditKind.PROMO, CreditKind.FREEROUND})


class SessionState(StrEnum):
    """The state of the player's session as the gateway found it."""

    VALID = "valid"
    EXPIRED = "expired"
    NOT_GIVEN = "not_given"


class State(StrEnum):
    """The state of a stored operation."""

    PENDING = "pending"
    APPLIED = "applied"
    REJECTED = "rejected"
    QUEUED = "queued"
    TOMBSTONE = "tombstone"


@dataclass(frozen=True, slots=True)
class Operation:
    """One canonical operation, as an adapter parsed it from a provider's request."""

    kind: Kind
    provider: str
    operator: str
    player_id: str
    currency: str
    external_id: str = ""
    amount_minor: int | None = None
    round_id: str | None = None
    game_id: str | None = None
    credit_kind: CreditKind = CreditKind.WIN
    reference_id: str | None = None
    reference_kind: Kind = Kind.DEBIT
    session: SessionState = SessionState.NOT_GIVEN
    # True where the provider reuses ids across players, so the key is scoped by player too.
    scope_by_player: bool = False
    # The free-round campaign (or promotion) a credit pays for, as the provider named it; it ties
    # the win to the campaign's progress and is not part of the idempotency comparison.
    campaign_id: str | None = None
    # transaction_id, computed once: the hot path asks for it more than once per operation.
    _transaction_id: uuid.UUID | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def scope(self) -> str:
        """Return the part of the idempotency key that scopes ids by player, if any."""
        return f"{self.operator}/{self.player_id}" if self.scope_by_player else ""

    @property
    def transaction_id(self) -> uuid.UUID:
        """Return Croupier's deterministic transaction id for this operation."""
        if self._transaction_id is not None:
            return self._transaction_id
        # A JSON array is unambiguous whatever the ids contain (a separator could appear in them).
        key = orjson.dumps([self.provider, self.scope, self.kind.value, self.external_id]).decode()
        found = uuid.uuid5(TRANSACTION_NAMESPACE, key)
        object.__setattr__(self, "_transaction_id", found)  # frozen: a cache, not a change
        return found

    def compared_fields(self) -> tuple[tuple[str, object], ...]:
        """Return the fields a repeat must match, in the order a mismatch names them."""
        return (
            ("player", f"{self.operator}/{self.player_id}"),
            ("currency", self.currency),
            ("amount", self.amount_minor),
            ("round", self.round_id),
            ("reference", self.reference_id),
            ("credit kind", self.credit_kind.value if self.kind is Kind.CREDIT else None),
        )

    def request_hash(self) -> bytes:
        """Return the SHA-256 of the canonical request, stored beside the key."""
        text = "\x1f".join(f"{name}={value}" for name, value in self.compared_fields())
        return hashlib.sha256(text.encode()).digest()


@dataclass(frozen=True, slots=True)
class Result:
    """What the core answers for an operation that was applied (or replayed)."""

    transaction_id: uuid.UUID
    currency: str
    balance_minor: int | None
    replay: bool = False
    # A rollback of a debit the gateway never saw: stored as a tombstone, answered per protocol.
    tombstone: bool = False
    # Store and forward: durably taken, not yet acknowledged by the operator.
    queued: bool = False
    # When the operation was first taken; a replay carries the original moment.
    processed_at: datetime | None = None


def with_balance(result: Result, balance_minor: int | None) -> Result:
    """Return the result with another balance beside it."""
    return replace(result, balance_minor=balance_minor)


class TransferType(StrEnum):
    """The money calls of the Operator Wallet API."""

    DEBIT = "debit"
    CREDIT = "credit"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class Transfer:
    """One call to the operator's wallet, in the terms of the Operator Wallet API v1."""

    type: TransferType
    transaction_id: str
    provider: str
    operator: str
    player_id: str
    currency: str
    amount_minor: int
    round_id: str | None
    game_id: str | None
    credit_kind: CreditKind | None = None
    reference_transaction_id: str | None = None
    # For a rollback: the type of what it reverses, so a ledger knows the direction.
    reverses: TransferType | None = None


class ReplyStatus(StrEnum):
    """The closed list of answers of the Operator Wallet API v1."""

    OK = "OK"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    PLAYER_NOT_FOUND = "PLAYER_NOT_FOUND"
    PLAYER_BLOCKED = "PLAYER_BLOCKED"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    TRANSACTION_MISMATCH = "TRANSACTION_MISMATCH"
    TRANSACTION_ROLLED_BACK = "TRANSACTION_ROLLED_BACK"
    INVALID_REQUEST = "INVALID_REQUEST"
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


REPLY_REASONS: dict[ReplyStatus, Reason] = {
    ReplyStatus.INSUFFICIENT_FUNDS: Reason.INSUFFICIENT_FUNDS,
    ReplyStatus.PLAYER_NOT_FOUND: Reason.PLAYER_NOT_FOUND,
    ReplyStatus.PLAYER_BLOCKED: Reason.PLAYER_BLOCKED,
    ReplyStatus.CURRENCY_MISMATCH: Reason.CURRENCY_MISMATCH,
    ReplyStatus.LIMIT_EXCEEDED: Reason.LIMIT_EXCEEDED,
    ReplyStatus.TRANSACTION_ROLLED_BACK: Reason.TRANSACTION_ROLLED_BACK,
}


@dataclass(frozen=True, slots=True)
class Reply:
    """A definite answer from the operator's wallet."""

    status: ReplyStatus
    balance_minor: int | None = None

    @property
    def ok(self) -> bool:
        """Return whether the transfer was applied."""
        return self.status is ReplyStatus.OK

    @property
    def reason(self) -> Reason:
        """Return the core's reason for a refusal."""
        return REPLY_REASONS.get(self.status, Reason.OPERATOR_REFUSED)


def transfer_for(
    op: Operation,
    type_: TransferType,
    amount_minor: int,
    *,
    round_id: str | None = None,
    game_id: str | None = None,
    reference: str | None = None,
    reverses: TransferType | None = None,
) -> Transfer:
    """Return the call to the operator's wallet that an operation needs."""
    return Transfer(
        type=type_,
        transaction_id=str(op.transaction_id),
        provider=op.provider,
        operator=op.operator,
        player_id=op.player_id,
        currency=op.currency,
        amount_minor=amount_minor,
        round_id=round_id or op.round_id,
        game_id=game_id or op.game_id,
        credit_kind=op.credit_kind if type_ is TransferType.CREDIT else None,
        reference_transaction_id=reference,
        reverses=reverses,
    )


def transfer_payload(transfer: Transfer) -> dict[str, Any]:
    """Return a transfer as the JSON the outbox stores."""
    # Shallow, field by field: asdict() deep-copies, and this runs for every seamless operation.
    values = ((f.name, getattr(transfer, f.name)) for f in fields(transfer))
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in values}


def transfer_from_payload(payload: dict[str, Any]) -> Transfer:
    """Rebuild a transfer from its outbox JSON."""
    data = dict(payload)
    data["type"] = TransferType(data["type"])
    data["credit_kind"] = CreditKind(data["credit_kind"]) if data.get("credit_kind") else None
    data["reverses"] = TransferType(data["reverses"]) if data.get("reverses") else None
    return Transfer(**data)
