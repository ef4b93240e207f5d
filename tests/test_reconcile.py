"""Reconciliation's state machine, pure over the gateway's and the operator's lists (no I/O)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from wallet.reconcile import (
    Account,
    Action,
    Booked,
    Delivery,
    Kind,
    Ours,
    Theirs,
    Told,
    check_ledger,
    reconcile,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
HORIZON_S = 600.0
RECENT, OLD = NOW - timedelta(seconds=60), NOW - timedelta(hours=1)


def ours(
    type_: str = "debit", told: Told = Told.ACCEPTED, delivery: Delivery = Delivery.CONFIRMED, **kw: object
) -> Ours:
    """Return a gateway transfer, recent unless told otherwise."""
    base = Ours(uuid.uuid4(), type_, "p1", "EUR", 100, told, delivery, RECENT)
    return replace(base, **kw)  # type: ignore[arg-type]


def theirs(o: Ours, state: str = "applied", **kw: object) -> Theirs:
    """Return the operator's entry for the same transfer."""
    base = Theirs(o.transaction_id, o.type, o.player_id, o.currency, o.amount_minor, state, o.updated_at)
    return replace(base, **kw)  # type: ignore[arg-type]


def one(o: list[Ours], t: list[Theirs]) -> tuple[Kind, Action] | None:
    """Return the kind and action of the single difference, or None if the books agree."""
    found = reconcile(o, t, NOW, HORIZON_S)
    assert len(found) <= 1, found
    return (found[0].kind, found[0].action) if found else None


def test_books_that_agree_have_no_difference() -> None:
    """Applied on both sides, refused on both, a rollback on both: nothing to say."""
    bet, win, refund = ours("debit"), ours("credit"), ours("rollback")
    refused = ours("debit", Told.FAILED, Delivery.REFUSED)
    listing = [theirs(bet), theirs(win), theirs(refund)]
    assert reconcile([bet, win, refund, refused], listing, NOW, HORIZON_S) == []


@pytest.mark.parametrize("type_", ["credit", "rollback"])
@pytest.mark.parametrize("delivery", [Delivery.OWED, Delivery.DEAD, Delivery.UNKNOWN, Delivery.CONFIRMED])
def test_owed_money_missing_at_the_operator_is_redelivered(type_: str, delivery: Delivery) -> None:
    """A win or refund the provider was told was accepted, absent at the operator: sent again."""
    o = ours(type_, Told.ACCEPTED, delivery)
    found = reconcile([o], [], NOW, HORIZON_S)
    assert [(d.kind, d.action, d.transaction_id) for d in found] == [
        (Kind.MISSING_AT_OPERATOR, Action.REDELIVER, o.transaction_id)
    ]


def test_a_debit_believed_applied_but_missing_is_reported_not_redone() -> None:
    """The gateway never debits a player again by itself: a person looks."""
    assert one([ours("debit")], []) == (Kind.MISSING_AT_OPERATOR, Action.REPORT)


def test_a_transaction_the_gateway_never_sent_is_reported() -> None:
    """Unknown to the gateway: reported, never deleted."""
    stranger = theirs(ours("credit"))
    found = reconcile([], [stranger], NOW, HORIZON_S)
    assert [(d.kind, d.action, d.theirs) for d in found] == [
        (Kind.UNKNOWN_TO_GATEWAY, Action.REPORT, stranger)
    ]


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({"amount_minor": 101}, Kind.AMOUNT_MISMATCH),
        ({"currency": "USD"}, Kind.CURRENCY_MISMATCH),
        ({"player_id": "p2"}, Kind.PLAYER_MISMATCH),
    ],
)
def test_the_same_id_naming_other_money_is_reported(change: dict[str, object], kind: Kind) -> None:
    """Amount, currency or player differ: reported, whatever the states."""
    o = ours("credit")
    assert one([o], [theirs(o, **change)]) == (kind, Action.REPORT)


def test_every_mismatched_field_is_named() -> None:
    """Two fields differ: two differences for the one id."""
    o = ours("debit")
    found = reconcile([o], [theirs(o, amount_minor=5, currency="USD")], NOW, HORIZON_S)
    assert sorted(d.kind for d in found) == sorted([Kind.AMOUNT_MISMATCH, Kind.CURRENCY_MISMATCH])


