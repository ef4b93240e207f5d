"""Wire types of the protocol, parsed strictly: ids are strings, amounts JSON integers in subunits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from providers.wire import MAX_TOKEN, required_text, text
from wallet.errors import InvalidRequestError
from wallet.money import AmountError, minor_from_wire

# A call carries a bet and a win, sometimes a few of each; far more is not a game round.
MAX_ACTIONS = 50
PLAY_ACTIONS = frozenset({"bet", "win"})


def flag(data: dict[str, Any], name: str) -> bool:
    """Return a required JSON boolean."""
    value = data.get(name)
    if not isinstance(value, bool):
        raise InvalidRequestError(f"{name} must be true or false")
    return value


def minor(data: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    """Return an amount in integer subunits; a float, string, boolean or negative is refused."""
    if name not in data or data[name] is None:
        if required:
            raise InvalidRequestError(f"{name} is required")
        return None
    try:
        return minor_from_wire(data[name])
    except AmountError as exc:
        raise InvalidRequestError(f"{name}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Action:
    """One action of a call: a bet, a win or a rollback."""

    action: str
    action_id: str
    amount_minor: int | None = None
    jackpot_contribution_minor: int | None = None
    original_action_id: str | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """A /play or /rollback call: the player, the round and its actions in order."""

    user_id: str
    currency: str
    game: str | None
    game_id: str | None
    finished: bool
    actions: tuple[Action, ...]
    # Croupier's extension: the launch token, so a bet on an ended session is refused.
    session_id: str | None


def _actions(data: dict[str, Any], *, rollback: bool) -> tuple[Action, ...]:
    raw = data.get("actions", [])
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise InvalidRequestError("actions must be a list")
    if len(raw) > MAX_ACTIONS:
        raise InvalidRequestError(f"at most {MAX_ACTIONS} actions per call")
    actions = tuple(_action(item, rollback=rollback) for item in raw)
    ids = [a.action_id for a in actions]
    if len(set(ids)) != len(ids):
        raise InvalidRequestError("an action_id appears twice in one call")
    return actions


def _action(item: object, *, rollback: bool) -> Action:
    if not isinstance(item, dict):
        raise InvalidRequestError("each action must be an object")
    kind = item.get("action")
    action_id = required_text(item, "action_id")
    if rollback:
        if kind != "rollback":
            raise InvalidRequestError('a /rollback action must be "rollback"')
        return Action("rollback", action_id, original_action_id=required_text(item, "original_action_id"))
    if kind not in PLAY_ACTIONS:
        raise InvalidRequestError('a /play action must be "bet" or "win"')
    return Action(
        kind,
        action_id,
        amount_minor=minor(item, "amount"),
        jackpot_contribution_minor=minor(item, "jackpot_contribution", required=False),
    )


def call(data: dict[str, Any], *, rollback: bool) -> Call:
    """Read a /play (rollback=False) or /rollback call."""
    actions = _actions(data, rollback=rollback)
    if rollback and not actions:
        raise InvalidRequestError("a rollback call needs at least one action")
    finished = flag(data, "finished") if "finished" in data or actions or rollback else False
    # A bare balance request may leave the round out; anything that touches a round names it.
    needs_round = bool(actions) or finished
    return Call(
        user_id=required_text(data, "user_id"),
        currency=required_text(data, "currency"),
        game=text(data, "game", required=needs_round),
        game_id=text(data, "game_id", required=needs_round),
        finished=finished,
        actions=actions,
        session_id=text(data, "session_id", required=False, max_length=MAX_TOKEN),
    )


@dataclass(frozen=True, slots=True)
class FreespinsReport:
    """The end of a free-spins issue: its status, the total it paid and, if sent, whose it is."""

    issue_id: str
    status: str
    total_amount_minor: int
    user_id: str | None = None
    currency: str | None = None


def freespins(data: dict[str, Any]) -> FreespinsReport:
    """Read a /freespins call; `user_id` is optional and, when sent, needs `currency`."""
    total = minor(data, "total_amount")
    assert total is not None
    user_id = text(data, "user_id", required=False)
    return FreespinsReport(
        required_text(data, "issue_id"),
        required_text(data, "status"),
        total,
        user_id,
        text(data, "currency", required=user_id is not None),
    )
