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
    # The ledger backend's own books: entries against operations and balances.
    APPLIED_TWICE = "applied_twice"
    BALANCE_MISMATCH = "balance_mismatch"
    # A round still open past its provider's horizon.
    STUCK_ROUND = "stuck_round"


class Action(StrEnum):
    """What reconciliation does about a difference."""

    REDELIVER = "redeliver"  # send the owed credit or refund again, same transaction id
    CANCEL_AT_OPERATOR = "cancel_at_operator"  # roll back a debit the provider was told failed
    SETTLE_ROUND = "settle_round"  # settle a stuck round by its protocol's own rule
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
class Booked:
    """One money operation of a ledger-backend operator, with the entries booked for it."""

    transaction_id: uuid.UUID
    type: str  # debit, credit or rollback
    state: str
    player_id: str
    currency: str
    amount_minor: int | None
    reversed: bool
    entries: tuple[tuple[str, str, int], ...]  # (player, currency, signed amount), in booking order
    # A rollback's applied target, if it has one: its type and amount.
    target_type: str | None = None
    target_amount_minor: int | None = None
    # A debit's or credit's applied rollbacks that moved money back.
    reversals: int = 0


@dataclass(frozen=True, slots=True)
class Account:
    """One account of a ledger-backend operator: its stored balance and the sum of its entries."""

    player_id: str
    currency: str
    balance_minor: int
    entries_minor: int


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference between the two books, with the action it gets and why."""

    kind: Kind
    transaction_id: uuid.UUID | None  # None for an account's balance
    action: Action
    reason: str
    ours: Ours | Booked | None = None
    theirs: Theirs | Account | None = None
    # What a difference with no transaction names: an account (player/currency) or a round.
    subject: str | None = None


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


def check_ledger(booked: Iterable[Booked], accounts: Iterable[Account]) -> list[Difference]:
    """Check a ledger backend's books: each operation moved its money once, each balance is its entries.

    Here the gateway is the operator's wallet, so a difference is a defect of the ledger itself:
    every one is reported, nothing is healed.
    """
    found = [diff for op in sorted(booked, key=lambda b: b.transaction_id) for diff in _check_booked(op)]
    for account in sorted(accounts, key=lambda a: (a.player_id, a.currency)):
        if account.balance_minor != account.entries_minor:
            reason = (
                f"balance of {account.player_id} in {account.currency} is {account.balance_minor},"
                f" its entries sum to {account.entries_minor}"
            )
            subject = f"{account.player_id}/{account.currency}"
            found.append(
                Difference(
                    Kind.BALANCE_MISMATCH, None, Action.REPORT, reason, theirs=account, subject=subject
                )
            )
    return found


def _movement(op: Booked) -> int | None:
    """Return the signed amount an applied operation must have booked, or None for no movement."""
    if op.type == "debit":
        return -(op.amount_minor or 0)
    if op.type == "credit":
        return op.amount_minor or 0
    if op.target_type is None or op.target_amount_minor is None:
        return None  # a rollback of nothing (its bet never came, or was refused) moves nothing
    return op.target_amount_minor if op.target_type == "debit" else -op.target_amount_minor


Finding = tuple[Kind, str]


def _check_booked(op: Booked) -> list[Difference]:
    """Classify what one operation's entries say against what the operation says."""
    moved = [entry for entry in op.entries if entry[2] != 0]
    if op.state != "applied":
        findings = [(Kind.STATUS_MISMATCH, f"money was booked for a {op.state} {op.type}")] if moved else []
    elif op.type == "rollback":
        findings = _rollback_findings(op, moved)
    else:
        findings = _transfer_findings(op)
    return [Difference(kind, op.transaction_id, Action.REPORT, reason, ours=op) for kind, reason in findings]


def _rollback_findings(op: Booked, moved: Sequence[tuple[str, str, int]]) -> list[Finding]:
    # A rollback that found its target already reversed is applied and moves nothing.
    expected = _movement(op)
    if len(moved) > 1:
        return [(Kind.APPLIED_TWICE, f"a rollback booked {len(moved)} times")]
    if moved and expected is None:
        return [(Kind.STATUS_MISMATCH, "a rollback of nothing moved money")]
    return _entry_findings(op, moved[0], expected) if moved else []


def _transfer_findings(op: Booked) -> list[Finding]:
    if not op.entries:
        found = [(Kind.MISSING_AT_OPERATOR, f"an applied {op.type} has no entry: no balance moved")]
    elif len(op.entries) > 1:
        found = [(Kind.APPLIED_TWICE, f"an applied {op.type} booked {len(op.entries)} times")]
    else:
        found = _entry_findings(op, op.entries[0], _movement(op))
    if op.reversals > 1:
        found.append((Kind.APPLIED_TWICE, f"a {op.type} reversed {op.reversals} times"))
    elif op.reversed != (op.reversals == 1):
        state = "marked reversed with no rollback booked" if op.reversed else "reversed but not marked so"
        found.append((Kind.STATUS_MISMATCH, f"a {op.type} {state}"))
    return found


def _entry_findings(op: Booked, entry: tuple[str, str, int], expected: int | None) -> list[Finding]:
    player_id, currency, amount = entry
    found = []
    if player_id != op.player_id:
        found.append((Kind.PLAYER_MISMATCH, f"booked to {player_id!r}, not the operation's {op.player_id!r}"))
    if currency != op.currency:
        found.append((Kind.CURRENCY_MISMATCH, f"booked in {currency}, the operation is in {op.currency}"))
    if expected is not None and amount != expected:
        found.append((Kind.AMOUNT_MISMATCH, f"booked {amount}, the operation moves {expected}"))
    return found