def test_a_debit_the_provider_was_told_failed_is_cancelled_at_the_operator() -> None:
    """Told failed (a timeout, then a refusal to the provider), yet standing there: cancelled."""
    o = ours("debit", Told.FAILED, Delivery.UNKNOWN)
    assert one([o], [theirs(o)]) == (Kind.STATUS_MISMATCH, Action.CANCEL_AT_OPERATOR)
    assert one([o], [theirs(o, state="rolled_back")]) is None


def test_an_accepted_transfer_rolled_back_at_the_operator_is_reported() -> None:
    """Applied here, rolled back there: a person decides."""
    o = ours("credit")
    assert one([o], [theirs(o, state="rolled_back")]) == (Kind.STATUS_MISMATCH, Action.REPORT)
    failed_credit = ours("credit", Told.FAILED, Delivery.UNKNOWN)
    assert one([failed_credit], [theirs(failed_credit)]) == (Kind.STATUS_MISMATCH, Action.REPORT)


@pytest.mark.parametrize("delivery", [Delivery.OWED, Delivery.UNKNOWN])
def test_pending_is_a_difference_only_past_the_horizon(delivery: Delivery) -> None:
    """A bet still unknown within the operator's window is not yet a difference; past it, it is."""
    fresh = ours("debit", Told.PENDING, delivery)
    stale = replace(fresh, updated_at=OLD)
    assert one([fresh], []) is None
    assert one([stale], []) == (Kind.PENDING_PAST_HORIZON, Action.REPORT)
    assert one([fresh], [theirs(fresh)]) is None
    assert one([stale], [theirs(stale)]) == (Kind.PENDING_PAST_HORIZON, Action.REPORT)


def test_a_dead_letter_is_reported_at_once() -> None:
    """Dead-lettered is never 'still within the window'."""
    dead = ours("debit", Told.PENDING, Delivery.DEAD)
    assert one([dead], []) == (Kind.PENDING_PAST_HORIZON, Action.REPORT)


def test_a_refused_transfer_absent_at_the_operator_is_no_difference() -> None:
    """Refused by a rule or by the operator: nothing was expected there."""
    assert one([ours("debit", Told.FAILED, Delivery.REFUSED)], []) is None


def test_reconciling_is_deterministic_and_a_repeated_id_is_an_error() -> None:
    """The same lists give the same differences in the same order; a listing naming an id twice is refused."""
    items = [ours("credit") for _ in range(20)]
    first = reconcile(items, [], NOW, HORIZON_S)
    assert first == reconcile(list(reversed(items)), [], NOW, HORIZON_S)
    assert [d.transaction_id for d in first] == sorted(o.transaction_id for o in items)
    with pytest.raises(ValueError, match="listed twice"):
        reconcile([], [theirs(items[0]), theirs(items[0])], NOW, HORIZON_S)


def test_a_rollback_that_reversed_nothing_there_is_no_amount_mismatch() -> None:
    """Cancelling a debit the operator never took: it lists the rollback at 0 and the debit as a tombstone."""
    debit = ours("debit", Told.FAILED, Delivery.UNKNOWN)
    cancel = ours("rollback", Told.ACCEPTED, Delivery.CONFIRMED)
    tombstone = theirs(debit, state="tombstone")
    empty = theirs(cancel, amount_minor=0, reference_transaction_id=debit.transaction_id)
    assert reconcile([debit, cancel], [tombstone, empty], NOW, HORIZON_S) == []
    # But a rollback of 0 against a debit that stands there is a difference: the refund is missing.
    stood = theirs(debit, state="applied")
    kinds = {d.kind for d in reconcile([debit, cancel], [stood, empty], NOW, HORIZON_S)}
    assert Kind.AMOUNT_MISMATCH in kinds


def test_a_reversed_transfer_is_expected_rolled_back_there() -> None:
    """A bet the gateway refunded: rolled back at the operator agrees, still standing there does not."""
    bet = ours("debit", reversed=True)
    assert one([bet], [theirs(bet, state="rolled_back")]) is None
    assert one([bet], [theirs(bet)]) == (Kind.STATUS_MISMATCH, Action.REPORT)


# The ledger backend's own books: each operation's entries against the operation, balances against entries.


def booked(type_: str = "debit", state: str = "applied", amount: int = 100, **kw: object) -> Booked:
    """Return an operation with the one entry it should have booked, unless told otherwise."""
    signed = {"debit": -amount, "credit": amount}.get(type_, 0)
    entries = (("p1", "EUR", signed),) if state == "applied" and type_ != "rollback" else ()
    base = Booked(uuid.uuid4(), type_, state, "p1", "EUR", amount, reversed=False, entries=entries)
    return replace(base, **kw)  # type: ignore[arg-type]


