"""The pure rules of the semantics table: given what is stored, whether an operation may apply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from wallet.errors import InProgressError, MismatchError, Reason, RejectedError
from wallet.limits import PlayerLimits
from wallet.operations import WITHOUT_BET, Operation, SessionState, State
from wallet.policy import Capabilities, OperatorPolicy

# A stored row, as fetched or as the engine holds it in memory while deciding a batch.
Row = asyncpg.Record | Mapping[str, Any]


def check_repeat(op: Operation, stored: asyncpg.Record) -> None:
    """Raise MismatchError naming the first field in which a repeat differs from the original."""
    if bytes(stored["request_hash"]) == op.request_hash():
        return
    original = {
        "player": f"{stored['operator']}/{stored['player_id']}",
        "currency": stored["currency"],
        "amount": stored["amount_minor"],
        "round": stored["round_id"],
        "reference": stored["reference_id"],
        "credit kind": stored["credit_kind"],
    }
    for name, value in op.compared_fields():
        if original[name] != value:
            raise MismatchError(name)
    raise MismatchError("request")


def check_debit(
    op: Operation, policy: OperatorPolicy, round_: Row | None, player: PlayerLimits | None = None
) -> None:
    """Refuse a new debit for a block, token, limit or round reason."""
    # The block first: blocking also ended the player's sessions, and the reason to tell is the block.
    if player is not None and player.block is not None:
        raise RejectedError(Reason.PLAYER_BLOCKED, f"the player is {player.block.state.replace('_', '-')}")
    if op.session is SessionState.EXPIRED:
        raise RejectedError(Reason.SESSION_EXPIRED, "the session has expired")
    limit = policy.max_bet_minor.get(op.currency)
    if limit is not None and (op.amount_minor or 0) > limit:
        raise RejectedError(Reason.LIMIT_EXCEEDED, f"bet above the limit of {limit}")
    own = player.max_bet_minor if player is not None and player.currency == op.currency else None
    if own is not None and (op.amount_minor or 0) > own:
        raise RejectedError(Reason.LIMIT_EXCEEDED, f"bet above the player's limit of {own}")
    if round_ is not None and round_["state"] == "closed":
        raise RejectedError(Reason.ROUND_CLOSED, "the round has ended")


def credit_needs_bet(op: Operation, caps: Capabilities) -> bool:
    """Return whether this credit may only be applied to a round that has a bet."""
    return op.credit_kind not in WITHOUT_BET and not caps.wins_without_bets


def check_credit(op: Operation, caps: Capabilities, round_: Row | None) -> None:
    """Refuse a credit with no bet where not allowed, or for a round whose bets were rolled back."""
    # Money owed to a player is never refused for a token reason: no session or block check here.
    has_bet = round_ is not None and int(round_["bets_count"]) > 0
    if not has_bet and credit_needs_bet(op, caps):
        raise RejectedError(Reason.BET_NOT_FOUND, "no bet in this round")
    if has_bet and round_ is not None and round_["live_bets"] == 0 and int(round_["refunds_count"]) > 0:
        raise RejectedError(Reason.BET_ROLLED_BACK, "the round's bet was rolled back")


def check_rollback_target(caps: Capabilities, target: asyncpg.Record, round_: asyncpg.Record | None) -> bool:
    """Return True if the target must be reversed now, False if there is nothing left to reverse."""
    state = State(str(target["state"]))
    if state in (State.PENDING, State.QUEUED):
        raise InProgressError("the operation to roll back is still in progress")
    if state is not State.APPLIED or target["reversed"]:
        # Never applied, already a tombstone or already reversed: nothing moves, the answer is OK.
        return False
    if target["kind"] == "credit" and not caps.rollback_of_credit:
        raise RejectedError(Reason.ALREADY_SETTLED, "this protocol has no rollback of a credit")
    settled = round_ is not None and int(round_["wins_count"]) > 0
    if target["kind"] == "debit" and settled and not caps.rollback_after_win:
        raise RejectedError(Reason.ALREADY_SETTLED, "the round already paid a win")
    return True
