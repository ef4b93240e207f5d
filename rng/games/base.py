"""What every in-house game provides: play on a Source, its exact PAR sheet, and a vectorised simulator."""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

from rng.games.par import ParSheet
from rng.source import Source

GAME_NAMES: tuple[str, ...] = ("slot", "roulette", "dice")

# Two-sided 99% normal quantile of the simulation check.
Z99 = 2.576

CONFIG_ENV = "CROUPIER_GAMES_CONFIG"


@dataclass(frozen=True)
class GameResult:
    """The outcome of one round: what is credited and everything needed to show and recall it."""

    win_minor: int
    state: dict[str, Any]


@dataclass(frozen=True)
class SimulationReport:
    """Simulated figures of many rounds beside the exact ones, with the 99% interval of the RTP."""

    game: str
    rounds: int
    seed: int
    staked: int
    won: int
    exact_rtp: Fraction
    sigma: float
    elapsed_s: float
    figures: tuple[tuple[str, str, str], ...] = ()
    notes: tuple[str, ...] = ()
    breakdown: tuple[tuple[str, ...], ...] = field(default=())
    breakdown_headers: tuple[str, ...] = ()

    @property
    def rtp(self) -> float:
        """The simulated return to player."""
        return self.won / self.staked

    @property
    def half_width_99(self) -> float:
        """Half-width of the 99% interval of the RTP over this many rounds (z = 2.576)."""
        return Z99 * self.sigma / math.sqrt(self.rounds)

    @property
    def within_99(self) -> bool:
        """Whether the simulated RTP lies within the 99% interval of the exact RTP."""
        return abs(self.rtp - float(self.exact_rtp)) <= self.half_width_99

    def to_markdown(self) -> str:
        """Render the report as Markdown."""
        exact = float(self.exact_rtp)
        lines = [
            (
                f"Simulated {self.rounds:,} rounds of `{self.game}` with seed {self.seed} "
                f"in {self.elapsed_s:.2f} s ({self.rounds / max(self.elapsed_s, 1e-9):,.0f} rounds/s)."
            ),
            "",
            "| figure | simulated | exact |",
            "|---|---:|---:|",
            f"| RTP | {self.rtp:.6%} | {exact:.6%} |",
            (
                f"| 99% interval of the RTP (exact ± 2.576·SD/√N) |  | "
                f"[{exact - self.half_width_99:.6%}, {exact + self.half_width_99:.6%}] |"
            ),
        ]
        lines += [f"| {name} | {sim} | {ex} |" for name, sim, ex in self.figures]
        verdict = "within" if self.within_99 else "OUTSIDE"
        z = (self.rtp - exact) / (self.sigma / math.sqrt(self.rounds))
        lines += ["", f"Verdict: the simulated RTP is **{verdict}** the 99% interval (z = {z:+.3f})."]
        if self.breakdown:
            lines += ["", "| " + " | ".join(self.breakdown_headers) + " |"]
            lines.append("|" + "|".join(["---"] + ["---:"] * (len(self.breakdown_headers) - 1)) + "|")
            lines += ["| " + " | ".join(row) + " |" for row in self.breakdown]
        if self.notes:
            lines += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines) + "\n"


class Game(Protocol):
    """An in-house game: the same shape for the slot, roulette and dice."""

    name: str

    def validate(self, bet_minor: int, params: Mapping[str, Any]) -> None:
        """Raise ValueError with a clear message if the bet or its parameters are not playable."""
        ...

    def play(self, source: Source, bet_minor: int, params: Mapping[str, Any]) -> GameResult:
        """Play one round, drawing only through ``source.randbelow``."""
        ...

    def par_sheet(self) -> ParSheet:
        """Return the exact maths of the game."""
        ...

    def simulate(self, rounds: int, seed: int) -> SimulationReport:
        """Simulate many rounds with numpy and compare them with the exact figures."""
        ...


def config_dir() -> Path:
    """Return the directory holding the games' TOML files."""
    chosen = os.environ.get(CONFIG_ENV)
    if chosen:
        return Path(chosen)
    local = Path("config/games")
    if local.is_dir():
        return local
    # An editable install or a checkout: the repository's config beside the package.
    return Path(__file__).resolve().parents[2] / "config" / "games"


def read_config(name: str, directory: Path | None = None) -> dict[str, Any]:
    """Read ``<name>.toml`` from the games' configuration directory."""
    path = (directory or config_dir()) / f"{name}.toml"
    with path.open("rb") as handle:
        return tomllib.load(handle)


def load_game(name: str, directory: Path | None = None) -> Game:
    """Build a game from its configuration (the maths as data)."""
    if name not in GAME_NAMES:
        raise ValueError(f"unknown game {name!r}; known: {', '.join(GAME_NAMES)}")
    raw = read_config(name, directory)
    # Imported here because each game module imports this one for GameResult.
    if name == "slot":
        from rng.games.slot import SlotGame  # noqa: PLC0415

        return SlotGame.from_config(raw)
    if name == "roulette":
        from rng.games.roulette import RouletteGame  # noqa: PLC0415

        return RouletteGame.from_config(raw)
    from rng.games.dice import DiceGame  # noqa: PLC0415

    return DiceGame.from_config(raw)


def check_bet(bet_minor: object) -> int:
    """Return the bet if it is a positive integer number of minor units, else raise ValueError."""
    if isinstance(bet_minor, bool) or not isinstance(bet_minor, int):
        # The Game protocol reports every unplayable bet as ValueError, wrong types included.
        raise ValueError(f"bet_minor must be an integer number of minor units, got {bet_minor!r}")  # noqa: TRY004
    if bet_minor < 1:
        raise ValueError(f"bet_minor must be positive, got {bet_minor}")
    return bet_minor
