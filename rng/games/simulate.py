"""Vectorised simulators of the three games, to corroborate their exact maths.

EXEMPT FROM THE RNG RULE: these simulators draw with ``numpy.random`` (PCG64, seeded) because they
only estimate long-run figures offline; no outcome a player sees ever comes from here. Played rounds
draw only through ``rng.source.Source.randbelow``.

The slot is evaluated independently of the exact enumeration: per line, the five symbols shown are
gathered from the strips at the drawn stops and the line's pay is looked up in a table built from
the rules (``slot.line_table``, equal to ``slot.evaluate_line`` on every line), so an error in the
enumeration's grouping would show up as a disagreement here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from rng.games.base import SimulationReport
from rng.games.slot import SlotConfig, line_table

CHUNK = 1 << 18
# Slot spins are evaluated in batches whose arrays fit in a core's cache: twice as fast here.
SPIN_BATCH = 1 << 15
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SlotTables:
    """Lookup tables for evaluating many spins at once."""

    rows: tuple[tuple[I32, ...], ...]
    scatters: tuple[I32, ...]
    line_pay: npt.NDArray[np.int16] | I32
    scatter_units: I64
    awards: I64

    @classmethod
    def build(cls, config: SlotConfig) -> SlotTables:
        """Build the tables: per reel and row, the symbol code (times symbols**reel) at every stop."""
        rows = []
        scatters = []
        for reel, strip in enumerate(config.strips):
            array = np.asarray(strip, dtype=np.int32)
            shown = [np.roll(array, -row) for row in range(config.rows)]
            rows.append(tuple((s * config.symbols**reel).astype(np.int32) for s in shown))
            scatters.append(sum((s == config.scatter).astype(np.int32) for s in shown).astype(np.int32))
        most = sum(config.rows for _ in config.strips) + 1
        pay, _, _ = line_table(config)
        return cls(
            rows=tuple(rows),
            scatters=tuple(scatters),
            # A 16-bit table halves the cache it needs, the main cost of the lookups, when the pays fit.
            line_pay=pay.astype(np.int16) if pay.max() <= np.iinfo(np.int16).max else pay.astype(np.int32),
            scatter_units=np.asarray(
                [config.scatter_pay(k) * config.lines for k in range(most)], dtype=np.int64
            ),
            awards=np.asarray([config.award(k) for k in range(most)], dtype=np.int64),
        )


def slot_spins(config: SlotConfig, tables: SlotTables, rng: np.random.Generator, n: int) -> tuple[I64, I64]:
    """Pay in line-bet units (lines plus scatters) and scatter counts of ``n`` independent spins."""
    pays, scatters = [], []
    for start in range(0, n, SPIN_BATCH):
        size = min(SPIN_BATCH, n - start)
        stops = [rng.integers(0, len(strip), size, dtype=np.int64) for strip in config.strips]
        pay, scatter = slot_evaluate(config, tables, stops)
        pays.append(pay)
        scatters.append(scatter)
    if len(pays) == 1:
        return pays[0], scatters[0]
    return np.concatenate(pays), np.concatenate(scatters)


def slot_evaluate(config: SlotConfig, tables: SlotTables, stops: Sequence[I64]) -> tuple[I64, I64]:
    """Pay (line-bet units) and scatter counts of the spins at these stops, one array per reel."""
    n = len(stops[0])
    shown = [
        [np.take(code, reel_stops) for code in tables.rows[reel]] for reel, reel_stops in enumerate(stops)
    ]
    scatters = np.zeros(n, dtype=np.int32)
    for reel, reel_stops in enumerate(stops):
        scatters += np.take(tables.scatters[reel], reel_stops)
    # Lines share the rows they read on pairs of reels, so each pair's partial code is added once.
    groups = [tuple(range(i, min(i + 2, config.reels))) for i in range(0, config.reels, 2)]
    parts: dict[tuple[int, ...], I32] = {}
    pay = np.zeros(n, dtype=np.int32)
    code = np.empty(n, dtype=np.int32)
    looked = np.empty(n, dtype=tables.line_pay.dtype)
    for line in config.paylines:
        partial = []
        for group in groups:
            key = (group[0], *(line[reel] for reel in group))
            if key not in parts:
                arrays = [shown[reel][line[reel]] for reel in group]
                parts[key] = arrays[0] if len(arrays) == 1 else np.add(arrays[0], arrays[1])
            partial.append(parts[key])
        np.add(partial[0], partial[1], out=code)
        for extra in partial[2:]:
            code += extra
        np.take(tables.line_pay, code, out=looked)
        pay += looked
    scatter64 = scatters.astype(np.int64)
    return pay.astype(np.int64) + tables.scatter_units[scatter64], scatter64


def _tally(wins: I64, cap: int) -> tuple[int, int, int, int, int]:
    """Sum, sum of squares, hits, capped rounds and largest win of capped round wins."""
    capped = np.minimum(wins, cap)
    if not capped.size:
        return (0, 0, 0, 0, 0)
    return (
        int(capped.sum()),
        int((capped * capped).sum()),
        int(np.count_nonzero(capped)),
        int(np.count_nonzero(wins >= cap)),
        int(capped.max()),
    )


def simulate_slot(config: SlotConfig, rounds: int, seed: int) -> SimulationReport:
    """Simulate ``rounds`` slot rounds (base spin, free spins, cap) and compare with the exact maths."""
    from rng.games.slot_exact import slot_maths  # noqa: PLC0415

    maths = slot_maths(config)
    tables = SlotTables.build(config)
    rng = np.random.default_rng(seed)
    cap = config.max_win * config.lines
    tallies = []
    base_won = 0
    feature_base: list[I64] = []
    feature_left: list[I64] = []
    started = time.perf_counter()
    for start in range(0, rounds, CHUNK):
        base, scatters = slot_spins(config, tables, rng, min(CHUNK, rounds - start))
        base_won += int(base.sum())
        left = tables.awards[scatters]
        triggered = left > 0
        tallies.append(_tally(base[~triggered], cap))
        feature_base.append(base[triggered])
        feature_left.append(left[triggered])
    # Triggered rounds are finished together, one free spin each per pass, so passes stay large.
    total = np.concatenate(feature_base)
    left = np.concatenate(feature_left)
    triggers = total.size
    free_spins = 0
    active = np.flatnonzero(left)
    while active.size:
        pay, more = slot_spins(config, tables, rng, active.size)
        total[active] += pay * config.multiplier
        left[active] += tables.awards[more] - 1
        free_spins += active.size
        active = active[(left[active] > 0) & (total[active] < cap)]
    tallies.append(_tally(total, cap))
    elapsed = time.perf_counter() - started
    won, won_sq, hits, capped = (sum(t[i] for t in tallies) for i in range(4))
    biggest = max(t[4] for t in tallies)
    units = rounds * config.lines
    sample_sigma = math.sqrt(max(won_sq / rounds - (won / rounds) ** 2, 0.0)) / config.lines
    base_rtp = maths.line_rtp + maths.scatter_rtp
    figures = (
        ("base-game RTP (lines + scatters)", f"{base_won / units:.6%}", f"{float(base_rtp):.6%}"),
        ("feature RTP", f"{(won - base_won) / units:.6%}", f"{float(maths.feature_rtp):.6%}"),
        ("hit frequency", f"{hits / rounds:.6%}", f"{float(maths.hit_frequency):.6%}"),
        ("free-spin trigger rate", f"{triggers / rounds:.6%}", f"{float(maths.trigger):.6%}"),
        ("free spins per round", f"{free_spins / rounds:.6f}", f"{float(maths.spins_per_round):.6f}"),
        ("SD per round (per unit bet)", f"{sample_sigma:.4f}", f"{math.sqrt(maths.variance):.4f}"),
        ("largest round win (x bet)", f"{biggest / config.lines:,.2f}", f"cap {config.max_win:,}"),
        ("rounds that reached the cap", f"{capped:,}", f"P ≤ {maths.cap_probability_bound:.1e}"),
    )
    return SimulationReport(
        game="slot",
        rounds=rounds,
        seed=seed,
        staked=units,
        won=won,
        exact_rtp=maths.rtp,
        sigma=math.sqrt(maths.variance),
        elapsed_s=elapsed,
        figures=figures,
        notes=(
            (
                "Exact RTP is E[W] before the cap; the cap lowers it by at most "
                f"{maths.cap_mean_bound:.1e}, far inside the interval."
            ),
            "Simulated with numpy.random (PCG64), exempt from the RNG rule: it only corroborates the maths.",
        ),
    )


@dataclass(frozen=True)
class FixedBet:
    """A bet the table simulator cycles through: ``pay`` per unit stake on the winning outcomes."""

    group: str
    pay: Fraction
    winning: npt.NDArray[np.bool_]


def simulate_table(
    game: str, outcomes: int, bets: Sequence[FixedBet], rounds: int, seed: int, notes: tuple[str, ...] = ()
) -> SimulationReport:
    """Simulate a uniform-outcome game; round i plays bet i mod len(bets) at a stake of 1."""
    rng = np.random.default_rng(seed)
    # Pays are exact fractions of the stake; a common denominator keeps the sums in integers.
    denominator = math.lcm(*(bet.pay.denominator for bet in bets))
    table = np.stack([bet.winning.astype(np.int64) * int(bet.pay * denominator) for bet in bets])
    groups = sorted({bet.group for bet in bets}, key=[b.group for b in bets].index)
    group_of = np.asarray([groups.index(bet.group) for bet in bets], dtype=np.int64)
    won = np.zeros(len(groups), dtype=np.int64)
    hits = 0
    started = time.perf_counter()
    for start in range(0, rounds, CHUNK):
        n = min(CHUNK, rounds - start)
        which = np.arange(start, start + n, dtype=np.int64) % len(bets)
        outcome = rng.integers(0, outcomes, n, dtype=np.int64)
        pay = table[which, outcome]
        for g in range(len(groups)):
            won[g] += int(pay[group_of[which] == g].sum())
        hits += int(np.count_nonzero(pay))
    elapsed = time.perf_counter() - started
    chance = [Fraction(int(np.count_nonzero(bet.winning)), outcomes) for bet in bets]
    exact = [bet.pay * p for bet, p in zip(bets, chance, strict=True)]
    second = [bet.pay * bet.pay * p for bet, p in zip(bets, chance, strict=True)]
    # Rounds are independent but not identically distributed: the variance of the sum is the sum of theirs.
    counts = [rounds // len(bets) + (1 if i < rounds % len(bets) else 0) for i in range(len(bets))]

    def mix(members: Sequence[int]) -> tuple[int, Fraction, Fraction, Fraction]:
        n_mix = sum(counts[i] for i in members)
        mean = sum((counts[i] * exact[i] for i in members), Fraction(0)) / n_mix
        var = sum((counts[i] * (second[i] - exact[i] ** 2) for i in members), Fraction(0)) / n_mix
        hit = sum((counts[i] * chance[i] for i in members), Fraction(0)) / n_mix
        return n_mix, mean, var, hit

    _, exact_rtp, variance, hit_exact = mix(range(len(bets)))
    breakdown = []
    for g, group in enumerate(groups):
        members = [i for i, bet in enumerate(bets) if bet.group == group]
        n_group, mean, var, _ = mix(members)
        half = 2.576 * math.sqrt(var / n_group)
        sim = int(won[g]) / denominator / n_group
        breakdown.append(
            (group, f"{len(members)}", f"{n_group:,}", f"{sim:.5%}", f"{float(mean):.5%}",
             f"±{half:.5%}", "yes" if abs(sim - float(mean)) <= half else "NO")
        )  # fmt: skip
    return SimulationReport(
        game=game,
        rounds=rounds,
        seed=seed,
        staked=rounds * denominator,
        won=int(won.sum()),
        exact_rtp=exact_rtp,
        sigma=math.sqrt(variance),
        elapsed_s=elapsed,
        figures=(("hit frequency", f"{hits / rounds:.6%}", f"{float(hit_exact):.6%}"),),
        notes=(
            *notes,
            "Simulated with numpy.random (PCG64), exempt from the RNG rule: it only corroborates the maths.",
        ),
        breakdown=tuple(breakdown),
        breakdown_headers=("bet", "bets", "rounds", "simulated RTP", "exact RTP", "99% half-width", "within"),
    )
