"""Reconciliation, gateway against operator: pure over the two lists, no I/O.

The gateway's side is what it sent (or means to send) to the operator's wallet for a window, one
entry per Croupier transaction id, with what the provider was told. The operator's side is its
Operator Wallet API v1 transactions listing. `reconcile` matches them by transaction id and
classifies every difference, with the one action that is safe for it. Only two actions move
anything, and both are idempotent at the operator: re-delivering an owed credit or refund under
its own transaction id, and cancelling a debit the provider was told failed. Everything else is
reported for a person; nothing here ever creates, changes or deletes money silently.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar


class Told(StrEnum):
    """What the provider was answered for the operation."""

    ACCEPTED = "accepted"  # applied, or durably queued: the provider counts it as done
    FAILED = "failed"  # refused, or failed: the provider counts it as not done
    PENDING = "pending"  # no final answer yet (in progress, or unknown after a timeout)


class Delivery(StrEnum):
    """Where the gateway's own delivery of the transfer to the operator stands."""

    CONFIRMED = "confirmed"  # the operator answered OK
    REFUSED = "refused"  # the operator answered with a refusal
    OWED = "owed"  # queued in the outbox, not yet acknowledged
    DEAD = "dead"  # the outbox gave up: dead-lettered
    UNKNOWN = "unknown"  # sent, no answer (a timeout): the outcome is unknown


class Kind(StrEnum):
    """The closed set of differences."""

    MISSING_AT_OPERATOR = "missing_at_operator"
    UNKNOWN_TO_GATEWAY = "unknown_to_gateway"
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    PLAYER_MISMATCH = "player_mismatch"
    STATUS_MISMATCH = "status_mismatch"
    PENDING_PAST_HORIZON = "pending_past_horizon"


class Action(StrEnum):
    """What reconciliation does about a difference."""

    REDELIVER = "redeliver"  # send the owed credit or refund again, same transaction id
    CANCEL_AT_OPERATOR = "cancel_at_operator"  # roll back a debit the provider was told failed
    REPORT = "report"  # for a person: nothing is moved


@dataclass(frozen=True, slots=True)
class Ours:
    """One transfer as the gateway's ledger holds it."""

    transaction_id: uuid.UUID
    type: str  # debit, credit or rollback, as the Operator Wallet API names them
    player_id: str
    currency: str
    amount_minor: int
    told: Told
    delivery: Delivery
    updated_at: datetime
    # The outbox row that delivers it (for a cancellation, its debit's): where healing acts.
    outbox_id: int | None = None
    # Applied, then reversed by a rollback: the operator should list it rolled back.
    reversed: bool = False


