"""European roulette: one zero, every standard inside and outside bet, checked against the table layout."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from rng.games.base import GameResult, SimulationReport, check_bet
from rng.games.par import ParSection, ParSheet, ParTable, frac, num, one_in, pct, prose
from rng.source import Source

NUMBERS = 36
COLUMNS = 3
BET_TYPES: tuple[str, ...] = (
    "straight", "split", "street", "corner", "six_line", "dozen", "column",
    "red", "black", "odd", "even", "low", "high",
)  # fmt: skip


def legal_bets(red: frozenset[int], zero_bets: bool) -> dict[str, tuple[frozenset[int], ...]]:
    """Every legal set of numbers for each bet type, from the layout (rows of three, 1..36, and 0)."""
    rows = [frozenset(range(r * COLUMNS + 1, r * COLUMNS + 4)) for r in range(NUMBERS // COLUMNS)]
    numbers = range(1, NUMBERS + 1)
    splits = [frozenset({n, n + 1}) for n in numbers if n % COLUMNS]
    splits += [frozenset({n, n + COLUMNS}) for n in numbers if n + COLUMNS <= NUMBERS]
    corners = [frozenset({n, n + 1, n + 3, n + 4}) for n in numbers if n % COLUMNS and n + 4 <= NUMBERS]
    streets = list(rows)
    if zero_bets:
        splits += [frozenset({0, n}) for n in (1, 2, 3)]
        streets += [frozenset({0, 1, 2}), frozenset({0, 2, 3})]
        corners += [frozenset({0, 1, 2, 3})]
    return {
        "straight": tuple(frozenset({n}) for n in range(NUMBERS + 1)),
        "split": tuple(splits),
        "street": tuple(streets),
        "corner": tuple(corners),
        "six_line": tuple(rows[r] | rows[r + 1] for r in range(len(rows) - 1)),
        "dozen": tuple(frozenset(range(d * 12 + 1, d * 12 + 13)) for d in range(3)),
        "column": tuple(frozenset(n for n in numbers if n % COLUMNS == c % COLUMNS) for c in (1, 2, 3)),
        "red": (red,),
        "black": (frozenset(numbers) - red,),
        "odd": (frozenset(n for n in numbers if n % 2),),
        "even": (frozenset(n for n in numbers if not n % 2),),
        "low": (frozenset(range(1, 19)),),
        "high": (frozenset(range(19, 37)),),
    }


@dataclass(frozen=True)
class Bet:
    """One validated bet of a round."""

    kind: str
    numbers: frozenset[int]
    amount_minor: int


class RouletteGame:
    """European single-zero roulette as a Game."""

    name = "roulette"

    def __init__(
        self, title: str, red: frozenset[int], payouts: Mapping[str, int], zero_bets: bool, max_bets: int
    ) -> None:
        self.title = title
        self.red = red
        self.payouts = dict(payouts)
        self.legal = legal_bets(red, zero_bets)
        self.max_bets = max_bets
        self._lookup = {kind: set(sets) for kind, sets in self.legal.items()}

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> RouletteGame:
        """Build the game from its TOML configuration."""
        if int(raw["pockets"]) != NUMBERS + 1:
            raise ValueError("European roulette has 37 pockets")
        red = frozenset(int(n) for n in raw["red"])
        if len(red) != NUMBERS // 2 or not red <= set(range(1, NUMBERS + 1)):
            raise ValueError("red must be 18 distinct numbers in 1..36")
        payouts = {str(k): int(v) for k, v in raw["payouts"].items()}
        if set(payouts) != set(BET_TYPES):
            raise ValueError(f"payouts must be given for exactly: {', '.join(BET_TYPES)}")
        return cls(str(raw["title"]), red, payouts, bool(raw["zero_bets"]), int(raw["max_bets_per_round"]))

    def parse(self, bet_minor: int, params: Mapping[str, Any]) -> list[Bet]:
        """Validate the round's bets and return them; raise ValueError saying which bet is wrong."""
        check_bet(bet_minor)
        if set(params) - {"bets"}:
            raise ValueError(f"unknown roulette parameters: {sorted(set(params) - {'bets'})}")
        raw_bets = params.get("bets")
        if not isinstance(raw_bets, list) or not raw_bets:
            raise ValueError("bets must be a non-empty list")
        if len(raw_bets) > self.max_bets:
            raise ValueError(f"at most {self.max_bets} bets per round, got {len(raw_bets)}")
        bets = [self._parse_bet(index, raw) for index, raw in enumerate(raw_bets)]
        staked = sum(bet.amount_minor for bet in bets)
        if staked != bet_minor:
            raise ValueError(f"bet_minor {bet_minor} must equal the sum of the bets' amounts, {staked}")
        return bets

    def _parse_bet(self, index: int, raw: object) -> Bet:
        """Check one bet: a known type, a legal set of numbers for it, a positive amount."""
        if not isinstance(raw, Mapping):
            # The Game protocol reports every unplayable bet as ValueError, wrong types included.
            raise ValueError(f"bet {index}: must be an object with type, numbers and amount_minor")  # noqa: TRY004
        extra = set(raw) - {"type", "numbers", "amount_minor"}
        if extra:
            raise ValueError(f"bet {index}: unknown fields {sorted(extra)}")
        kind = raw.get("type")
        if kind not in self.legal:
            raise ValueError(f"bet {index}: unknown type {kind!r}; known: {', '.join(BET_TYPES)}")
        amount = raw.get("amount_minor")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise ValueError(f"bet {index}: amount_minor must be a positive integer, got {amount!r}")
        sets = self.legal[kind]
        listed = raw.get("numbers")
        if listed is None and len(sets) == 1:
            return Bet(kind, sets[0], amount)
        if not isinstance(listed, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in listed
        ):
            raise ValueError(f"bet {index}: numbers must be a list of integers for a {kind} bet")
        numbers = frozenset(listed)
        if len(numbers) != len(listed) or numbers not in self._lookup[kind]:
            raise ValueError(f"bet {index}: {sorted(listed)} is not a legal {kind} bet")
        return Bet(kind, numbers, amount)

    def validate(self, bet_minor: int, params: Mapping[str, Any]) -> None:
        """Raise ValueError if the bets are not a legal, fully staked layout."""
        self.parse(bet_minor, params)

    def colour(self, pocket: int) -> str:
        """Return the pocket's colour."""
        if pocket == 0:
            return "green"
        return "red" if pocket in self.red else "black"

    def play(self, source: Source, bet_minor: int, params: Mapping[str, Any]) -> GameResult:
        """Draw one pocket of 37 and settle every bet on it."""
        bets = self.parse(bet_minor, params)
        pocket = source.randbelow(NUMBERS + 1)
        wins = [
            bet.amount_minor * (self.payouts[bet.kind] + 1) if pocket in bet.numbers else 0 for bet in bets
        ]
        settled = [
            {
                "type": bet.kind,
                "numbers": sorted(bet.numbers),
                "amount_minor": bet.amount_minor,
                "win_minor": win,
            }
            for bet, win in zip(bets, wins, strict=True)
        ]
        win = sum(wins)
        return GameResult(win, {"pocket": pocket, "colour": self.colour(pocket), "bets": settled})

    def bet_rtp(self, kind: str, numbers: frozenset[int]) -> tuple[Fraction, Fraction]:
        """Exact mean and second moment of the return per unit stake, by enumerating the 37 pockets."""
        pays = [self.payouts[kind] + 1 if pocket in numbers else 0 for pocket in range(NUMBERS + 1)]
        return Fraction(sum(pays), NUMBERS + 1), Fraction(sum(p * p for p in pays), NUMBERS + 1)

    def par_sheet(self) -> ParSheet:
        """Return the exact PAR sheet: every legal bet enumerated over the 37 pockets."""
        rows = []
        rtps = set()
        for kind in BET_TYPES:
            moments = {self.bet_rtp(kind, numbers) for numbers in self.legal[kind]}
            if len(moments) != 1:
                raise RuntimeError(f"{kind} bets do not all have the same return")
            ((mean, second),) = moments
            rtps.add(mean)
            size = len(self.legal[kind][0])
            p = Fraction(size, NUMBERS + 1)
            rows.append(
                (
                    kind,
                    str(len(self.legal[kind])),
                    str(size),
                    f"{self.payouts[kind]} to 1",
                    f"{frac(p)} ({pct(p, 4)})",
                    frac(mean),
                    pct(mean, 6),
                    f"{math.sqrt(second - mean * mean):.4f}",
                )
            )
        if len(rtps) != 1:
            raise RuntimeError("bet types have different RTPs")
        (rtp,) = rtps
        mean, second = self.bet_rtp("straight", frozenset({17}))
        payout = self.payouts["straight"] + 1
        layouts = tuple(
            (kind, "; ".join("-".join(str(n) for n in sorted(s)) for s in self.legal[kind]))
            for kind in BET_TYPES
            if len(self.legal[kind]) > 1 and kind != "straight"
        )
        single = Fraction(1, NUMBERS + 1)
        return ParSheet(
            game="roulette",
            title=f"PAR sheet: {self.title}",
            rtp=rtp,
            variance=second - mean * mean,
            hit_frequency=Fraction(1, NUMBERS + 1),
            max_win=Fraction(payout),
            max_win_probability=f"{frac(single)} ({one_in(single)}), straight up",
            summary=(
                ("house edge", f"{pct(1 - rtp, 6)} = {frac(1 - rtp)}"),
                ("outcomes", "37 pockets (0..36), each 1/37"),
                ("legal bets", f"{sum(len(v) for v in self.legal.values())}"),
                (
                    "header figures",
                    "hit frequency, SD and maximum win are for a straight-up bet; every type below",
                ),
            ),
            sections=(
                ParSection(
                    "Bets",
                    (
                        prose(f"""A winning bet returns its stake plus stake x payout; a losing bet returns
                            nothing (no la partage or en prison: even-money bets lose on zero). Every legal
                            bet was enumerated over the 37 pockets: all bets of a type return the same, and
                            every type returns {frac(rtp)} = (payout + 1) x numbers / 37. Red:
                            {", ".join(str(n) for n in sorted(self.red))}."""),
                        ParTable(
                            (
                                "bet",
                                "legal bets",
                                "numbers",
                                "payout",
                                "P(win)",
                                "RTP",
                                "RTP %",
                                "SD per unit",
                            ),
                            tuple(rows),
                        ),
                        prose(f"""The largest win of a round is {num(payout)} x the stake (a straight-up
                            bet wins); a round's return per unit staked can never exceed that, whatever the
                            layout, so no cap is needed and none changes the RTP."""),
                    ),
                ),
                ParSection("Legal inside bets and groups", (ParTable(("bet", "number sets"), layouts),)),
            ),
        )

    def simulate(self, rounds: int, seed: int) -> SimulationReport:
        """Simulate one unit on every legal bet in rotation (numpy, exempt from the RNG rule)."""
        from rng.games.simulate import FixedBet, simulate_table  # noqa: PLC0415

        bets = [
            FixedBet(kind, Fraction(self.payouts[kind] + 1), np.isin(np.arange(NUMBERS + 1), sorted(numbers)))
            for kind in BET_TYPES
            for numbers in self.legal[kind]
        ]
        return simulate_table(
            "roulette", NUMBERS + 1, bets, rounds, seed,
            notes=((f"Round i stakes one unit on legal bet i mod {len(bets)}: every legal bet equally often; "
                   "SD is the exact one of that mix."),),
        )  # fmt: skip