def found_in(*ops: Booked, accounts: tuple[Account, ...] = ()) -> list[tuple[Kind, str]]:
    """Return each difference's kind and reason; every one is only reported."""
    found = check_ledger(ops, accounts)
    assert all(d.action is Action.REPORT for d in found)
    return [(d.kind, d.reason) for d in found]


def test_a_ledger_whose_entries_match_has_no_difference() -> None:
    """A bet, a win, a refunded bet with its refund, a no-op rollback and refusals agree."""
    refunded = booked("debit", reversed=True, reversals=1)
    refund = booked("rollback", entries=(("p1", "EUR", 100),), target_type="debit", target_amount_minor=100)
    unwin = booked("rollback", entries=(("p1", "EUR", -40),), target_type="credit", target_amount_minor=40)
    won_back = booked("credit", amount=40, reversed=True, reversals=1)
    nothing = booked("rollback", entries=(("p1", "EUR", 0),))  # its bet never came
    again = booked("rollback", target_type="debit", target_amount_minor=100)  # already refunded
    ops = (booked(), booked("credit", amount=0), refunded, refund, unwin, won_back, nothing, again)
    refused = (booked(state="rejected"), booked(state="tombstone"), booked(state="pending"))
    accounts = (Account("p1", "EUR", 960, 960), Account("p2", "EUR", 0, 0))
    assert found_in(*ops, *refused, accounts=accounts) == []


@pytest.mark.parametrize(
    ("op", "kind", "reason"),
    [
        (booked(entries=()), Kind.MISSING_AT_OPERATOR, "an applied debit has no entry: no balance moved"),
        (
            booked("credit", entries=(("p1", "EUR", 100),) * 2),
            Kind.APPLIED_TWICE,
            "an applied credit booked 2 times",
        ),
        (booked(entries=(("p1", "EUR", -90),)), Kind.AMOUNT_MISMATCH, "booked -90, the operation moves -100"),
        (booked(entries=(("p1", "EUR", 100),)), Kind.AMOUNT_MISMATCH, "booked 100, the operation moves -100"),
        (
            booked(entries=(("p2", "EUR", -100),)),
            Kind.PLAYER_MISMATCH,
            "booked to 'p2', not the operation's 'p1'",
        ),
        (
            booked(entries=(("p1", "USD", -100),)),
            Kind.CURRENCY_MISMATCH,
            "booked in USD, the operation is in EUR",
        ),
        (
            booked(state="rejected", entries=(("p1", "EUR", -100),)),
            Kind.STATUS_MISMATCH,
            "money was booked for a rejected debit",
        ),
        (booked(reversed=True), Kind.STATUS_MISMATCH, "a debit marked reversed with no rollback booked"),
        (booked(reversals=1), Kind.STATUS_MISMATCH, "a debit reversed but not marked so"),
        (booked(reversed=True, reversals=2), Kind.APPLIED_TWICE, "a debit reversed 2 times"),
        (
            booked("rollback", entries=(("p1", "EUR", 5),)),
            Kind.STATUS_MISMATCH,
            "a rollback of nothing moved money",
        ),
        (
            booked(
                "rollback", entries=(("p1", "EUR", 100),) * 2, target_type="debit", target_amount_minor=100
            ),
            Kind.APPLIED_TWICE,
            "a rollback booked 2 times",
        ),
        (
            booked("rollback", entries=(("p1", "EUR", -100),), target_type="debit", target_amount_minor=100),
            Kind.AMOUNT_MISMATCH,
            "booked -100, the operation moves 100",
        ),
    ],
)
def test_each_ledger_defect_is_found_and_only_reported(op: Booked, kind: Kind, reason: str) -> None:
    """Every way an operation's entries can disagree with it is one difference of its own kind."""
    assert found_in(op) == [(kind, reason)]


def test_a_balance_that_is_not_its_entries_is_a_difference_of_its_account() -> None:
    """Drift is named by account, with no transaction to point at."""
    (diff,) = check_ledger([], [Account("p1", "EUR", 1_007, 1_000), Account("p2", "EUR", 5, 5)])
    assert (diff.kind, diff.transaction_id, diff.action) == (Kind.BALANCE_MISMATCH, None, Action.REPORT)
    assert diff.reason == "balance of p1 in EUR is 1007, its entries sum to 1000"
