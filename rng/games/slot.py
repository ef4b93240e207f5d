"""The video slot: reels, paylines, wild, scatter, free spins that retrigger, and a per-round win cap."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rng.games.base import GameResult, SimulationReport, check_bet
from rng.games.par import ParSheet
from rng.source import Source

MIN_RUN = 3


@dataclass(frozen=True)
class SlotConfig:
    """The slot's maths as data; symbols are coded paying symbols first (by rank), then wild, then scatter."""

    title: str
    names: tuple[str, ...]
    pays: tuple[tuple[int, ...], ...]
    scatter_pays: tuple[int, ...]
    awards: tuple[int, ...]
    multiplier: int
    strips: tuple[tuple[int, ...], ...]
    paylines: tuple[tuple[int, ...], ...]
    rows: int
    max_win: int

    @property
    def paying(self) -> int:
        """Number of paying symbols (codes 0 .. paying-1, highest rank first)."""
        return len(self.pays)

    @property
    def wild(self) -> int:
        """Code of the wild."""
        return self.paying

    @property
    def scatter(self) -> int:
        """Code of the scatter."""
        return self.paying + 1

    @property
    def symbols(self) -> int:
        """Number of distinct symbols."""
        return self.paying + 2

    @property
    def reels(self) -> int:
        """Number of reels."""
        return len(self.strips)

    @property
    def lines(self) -> int:
        """Number of paylines."""
        return len(self.paylines)

    def scatter_pay(self, count: int) -> int:
        """Scatter pay in total bets for ``count`` scatters anywhere (larger counts take the last entry)."""
        return self.scatter_pays[min(count, len(self.scatter_pays) - 1)]

    def award(self, count: int) -> int:
        """Free spins awarded for ``count`` scatters anywhere."""
        return self.awards[min(count, len(self.awards) - 1)]

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> SlotConfig:
        """Parse and check the TOML configuration."""
        symbols = raw["symbols"]
        paying = [str(name) for name in symbols["paying"]]
        names = (*paying, str(symbols["wild"]), str(symbols["scatter"]))
        if len(set(names)) != len(names):
            raise ValueError("slot symbols must have distinct names")
        code = {name: index for index, name in enumerate(names)}
        strips = tuple(tuple(code[str(name)] for name in reel["strip"]) for reel in raw["reels"])
        reels = len(strips)
        rows = int(raw["rows"])
        pays = []
        for name in paying:
            row = [int(x) for x in raw["paytable"][name]]
            if len(row) != reels - MIN_RUN + 1:
                raise ValueError(f"paytable for {name} must list pays for {MIN_RUN}..{reels} of a kind")
            pays.append((0,) * MIN_RUN + tuple(row))
        scatter = raw["scatter"]
        config = cls(
            title=str(raw["title"]),
            names=names,
            pays=tuple(pays),
            scatter_pays=tuple(int(x) for x in scatter["pays"]),
            awards=tuple(int(x) for x in scatter["free_spins"]),
            multiplier=int(raw["free_spins"]["multiplier"]),
            strips=strips,
            paylines=tuple(tuple(int(r) for r in line) for line in raw["paylines"]),
            rows=rows,
            max_win=int(raw["max_win"]),
        )
        config.check()
        return config

    def check(self) -> None:
        """Raise ValueError if the configuration cannot be played or analysed as documented."""
        if self.reels < MIN_RUN or self.rows < 1:
            raise ValueError("a slot needs at least 3 reels and 1 row")
        if any(len(strip) < self.rows for strip in self.strips):
            raise ValueError("every strip must be at least as long as the window")
        if not self.paylines or len(set(self.paylines)) != len(self.paylines):
            raise ValueError("paylines must be distinct and there must be at least one")
        for line in self.paylines:
            if len(line) != self.reels or not all(0 <= r < self.rows for r in line):
                raise ValueError(f"payline {line} must give one row in 0..{self.rows - 1} per reel")
        if self.scatter_pays[0] or self.awards[0] or any(x < 0 for x in self.scatter_pays + self.awards):
            raise ValueError("scatter pays and awards must be >= 0 and nothing for zero scatters")
        # Hit frequency is P(base spin pays) only if every count that awards free spins also pays.
        for count in range(max(len(self.awards), len(self.scatter_pays))):
            if self.award(count) and not self.scatter_pay(count):
                raise ValueError(f"{count} scatters award free spins, so they must also pay")
        if self.multiplier < 1 or self.max_win < 1:
            raise ValueError("the free-spin multiplier and the maximum win must be positive")


@dataclass(frozen=True)
class LineWin:
    """One paying line: which line (0-based), symbol code, run length and pay in line bets."""

    line: int
    symbol: int
    count: int
    pay: int


@dataclass(frozen=True)
class Spin:
    """One spin's stops and what they show and pay (line pays in line bets)."""

    stops: tuple[int, ...]
    window: tuple[tuple[int, ...], ...]
    line_wins: tuple[LineWin, ...]
    scatters: int

    def pay_units(self, config: SlotConfig) -> int:
        """Total pay of the spin in line-bet units (a scatter pay of 1 total bet is ``lines`` units)."""
        return sum(w.pay for w in self.line_wins) + config.scatter_pay(self.scatters) * config.lines


def evaluate_line(config: SlotConfig, symbols: Sequence[int]) -> tuple[int, int, int]:
    """Return (symbol, count, pay) of the best left-to-right run; the wild stands for any paying symbol.

    Ties go to the higher-ranked symbol; a line that pays nothing returns (-1, 0, 0).
    """
    best = (-1, 0, 0)
    for symbol in range(config.paying):
        count = 0
        for shown in symbols:
            if shown not in {symbol, config.wild}:
                break
            count += 1
        pay = config.pays[symbol][count]
        if pay > best[2]:
            best = (symbol, count, pay)
    return best


