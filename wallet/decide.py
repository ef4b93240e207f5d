"""The engine's pure state machine: bets and wins of a batch decided in order over prefetched rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wallet import limits, rules
from wallet.errors import InProgressError, Reason, RejectedError, WalletError
from wallet.operations import Kind, Operation, Reply, ReplyStatus, State, Transfer, TransferType, transfer_for
from wallet.policy import Capabilities, OperatorPolicy

OpKey = tuple[str, str, str, str]
RoundKey = tuple[str, str, str, str]
AccountKey = tuple[str, str, str]
PlayerKey = tuple[str, str]

# The round counters a bet or a win changes, written back as they end the batch.
ROUND_FIELDS = ("bets_count", "live_bets", "bets_minor", "wins_count", "wins_minor", "state")


def op_key(op: Operation) -> OpKey:
    """Return the operation's idempotency key, as the UNIQUE constraint spells it."""
    return (op.provider, op.scope, op.kind.value, op.external_id)


def round_key(op: Operation) -> RoundKey:
    """Return the key of the operation's round."""
    assert op.round_id is not None
    return (op.provider, op.operator, op.player_id, op.round_id)


def account_key(op: Operation) -> AccountKey:
    """Return the key of the account the operation moves."""
    return (op.operator, op.player_id, op.currency)


@dataclass(frozen=True, slots=True)
class Item:
    """One request of a batch: the operation and what its provider and operator declare."""

    op: Operation
    caps: Capabilities
    policy: OperatorPolicy
    # True for Croupier's own ledger (money moves in the batch), False for a seamless operator
    # (the batch stores the intent and its outbox row; the operator is called after the commit).
    in_database: bool = True

    def creates_round(self) -> bool:
        """Return whether this operation opens its round if the round is new."""
        return self.op.kind is Kind.DEBIT or not rules.credit_needs_bet(self.op, self.caps)


@dataclass(slots=True)
class Snapshot:
    """The rows a batch prefetched, locked, and changed in memory as it is decided."""

    existing: set[OpKey]
    rounds: dict[RoundKey, dict[str, Any]]
    accounts: dict[AccountKey, dict[str, Any]]
    player_limits: Mapping[PlayerKey, Mapping[str, Any]]
    # Rounds with a bet still in flight at the operator, and in which state (pending or queued).
    unsettled: set[tuple[RoundKey, str]] = field(default_factory=set)
    touched_rounds: set[RoundKey] = field(default_factory=set)
    touched_accounts: set[AccountKey] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Decision:
    """What one operation comes to: its stored row and the answer to its provider."""

    item: Item
    state: State
    reason: Reason | None = None
    # The balance column stored with the operation, and the balance answered now.
    stored_balance_minor: int | None = None
    balance_minor: int | None = None
    # The signed ledger entry of an applied operation.
    entry_minor: int | None = None
    message: str = ""
    # A seamless intent: the call the operator gets after the commit, and its outbox row's action.
    transfer: Transfer | None = None
    outbox_action: str | None = None
    # A refusal that waits on an operation in flight: answered retryable, and nothing is stored.
    in_progress: bool = False

    @property
    def stored(self) -> bool:
        """Return whether the decision writes the operation's row."""
        return not self.in_progress

    def error(self) -> WalletError:
        """Return the refusal to answer for a rejected operation."""
        if self.in_progress:
            return InProgressError(self.message)
        assert self.reason is not None
        return RejectedError(self.reason, self.message or self.reason.value, self.balance_minor)


def decide(items: Sequence[Item], snap: Snapshot) -> list[Decision]:
    """Decide items in order until one needs the one-by-one path; return the decided prefix."""
    decided: list[Decision] = []
    for item in items:
        decision = _decide_one(item, snap)
        if decision is None:
            break
        if decision.stored:
            snap.existing.add(op_key(item.op))
        decided.append(decision)
    return decided


def _decide_one(item: Item, snap: Snapshot) -> Decision | None:
    """Return the decision for one operation, or None where the one-by-one path must take it."""
    op = item.op
    # A repeat replays what was stored, and an unknown account has its own diagnosis: both are
    # rare, and the one-by-one path answers them exactly as it always has.
    if op_key(op) in snap.existing:
        return None
    account = snap.accounts.get(account_key(op))
    if item.in_database and account is None:
        return None
    if op.kind is Kind.DEBIT:
        return _debit(item, snap, account)
    return _credit(item, snap, account)


