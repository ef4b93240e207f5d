"""Benchmark the games' maths: simulated rounds per second per game, and the time of the exact slot RTP.

Run from the repository root:

    python load/bench_games.py --rounds 10000000 --repeat 3 --out docs/benchmarks.md

Everything runs in this one process on one core (numpy does these element-wise operations on a
single thread). Shared machines are noisy, and noise only ever adds time, so each figure is the
fastest of --repeat runs, and is also given as a ratio to a baseline measured in the same run:
drawing the same number of uniform integers with numpy (the floor of any simulator) and one pass of
numpy addition over as many elements as the slot has stop combinations (the floor of touching every
combination once).
Simulators use numpy.random; they are exempt from the RNG rule, as the games' own docs say.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rng.games import load_game
from rng.games.simulate import SlotTables, slot_spins
from rng.games.slot import SlotGame
from rng.games.slot_exact import slot_maths
from rng.games.slot_par import slot_par_sheet

BEGIN, END = "<!-- games:begin -->", "<!-- games:end -->"
CHUNK = 1 << 18
TARGET_EXACT_S = 10.0
TARGET_RATE = 1_000_000


def best_time(action: Callable[[], object], repeat: int) -> float:
    """Shortest wall time of ``repeat`` runs of ``action``."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def draw_floor(rounds: int, draws_per_round: int, outcomes: int) -> None:
    """Draw ``draws_per_round`` uniform integers per round with numpy, in the simulators' chunks."""
    rng = np.random.default_rng(1)
    for start in range(0, rounds, CHUNK):
        n = min(CHUNK, rounds - start)
        for _ in range(draws_per_round):
            rng.integers(0, outcomes, n, dtype=np.int64)


def slot_base_spins(game: SlotGame, tables: SlotTables, rounds: int) -> None:
    """Evaluate ``rounds`` base-game spins (draws, windows, 20 lines, scatters), no feature."""
    rng = np.random.default_rng(2)
    for start in range(0, rounds, CHUNK):
        slot_spins(game.config, tables, rng, min(CHUNK, rounds - start))


def simulated_seconds(name: str, rounds: int, repeat: int) -> float:
    """Shortest time of the game's simulator loop (the slot's exact maths, computed first, excluded)."""
    game = load_game(name)
    return min(game.simulate(rounds, seed + 1).elapsed_s for seed in range(repeat))


def measure(rounds: int, repeat: int) -> dict[str, float]:
    """Run every measurement; seconds, keyed by name."""
    slot = load_game("slot")
    assert isinstance(slot, SlotGame)
    combinations = int(np.prod([len(s) for s in slot.config.strips]))
    ones = np.ones(combinations, dtype=np.int64)
    out = np.empty_like(ones)
    # Built once, outside the timing, as the simulator builds its tables before its clock starts.
    tables = SlotTables.build(slot.config)
    return {
        "floor_slot": best_time(lambda: draw_floor(rounds, slot.config.reels, 32), repeat),
        "floor_one": best_time(lambda: draw_floor(rounds, 1, 37), repeat),
        "slot_base": best_time(lambda: slot_base_spins(slot, tables, rounds), repeat),
        "slot_round": simulated_seconds("slot", rounds, repeat),
        "roulette": simulated_seconds("roulette", rounds, repeat),
        "dice": simulated_seconds("dice", rounds, repeat),
        "exact_slot": best_time(lambda: slot_maths(slot.config), repeat),
        "par_slot": best_time(lambda: slot_par_sheet(slot.config), repeat),
        "floor_pass": best_time(lambda: np.add(ones, ones, out=out), repeat),
        "combinations": float(combinations),
    }


def commit() -> str:
    """Return the repository's short HEAD commit, or 'unknown'."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 -- git from PATH, as a developer runs it
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def render(figures: dict[str, float], rounds: int, repeat: int) -> str:
    """Return the Markdown block that goes between the markers."""
    rate = {
        k: rounds / figures[k]
        for k in ("floor_slot", "floor_one", "slot_base", "slot_round", "roulette", "dice")
    }
    rows = [
        ("slot, base game only (5 draws, 20 lines, scatters)", "slot_base", "floor_slot"),
        ("slot, full rounds (free spins, retriggers, cap)", "slot_round", "floor_slot"),
        ("roulette (every legal bet in turn)", "roulette", "floor_one"),
        ("dice (every target and direction in turn)", "dice", "floor_one"),
    ]
    table = [
        f"| {name} | {rate[key]:,.0f} | {figures[floor] / figures[key]:.2f} |" for name, key, floor in rows
    ]
    cells = int(figures["combinations"])
    exact, par, floor_pass = figures["exact_slot"], figures["par_slot"], figures["floor_pass"]
    slowest = min(rate["slot_base"], rate["slot_round"])
    return f"""Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{commit()}` with

```
python load/bench_games.py --rounds {rounds} --repeat {repeat} --out docs/benchmarks.md
```

- machine: `nproc` {os.cpu_count()}, {platform.machine()}, {platform.system()} {platform.release()}
- Python {platform.python_version()}, numpy {np.__version__}; one process, one core; fastest of {repeat} runs

Simulators, {rounds:,} rounds each. Baselines from the same run: drawing the same rounds' uniform
integers with numpy alone ({rate["floor_slot"]:,.0f} rounds/s for the slot's 5 reels,
{rate["floor_one"]:,.0f}/s for one draw per round). 'Share of the floor' is baseline time / game time.

| simulator | rounds/s | share of the draw floor |
|---|---:|---:|
{chr(10).join(table)}

Exact maths of the slot, over every one of its {cells:,} stop combinations (grouped as
`rng/games/slot_exact.py` explains):

| computation | seconds | x one numpy pass over as many elements |
|---|---:|---:|
| exact RTP, hit frequency, variance and cap bounds (`slot_maths`) | {exact:.2f} | {exact / floor_pass:.0f} |
| the whole PAR sheet (`croupier games par slot`, no simulation) | {par:.2f} | {par / floor_pass:.0f} |
| baseline: `np.add` over {cells:,} int64 | {floor_pass:.3f} | 1 |

Targets: exact slot RTP under 10 s ({exact:.2f} s, {"met" if exact < TARGET_EXACT_S else "NOT met"});
simulation at 1M spins/s per core or more ({rate["slot_base"]:,.0f} base-game spins/s,
{rate["slot_round"]:,.0f} full rounds/s: {"met" if slowest >= TARGET_RATE else "NOT met"})."""


def write(path: Path, block: str) -> None:
    """Replace the text between the markers, or append a section with them if the file has none."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    wrapped = f"{BEGIN}\n{block}\n{END}"
    if BEGIN in text and END in text:
        text = re.sub(
            re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: wrapped, text, count=1, flags=re.DOTALL
        )
    else:
        text = text.rstrip("\n") + "\n\n## In-house games: simulation and exact maths\n\n" + wrapped + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (or write) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default="", help="rewrite the games block of this Markdown file")
    args = parser.parse_args(argv)
    block = render(measure(args.rounds, args.repeat), args.rounds, args.repeat)
    print(block)
    if args.out:
        write(Path(args.out), block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