@dataclass(frozen=True, slots=True)
class Theirs:
    """One transaction of the operator's listing."""

    transaction_id: uuid.UUID
    type: str
    player_id: str
    currency: str
    amount_minor: int
    state: str  # applied, rolled_back or tombstone
    created_at: datetime
    reference_transaction_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference between the two books, with the action it gets and why."""

    kind: Kind
    transaction_id: uuid.UUID
    action: Action
    reason: str
    ours: Ours | None = None
    theirs: Theirs | None = None


_Entry = TypeVar("_Entry", Ours, Theirs)

# Transfers that pay the player: owed, so re-delivered when the operator lacks them.
OWED_TYPES = frozenset({"credit", "rollback"})


def reconcile(
    ours: Iterable[Ours], theirs: Iterable[Theirs], now: datetime, horizon_s: float
) -> list[Difference]:
    """Match the two lists by transaction id and return every difference, in transaction id order."""
    mine = _by_id(ours)
    operator = _by_id(theirs)
    empty = _empty_rollbacks(operator)
    found: list[Difference] = []
    for tx_id in sorted(mine.keys() | operator.keys()):
        found.extend(_compare(mine.get(tx_id), operator.get(tx_id), now, horizon_s, tx_id in empty))
    return found


def _empty_rollbacks(operator: dict[uuid.UUID, Theirs]) -> set[uuid.UUID]:
    """Return the operator's rollbacks that reversed nothing because their target never stood there.

    The operator lists such a rollback with amount 0 (and its target as a tombstone, or not at all):
    the gateway's copy names the amount it asked to reverse, and both are right.
    """
    empty = set()
    for t in operator.values():
        if t.type != "rollback" or t.amount_minor != 0 or t.state != "applied":
            continue
        target = operator.get(t.reference_transaction_id) if t.reference_transaction_id else None
        if target is None or target.state == "tombstone":
            empty.add(t.transaction_id)
    return empty


def _by_id(entries: Iterable[_Entry]) -> dict[uuid.UUID, _Entry]:
    """Index entries by transaction id; a list that repeats one is malformed, not reconcilable."""
    indexed: dict[uuid.UUID, _Entry] = {}
    for entry in entries:
        if entry.transaction_id in indexed:
            raise ValueError(f"transaction {entry.transaction_id} is listed twice")
        indexed[entry.transaction_id] = entry
    return indexed


def _compare(
    o: Ours | None, t: Theirs | None, now: datetime, horizon_s: float, reversed_nothing: bool
) -> Sequence[Difference]:
    if o is None:
        assert t is not None
        return [Difference(Kind.UNKNOWN_TO_GATEWAY, t.transaction_id, Action.REPORT, _unknown(t), theirs=t)]
    late = (now - o.updated_at).total_seconds() > horizon_s
    if t is None:
        return _only_ours(o, late)
    mismatched = [
        Difference(kind, o.transaction_id, Action.REPORT, f"{what}: ours {mine!r}, operator's {its!r}", o, t)
        for kind, what, mine, its in (
            (Kind.PLAYER_MISMATCH, "player", o.player_id, t.player_id),
            (Kind.CURRENCY_MISMATCH, "currency", o.currency, t.currency),
            (Kind.AMOUNT_MISMATCH, "amount", o.amount_minor, t.amount_minor),
        )
        if mine != its and not (kind is Kind.AMOUNT_MISMATCH and reversed_nothing)
    ]
    if mismatched:
        # The same id naming other money: nothing can be healed by sending it again.
        return mismatched
    return _status(o, t, late)


def _unknown(t: Theirs) -> str:
    return f"the operator holds a {t.type} ({t.state}) that Croupier never sent or no longer knows"


def _only_ours(o: Ours, late: bool) -> Sequence[Difference]:
    """Classify a transfer the gateway knows and the operator lacks."""
    if o.told is Told.FAILED and o.delivery is not Delivery.UNKNOWN:
        # Refused before or by the operator: nothing was expected to stay there.
        return []
    if o.type in OWED_TYPES and o.told is Told.ACCEPTED:
        # The provider was told the player has it: deliver it, under the same id (idempotent).
        reason = f"a {o.type} owed to the player is missing at the operator ({o.delivery.value})"
        return [Difference(Kind.MISSING_AT_OPERATOR, o.transaction_id, Action.REDELIVER, reason, o)]
    if o.told is Told.PENDING or o.delivery in (Delivery.OWED, Delivery.UNKNOWN, Delivery.DEAD):
        if not late and o.delivery is not Delivery.DEAD:
            return []  # still within the operator's retry window: not a difference yet
        reason = (
            f"{o.type} dead-lettered: the outbox gave up delivering it"
            if o.delivery is Delivery.DEAD
            else f"{o.type} still {o.delivery.value} past the horizon"
        )
        return [Difference(Kind.PENDING_PAST_HORIZON, o.transaction_id, Action.REPORT, reason, o)]
    reason = f"a {o.type} the gateway believes applied is missing at the operator"
    return [Difference(Kind.MISSING_AT_OPERATOR, o.transaction_id, Action.REPORT, reason, o)]


def _status(o: Ours, t: Theirs, late: bool) -> Sequence[Difference]:
    """Classify a transfer both hold with the same money: do they agree on whether it stands."""
    stands_there = t.state == "applied"
    stands_here = o.told is Told.ACCEPTED and not o.reversed
    if stands_here == stands_there and o.told is not Told.PENDING:
        return []
    if o.told is Told.PENDING:
        if not late:
            return []
        kind, action = Kind.PENDING_PAST_HORIZON, Action.REPORT
        reason = f"{o.type} still pending at the gateway past the horizon; the operator has it {t.state}"
    elif o.told is Told.FAILED:
        kind = Kind.STATUS_MISMATCH
        # The provider was told the bet failed, yet the operator took the money: give it back.
        action = Action.CANCEL_AT_OPERATOR if o.type == "debit" else Action.REPORT
        reason = f"a {o.type} the provider was told failed stands at the operator"
    elif o.reversed:
        kind, action = Kind.STATUS_MISMATCH, Action.REPORT
        reason = f"a {o.type} the gateway reversed still stands at the operator"
    else:
        kind, action = Kind.STATUS_MISMATCH, Action.REPORT
        reason = f"a {o.type} the provider was told was accepted is {t.state} at the operator"
    return [Difference(kind, o.transaction_id, action, reason, o, t)]
