"""Dice: a roll uniform over 0..9999, under or over a whole-percent target, paying by a house edge."""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from rng.games.base import GameResult, SimulationReport, check_bet
from rng.games.par import ParSection, ParSheet, ParTable, frac, num, one_in, pct, prose
from rng.source import Source

DIRECTIONS: tuple[str, ...] = ("under", "over")
PERCENT = 100


class DiceGame:
    """Roll-under/over dice as a Game; payouts are floor(bet x multiplier) minor units."""

    name = "dice"

    def __init__(
        self,
        title: str,
        outcomes: int,
        house_edge: Fraction,
        min_target: int,
        max_target: int,
        reference_bet: int,
    ) -> None:
        if outcomes % PERCENT or not 0 < min_target <= max_target < PERCENT:
            raise ValueError("outcomes must be a multiple of 100 and targets within 1..99")
        if not 0 <= house_edge < 1:
            raise ValueError("the house edge must be in [0, 1)")
        self.title = title
        self.outcomes = outcomes
        self.house_edge = house_edge
        self.min_target = min_target
        self.max_target = max_target
        self.reference_bet = reference_bet
        self._wins = {
            (t, d): int(np.count_nonzero(self.winning_mask(t, d)))
            for t in range(min_target, max_target + 1)
            for d in DIRECTIONS
        }

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> DiceGame:
        """Build the game from its TOML configuration."""
        return cls(
            str(raw["title"]),
            int(raw["outcomes"]),
            Fraction(str(raw["house_edge"])),
            int(raw["min_target"]),
            int(raw["max_target"]),
            int(raw["reference_bet_minor"]),
        )

    @property
    def per_percent(self) -> int:
        """Rolls per whole percent (100 for 0..9999)."""
        return self.outcomes // PERCENT

    def wins(self, roll: int, target: int, direction: str) -> bool:
        """Whether a roll wins: under T is below T.00, over T is T.00 or more."""
        threshold = target * self.per_percent
        return roll < threshold if direction == "under" else roll >= threshold

    def winning_mask(self, target: int, direction: str) -> npt.NDArray[np.bool_]:
        """Which of all the rolls win, enumerated with the same rule as ``wins``."""
        rolls = np.arange(self.outcomes)
        threshold = target * self.per_percent
        return rolls < threshold if direction == "under" else rolls >= threshold

    def winning_outcomes(self, target: int, direction: str) -> int:
        """Count the winning rolls (enumerated over every roll when the game is built)."""
        return self._wins[target, direction]

    def multiplier(self, target: int, direction: str) -> Fraction:
        """Exact multiplier (1 - edge) x outcomes / winning outcomes."""
        return (1 - self.house_edge) * Fraction(self.outcomes, self.winning_outcomes(target, direction))

    def payout(self, bet_minor: int, target: int, direction: str) -> int:
        """Return what a winning bet is paid: floor(bet x multiplier), stake included."""
        return math.floor(bet_minor * self.multiplier(target, direction))

    def rtp(self, bet_minor: int, target: int, direction: str) -> Fraction:
        """Exact RTP for this bet: payout x winning outcomes / (outcomes x bet)."""
        wins = self.winning_outcomes(target, direction)
        return Fraction(self.payout(bet_minor, target, direction) * wins, self.outcomes * bet_minor)

    def parse(self, bet_minor: int, params: Mapping[str, Any]) -> tuple[int, str]:
        """Validate and return (target, direction)."""
        check_bet(bet_minor)
        extra = set(params) - {"target", "direction"}
        if extra:
            raise ValueError(f"unknown dice parameters: {sorted(extra)}")
        target = params.get("target")
        if isinstance(target, bool) or not isinstance(target, int):
            # The Game protocol reports every unplayable bet as ValueError, wrong types included.
            raise ValueError(f"target must be a whole percent, got {target!r}")  # noqa: TRY004
        if not self.min_target <= target <= self.max_target:
            raise ValueError(f"target must be within {self.min_target}..{self.max_target}, got {target}")
        direction = params.get("direction")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'under' or 'over', got {direction!r}")
        return target, str(direction)

    def validate(self, bet_minor: int, params: Mapping[str, Any]) -> None:
        """Raise ValueError unless the target and direction are allowed."""
        self.parse(bet_minor, params)

    def play(self, source: Source, bet_minor: int, params: Mapping[str, Any]) -> GameResult:
        """Draw one roll of 10,000 and settle the bet."""
        target, direction = self.parse(bet_minor, params)
        roll = source.randbelow(self.outcomes)
        won = bool(self.wins(roll, target, direction))
        multiplier = self.multiplier(target, direction)
        state = {
            "roll": roll,
            "roll_display": f"{roll // self.per_percent}.{roll % self.per_percent:02d}",
            "target": target,
            "direction": direction,
            "chance": f"{self.winning_outcomes(target, direction) * PERCENT / self.outcomes:g}%",
            "multiplier": f"{multiplier.numerator}/{multiplier.denominator}",
            "multiplier_display": f"{float(multiplier):.4f}",
            "won": won,
        }
        return GameResult(self.payout(bet_minor, target, direction) if won else 0, state)

    def targets(self) -> list[tuple[int, str]]:
        """Every allowed (target, direction)."""
        return [(t, d) for t in range(self.min_target, self.max_target + 1) for d in DIRECTIONS]

    def par_sheet(self) -> ParSheet:
        """Return the exact PAR sheet: every allowed target enumerated over the 10,000 rolls."""
        ref = self.reference_bet
        rows = []
        for target in range(self.min_target, self.max_target + 1):
            cells = [str(target)]
            for direction in DIRECTIONS:
                wins = self.winning_outcomes(target, direction)
                multiplier = self.multiplier(target, direction)
                nominal = multiplier * Fraction(wins, self.outcomes)
                cells += [str(wins), f"{float(multiplier):.6f}", pct(nominal, 4),
                          pct(self.rtp(ref, target, direction), 4)]  # fmt: skip
            rows.append(tuple(cells))
        pairs = self.targets()
        by_ref = [self.rtp(ref, t, d) for t, d in pairs]
        nominal_rtp = 1 - self.house_edge
        best = max(pairs, key=lambda pair: self.multiplier(*pair))
        top = self.multiplier(*best)
        p_top = Fraction(self.winning_outcomes(*best), self.outcomes)
        even = (PERCENT // 2, "under")
        wins_even = Fraction(self.winning_outcomes(*even), self.outcomes)
        pay_even = Fraction(self.payout(ref, *even), ref)
        mean_even = pay_even * wins_even
        return ParSheet(
            game="dice",
            title=f"PAR sheet: {self.title}",
            rtp=nominal_rtp,
            variance=pay_even * pay_even * wins_even - mean_even * mean_even,
            hit_frequency=wins_even,
            max_win=top,
            max_win_probability=f"{frac(p_top)} ({one_in(p_top)}), {best[1]} {best[0]}",
            summary=(
                ("house edge", f"{frac(self.house_edge)} = {pct(self.house_edge, 2)}"),
                ("outcomes", f"rolls 0..{self.outcomes - 1}, each 1/{self.outcomes:,}, shown as 0.00..99.99"),
                ("targets", f"{self.min_target}..{self.max_target}, under or over"),
                (
                    f"RTP at a bet of {ref} minor units",
                    f"{pct(min(by_ref), 4)} .. {pct(max(by_ref), 4)} by target",
                ),
                (
                    "header figures",
                    prose(f"""RTP: before rounding (every target); hit frequency and SD: under {even[0]} at
                        {ref} minor units; maximum win: {best[1]} {best[0]}"""),
                ),
            ),
            sections=(
                ParSection(
                    "Rules and rounding",
                    (
                        prose(f"""A roll r is uniform over 0..{self.outcomes - 1}. 'Under T' wins when
                            r < {self.per_percent}·T (T·{self.per_percent} winning rolls), 'over T' when
                            r ≥ {self.per_percent}·T ({self.outcomes} - T·{self.per_percent}), so under and
                            over the same target share out the rolls. The multiplier is
                            (1 - edge) x {self.outcomes:,} / winning rolls, an exact fraction, so before
                            rounding every target returns exactly {frac(nominal_rtp)} =
                            {pct(nominal_rtp, 4)}."""),
                        prose(f"""Payouts are whole minor units: a win pays floor(bet x multiplier), stake
                            included. The exact RTP of a bet is floor(bet x multiplier) x winning rolls /
                            ({self.outcomes:,} x bet): it is 1 - edge when bet x multiplier is whole, and
                            rounding down costs less than one minor unit per win, so
                            RTP(bet) > (1 - edge) - P(win) / bet. The 'RTP at {ref}' columns give it exactly
                            for a bet of {ref} minor units."""),
                        prose(f"""The largest win is {num(top)} x the bet ({best[1]} {best[0]}, probability
                            {frac(p_top)}); no cap applies."""),
                    ),
                ),
                ParSection(
                    "Targets",
                    (
                        ParTable(
                            (
                                "target",
                                "under: wins",
                                "multiplier",
                                "RTP",
                                f"RTP at {ref}",
                                "over: wins",
                                "multiplier",
                                "RTP",
                                f"RTP at {ref}",
                            ),
                            tuple(rows),
                        ),
                    ),
                ),
            ),
        )

    def simulate(self, rounds: int, seed: int) -> SimulationReport:
        """Simulate every allowed target in turn at the reference bet (numpy, exempt from the RNG rule)."""
        from rng.games.simulate import FixedBet, simulate_table  # noqa: PLC0415

        ref = self.reference_bet
        bets = [
            FixedBet(
                direction,
                Fraction(self.payout(ref, target, direction), ref),
                self.winning_mask(target, direction),
            )
            for target, direction in self.targets()
        ]
        return simulate_table(
            "dice", self.outcomes, bets, rounds, seed,
            notes=(prose(f"""Round i plays allowed (target, direction) number i mod {len(bets)} at a bet of
                {ref} minor units; the exact RTP and SD are those of that mix, rounding included."""),),
        )  # fmt: skip