def _debit(item: Item, snap: Snapshot, account: dict[str, Any] | None) -> Decision | None:
    op, policy = item.op, item.policy
    round_ = snap.rounds[round_key(op)]
    row = snap.player_limits.get((op.operator, op.player_id))
    player = (
        limits.PlayerLimits(op.operator, op.player_id)
        if policy.play_money
        else limits.in_force(policy, op.operator, op.player_id, row, op.currency)
    )
    if player.loss_limit_minor is not None and player.loss_period is not None:
        # A loss limit sums the period's bets under an advisory lock: the one-by-one path.
        return None
    try:
        rules.check_debit(op, policy, round_, player)
    except RejectedError as exc:
        return _refused(item, exc, account)
    amount = op.amount_minor or 0
    if account is None:
        # Seamless: the bet counts in its round only once the operator has taken it.
        snap.unsettled.add((round_key(op), State.PENDING.value))
        return _intent(item, transfer_for(op, TransferType.DEBIT, amount), "cancel_debit")
    balance = int(account["balance_minor"])
    if account["blocked"]:
        return _declined(item, Reply(ReplyStatus.PLAYER_BLOCKED, balance))
    if balance < amount:
        return _declined(item, Reply(ReplyStatus.INSUFFICIENT_FUNDS, balance))
    account["balance_minor"] = balance - amount
    round_["bets_count"] += 1
    round_["live_bets"] += 1
    round_["bets_minor"] += amount
    snap.touched_accounts.add(account_key(op))
    snap.touched_rounds.add(round_key(op))
    return _applied(item, balance - amount, -amount)


def _credit(item: Item, snap: Snapshot, account: dict[str, Any] | None) -> Decision | None:
    op, caps = item.op, item.caps
    round_ = snap.rounds.get(round_key(op))
    try:
        rules.check_credit(op, caps, round_)
    except RejectedError as exc:
        # A refusal for want of a bet is final only once the round's bets have settled.
        states = (
            {State.PENDING.value, State.QUEUED.value} if item.policy.answer_after_operator else {"pending"}
        )
        if any((round_key(op), state) in snap.unsettled for state in states):
            return Decision(
                item, State.PENDING, in_progress=True, message="a debit of this round is in progress"
            )
        return _refused(item, exc, account)
    assert round_ is not None, "a credit with no round is refused or opens one"
    amount = op.amount_minor or 0
    if account is None:
        # Seamless: a credit counts in its round when taken, so a rollback racing it sees a win.
        round_["wins_count"] += 1
        round_["wins_minor"] += amount
        snap.touched_rounds.add(round_key(op))
        game_id = op.game_id or round_.get("game_id")
        return _intent(item, transfer_for(op, TransferType.CREDIT, amount, game_id=game_id), "credit")
    balance = int(account["balance_minor"]) + amount
    account["balance_minor"] = balance
    round_["wins_count"] += 1
    round_["wins_minor"] += amount
    if _all_bets_settled(round_):
        round_["state"] = "closed"
    snap.touched_accounts.add(account_key(op))
    snap.touched_rounds.add(round_key(op))
    return _applied(item, balance, amount)


def _all_bets_settled(round_: Mapping[str, Any]) -> bool:
    """Return whether a round under the every-bet-settled rule has just ended."""
    return bool(
        round_["ends_when_settled"]
        and round_["state"] == "open"
        and round_["bets_count"] > 0
        and round_["wins_count"] + round_["refunds_count"] >= round_["bets_count"]
    )


def _applied(item: Item, balance_minor: int, entry_minor: int) -> Decision:
    return Decision(item, State.APPLIED, None, balance_minor, balance_minor, entry_minor)


def _intent(item: Item, transfer: Transfer, action: str) -> Decision:
    """Store a seamless operation as pending, with the outbox row that finishes it if we die."""
    return Decision(item, State.PENDING, transfer=transfer, outbox_action=action)


def _refused(item: Item, exc: RejectedError, account: Mapping[str, Any] | None) -> Decision:
    """Refuse for a rule: stored with the rule's balance, answered with the current one."""
    # A seamless operator's current balance is asked of it after the commit (balance None).
    held = int(account["balance_minor"]) if account is not None else None
    current = exc.balance_minor if exc.balance_minor is not None else held
    return Decision(item, State.REJECTED, exc.reason, exc.balance_minor, current, message=str(exc))


def _declined(item: Item, reply: Reply) -> Decision:
    """Decline as the wallet would (funds, block): stored and answered with the balance it saw."""
    bal = reply.balance_minor
    return Decision(item, State.REJECTED, reply.reason, bal, bal, message=reply.status.value)
