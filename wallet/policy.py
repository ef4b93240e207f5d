"""What a provider's protocol allows and how an operator wants its money handled."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider's protocol does, declared by its adapter and read by the core."""

    # The protocol pays wins with no bet in the round (free rounds, promos) under plain 'win'.
    wins_without_bets: bool = False
    # The protocol may refund a bet after its round paid a win.
    rollback_after_win: bool = False
    # The protocol has a rollback of a credit, not only of a debit.
    rollback_of_credit: bool = False
    # The provider reuses transaction ids across players, so ids are scoped by player.
    ids_scoped_by_player: bool = False
    # The protocol pays free rounds naming a campaign, so the Operator API may award them.
    free_rounds: bool = False
    # The protocol sends no end of round: a round ends once each of its bets is settled by a
    # credit or a refund of its own (one settlement per bet, as Evolution's refId).
    rounds_end_when_bets_settled: bool = False


@dataclass(frozen=True, slots=True)
class OperatorPolicy:
    """How one operator's money is handled."""

    name: str
    # Largest single bet per currency, in minor units; a currency not listed has no limit here.
    max_bet_minor: Mapping[str, int] = field(default_factory=dict)
    # False (the default) answers a credit once it is durably stored (store and forward);
    # True answers only after the operator acknowledged it.
    answer_after_operator: bool = False
    # How long one call to the operator may take before it is an unknown outcome.
    call_timeout_s: float = 2.0
    # How long a provider's request may spend retrying the operator before we answer it.
    debit_deadline_s: float = 5.0
    credit_deadline_s: float = 5.0
    # When the outbox takes over an operation whose request died with its node.
    recovery_after_s: float = 30.0
    # Responsible-gaming defaults for players with no limits of their own (None: no limit).
    loss_limit_minor: Mapping[str, int] = field(default_factory=dict)
    loss_period: str = "day"
    session_limit_s: int | None = None
    reality_check_s: int | None = None
    # A play-money ledger (an operator's demo): it risks no money, so no player limit or block applies.
    play_money: bool = False