def window_at(config: SlotConfig, stops: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Return the symbols shown for these stops, as rows: row r of reel i is strip position stop + r."""
    return tuple(
        tuple(strip[(stop + row) % len(strip)] for strip, stop in zip(config.strips, stops, strict=True))
        for row in range(config.rows)
    )


def evaluate_spin(config: SlotConfig, stops: Sequence[int]) -> Spin:
    """Evaluate the window shown at these stops."""
    window = window_at(config, stops)
    wins = []
    for index, line in enumerate(config.paylines):
        symbol, count, pay = evaluate_line(config, [window[row][reel] for reel, row in enumerate(line)])
        if pay:
            wins.append(LineWin(index, symbol, count, pay))
    scatters = sum(row.count(config.scatter) for row in window)
    return Spin(tuple(stops), window, tuple(wins), scatters)


def line_table(
    config: SlotConfig,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8], npt.NDArray[np.int8]]:
    """Pay, symbol and count of every possible line, indexed by sum(symbol_i * symbols**i), vectorised."""
    base = config.symbols
    codes = np.arange(base**config.reels, dtype=np.int64)
    digits = np.stack([(codes // base**i) % base for i in range(config.reels)], axis=1)
    best_pay = np.zeros(codes.size, dtype=np.int64)
    best_symbol = np.full(codes.size, -1, dtype=np.int8)
    best_count = np.zeros(codes.size, dtype=np.int8)
    for symbol in range(config.paying):
        matches = (digits == symbol) | (digits == config.wild)
        count = np.cumprod(matches, axis=1).sum(axis=1)
        pay = np.asarray(config.pays[symbol], dtype=np.int64)[count]
        better = pay > best_pay
        best_pay[better] = pay[better]
        best_symbol[better] = symbol
        best_count[better] = count[better]
    return best_pay, best_symbol, best_count


class SlotGame:
    """The slot as a Game: plays on a Source, gives its exact PAR sheet and simulates."""

    name = "slot"

    def __init__(self, config: SlotConfig) -> None:
        self.config = config

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> SlotGame:
        """Build the game from its TOML configuration."""
        return cls(SlotConfig.from_config(raw))

    def validate(self, bet_minor: int, params: Mapping[str, Any]) -> None:
        """Check that the total bet is a positive multiple of the lines and that no parameters are given."""
        check_bet(bet_minor)
        if bet_minor % self.config.lines:
            lines = self.config.lines
            raise ValueError(
                f"bet_minor {bet_minor} must be divisible by the {lines} lines (one line bet each)"
            )
        if params:
            raise ValueError(f"the slot takes no parameters, got {sorted(params)}")

    def spin(self, source: Source) -> Spin:
        """Draw one stop per reel, uniformly over the whole strip, and evaluate what they show."""
        return evaluate_spin(self.config, [source.randbelow(len(strip)) for strip in self.config.strips])

    def play(self, source: Source, bet_minor: int, params: Mapping[str, Any]) -> GameResult:
        """Play a base spin and any free spins it triggers; the round's win is capped at max_win x bet."""
        self.validate(bet_minor, params)
        config = self.config
        line_bet = bet_minor // config.lines
        cap = config.max_win * bet_minor
        base = self.spin(source)
        total = base.pay_units(config) * line_bet
        left = config.award(base.scatters)
        awarded = left
        free_spins = []
        # The feature ends once the cap is reached: nothing more can be paid, so nothing more is drawn.
        while left and total < cap:
            left -= 1
            spin = self.spin(source)
            pay = spin.pay_units(config) * line_bet * config.multiplier
            total += pay
            more = config.award(spin.scatters)
            left += more
            awarded += more
            free_spins.append(self._spin_state(spin, line_bet, config.multiplier) | {"awarded": more})
        win = min(total, cap)
        state: dict[str, Any] = {
            "bet_minor": bet_minor,
            "line_bet_minor": line_bet,
            "base": self._spin_state(base, line_bet, 1) | {"awarded": config.award(base.scatters)},
            "free_spins": free_spins,
            "free_spins_awarded": awarded,
            "free_spins_played": len(free_spins),
            "multiplier": config.multiplier,
            "win_uncapped_minor": total,
            "max_win_minor": cap,
            "capped": total >= cap,
        }
        return GameResult(win_minor=win, state=state)

    def _spin_state(self, spin: Spin, line_bet: int, multiplier: int) -> dict[str, Any]:
        """Return a JSON-serialisable view of one spin, with money in minor units."""
        names = self.config.names
        scatter_win = self.config.scatter_pay(spin.scatters) * self.config.lines * line_bet * multiplier
        return {
            "stops": list(spin.stops),
            "window": [[names[s] for s in row] for row in spin.window],
            "line_wins": [
                {
                    "line": w.line + 1,
                    "symbol": names[w.symbol],
                    "count": w.count,
                    "win_minor": w.pay * line_bet * multiplier,
                }
                for w in spin.line_wins
            ],
            "scatters": spin.scatters,
            "scatter_win_minor": scatter_win,
            "win_minor": spin.pay_units(self.config) * line_bet * multiplier,
        }

    def par_sheet(self) -> ParSheet:
        """Return the exact PAR sheet."""
        from rng.games.slot_par import slot_par_sheet  # noqa: PLC0415

        return slot_par_sheet(self.config)

    def simulate(self, rounds: int, seed: int) -> SimulationReport:
        """Simulate ``rounds`` rounds with numpy (exempt from the RNG rule) beside the exact figures."""
        from rng.games.simulate import simulate_slot  # noqa: PLC0415

        return simulate_slot(self.config, rounds, seed)
