"""The slot's exact maths: joint distribution of one spin over every stop combination, the feature, the cap.

Method, and why:

- Line RTP: each line shows, on each reel, one strip position chosen uniformly, so the symbol a line
  sees on reel i has the distribution of symbol counts on strip i, whichever row it reads. The
  expected pay of a line is then a sum over symbol combinations weighted by products of per-reel
  counts (symbols**reels combinations, not stops**reels), and the line RTP is the sum over lines
  (linearity of expectation is exact even though lines are correlated).
- Hit frequency and variance need the joint distribution of all lines and scatters on one spin, so
  that is computed exactly over every stop combination (the product of strip lengths, 32^5 here), but
  grouped: a line can pay only if its first three symbols already form a run, so after reels 1..3
  each line is in one of a few states (dead, run of symbol X, three wilds). Prefix stop triples with
  the same state on every line and the same scatter count are one group; each group is combined
  with every stop pair of reels 4..5 with numpy, chunked. The result is an exact integer histogram
  of (line pay, scatter count) over all stop combinations; the line RTP from it must equal the
  per-line sum above (checked).
- Free spins: one free spin pays Y = multiplier · B and awards N more spins, with (B, N) from that
  histogram. The pay T of a free spin and all its descendants satisfies T = Y + sum of N copies of
  T, so E[T] = E[Y] / (1 - E[N]) and E[T^2] follows likewise: linear equations solved with Fraction.
- The cap: exact moments above are of the uncapped win W. The cap binds only when free spins pile
  up, so its effect E[(W - C)+] and the probability P(W >= C) are bounded with a Chernoff bound:
  E[e^(θT)] is the least fixed point of φ = E[e^(θY) φ^N], certified by a φ_u with g(φ_u) <= φ_u.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from rng.games.slot import MIN_RUN, SlotConfig, line_table

IntArray = npt.NDArray[np.int64]
CHUNK_GROUPS = 1024


@dataclass(frozen=True)
class SlotMaths:
    """Exact figures of the slot; moments are of the round win in units of the total bet, before the cap."""

    combinations: int
    histogram: dict[tuple[int, int], int]
    line_rtp: Fraction
    scatter_rtp: Fraction
    mean_awards: Fraction
    spins_per_round: Fraction
    rtp: Fraction
    second_moment: Fraction
    hit_frequency: Fraction
    trigger: Fraction
    feature_mean: Fraction
    feature_spin_mean: Fraction
    combos: dict[tuple[int, int], int]
    scatter_counts: dict[int, int]
    cap_mean_bound: float
    cap_probability_bound: float
    cap_second_bound: float

    @property
    def variance(self) -> Fraction:
        """Variance of the round win per unit bet (uncapped)."""
        return self.second_moment - self.rtp**2

    @property
    def feature_rtp(self) -> Fraction:
        """RTP from free spins."""
        return self.rtp - self.line_rtp - self.scatter_rtp


def _windows(config: SlotConfig, reel: int) -> IntArray:
    """Symbols shown at every stop of a reel, shape (stops, rows)."""
    strip = np.asarray(config.strips[reel], dtype=np.int64)
    stops = np.arange(strip.size)
    shown: IntArray = strip[(stops[:, None] + np.arange(config.rows)[None, :]) % strip.size]
    return shown


def _product_codes(config: SlotConfig, reels: range) -> tuple[IntArray, IntArray]:
    """Line codes (sum symbol·symbols**j over these reels) and scatter counts, for every stop tuple."""
    codes = np.zeros((1, config.lines), dtype=np.int64)
    scatters = np.zeros(1, dtype=np.int64)
    for j, reel in enumerate(reels):
        window = _windows(config, reel)
        rows = np.asarray([line[reel] for line in config.paylines])
        shown = window[:, rows] * config.symbols**j
        codes = (codes[:, None, :] + shown[None, :, :]).reshape(-1, config.lines)
        count = (window == config.scatter).sum(axis=1)
        scatters = (scatters[:, None] + count[None, :]).reshape(-1)
    return codes, scatters


def _states(config: SlotConfig) -> tuple[IntArray, IntArray]:
    """State after the first three reels for every prefix code, and the pay for (state, suffix code)."""
    base = config.symbols
    dead, every = 0, config.paying + 1
    prefix = np.arange(base**MIN_RUN)
    digits = np.stack([(prefix // base**i) % base for i in range(MIN_RUN)], axis=1)
    state = np.zeros(prefix.size, dtype=np.int64)
    for symbol in range(config.paying):
        state[((digits == symbol) | (digits == config.wild)).all(axis=1)] = symbol + 1
    state[(digits == config.wild).all(axis=1)] = every
    tail_reels = config.reels - MIN_RUN
    suffix = np.arange(base**tail_reels)
    sdigits = np.stack([(suffix // base**i) % base for i in range(tail_reels)], axis=1).reshape(
        suffix.size, tail_reels
    )
    tail = np.zeros((config.paying + 2, suffix.size), dtype=np.int64)
    for symbol in range(config.paying):
        run = np.cumprod((sdigits == symbol) | (sdigits == config.wild), axis=1).sum(axis=1)
        pay = np.asarray(config.pays[symbol], dtype=np.int64)[MIN_RUN + run]
        tail[symbol + 1] = pay
        tail[every] = np.maximum(tail[every], pay)
    tail[dead] = 0
    return state, tail


def spin_histogram(config: SlotConfig) -> dict[tuple[int, int], int]:
    """Exact count of stop combinations by (total line pay in line bets, scatters shown)."""
    state_of, tail = _states(config)
    pre_codes, pre_scatters = _product_codes(config, range(MIN_RUN))
    suf_codes, suf_scatters = _product_codes(config, range(MIN_RUN, config.reels))
    keys = np.concatenate([state_of[pre_codes], pre_scatters[:, None]], axis=1)
    groups, weights = np.unique(keys, axis=0, return_counts=True)
    states, group_scatters = groups[:, :-1], groups[:, -1]
    tail_flat = tail.reshape(-1)
    width = tail.shape[1]
    max_scatters = int(pre_scatters.max() + suf_scatters.max())
    size = (config.lines * max(max(p) for p in config.pays) + 1) * (max_scatters + 1)
    bins = np.zeros(size, dtype=np.float64)
    for start in range(0, len(groups), CHUNK_GROUPS):
        chunk = slice(start, start + CHUNK_GROUPS)
        pay = np.zeros((len(states[chunk]), len(suf_codes)), dtype=np.int64)
        for line in range(config.lines):
            pay += tail_flat[states[chunk, line][:, None] * width + suf_codes[None, :, line]]
        scatters = group_scatters[chunk][:, None] + suf_scatters[None, :]
        key = pay * (max_scatters + 1) + scatters
        # float64 weights are exact here: every partial sum is an integer below 2**53.
        repeated = np.repeat(weights[chunk].astype(np.float64), len(suf_codes))
        bins += np.asarray(np.bincount(key.ravel(), weights=repeated, minlength=size), dtype=np.float64)
    return {
        (int(k) // (max_scatters + 1), int(k) % (max_scatters + 1)): int(bins[k])
        for k in np.flatnonzero(bins)
    }


def line_combinations(config: SlotConfig) -> dict[tuple[int, int], int]:
    """Weight (out of the stop combinations) of each paying (symbol, count) on any one line."""
    pay, symbol, count = line_table(config)
    base = config.symbols
    codes = np.arange(pay.size)
    weight = np.ones(pay.size, dtype=np.int64)
    for reel, strip in enumerate(config.strips):
        per_symbol = np.bincount(np.asarray(strip), minlength=base).astype(np.int64)
        weight *= per_symbol[(codes // base**reel) % base]
    combos: dict[tuple[int, int], int] = {}
    paying = pay > 0
    for s, k, w in zip(symbol[paying], count[paying], weight[paying], strict=True):
        combos[int(s), int(k)] = combos.get((int(s), int(k)), 0) + int(w)
    return combos


def scatter_distribution(config: SlotConfig) -> dict[int, int]:
    """Exact count of stop combinations by the number of scatters shown, by convolving the reels."""
    dist = np.ones(1, dtype=np.int64)
    for reel in range(config.reels):
        per_reel = np.bincount((_windows(config, reel) == config.scatter).sum(axis=1))
        dist = np.convolve(dist, per_reel)
    return {k: int(v) for k, v in enumerate(dist) if v}


def _cap_bounds(
    config: SlotConfig, histogram: dict[tuple[int, int], int], total: int
) -> tuple[float, float, float]:
    """Chernoff bounds on E[(W-C)+], P(W >= C) and E[W^2; W >= C], W and C in total bets."""
    prob = np.asarray(list(histogram.values()), dtype=np.float64) / total
    spin = np.asarray(
        [(lp + config.scatter_pay(c) * config.lines) / config.lines for lp, c in histogram], dtype=np.float64
    )
    awards = np.asarray([config.award(c) for _, c in histogram], dtype=np.float64)
    log_p = np.log(prob)
    cap = float(config.max_win)
    best = (math.inf, math.inf, math.inf)
    for theta in np.geomspace(1e-4, 20.0, 400):
        log_phi = _least_fixed_point(log_p + theta * config.multiplier * spin, awards)
        if log_phi is None:
            continue
        log_m = float(np.logaddexp.reduce(log_p + theta * spin + awards * log_phi))
        tail = log_m - theta * cap
        second = math.exp(tail) * cap**2 if theta * cap >= 2 else math.inf  # noqa: PLR2004
        best = (
            min(best[0], math.exp(tail) / (math.e * theta)),
            min(best[1], math.exp(tail)),
            min(best[2], second),
        )
    return best


def _least_fixed_point(log_a: npt.NDArray[np.float64], awards: npt.NDArray[np.float64]) -> float | None:
    """Log of a certified upper bound on the least fixed point of φ = Σ a·φ^awards, or None if none exists."""
    log_phi = 0.0
    for _ in range(10_000):
        new = float(np.logaddexp.reduce(log_a + awards * log_phi))
        if new > 700.0:  # noqa: PLR2004
            return None
        if abs(new - log_phi) < 1e-13:  # noqa: PLR2004
            break
        log_phi = new
    else:
        return None
    # g is increasing in φ, so g(φ_u) <= φ_u with φ_u >= 1 bounds the least fixed point from above.
    upper = log_phi + 1e-9
    if float(np.logaddexp.reduce(log_a + awards * upper)) + 1e-12 > upper:
        return None
    return upper


def slot_maths(config: SlotConfig) -> SlotMaths:
    """Compute the slot's exact figures."""
    histogram = spin_histogram(config)
    total = math.prod(len(s) for s in config.strips)
    if sum(histogram.values()) != total:
        raise RuntimeError("the joint histogram does not cover every stop combination")
    lines, m = config.lines, config.multiplier
    e_b = e_b2 = e_n = e_n2 = e_bn = Fraction(0)
    line_sum = scatter_sum = hit = trigger = 0
    for (line_pay, scatters), count in histogram.items():
        b = line_pay + config.scatter_pay(scatters) * lines
        n = config.award(scatters)
        e_b += b * count
        e_b2 += b * b * count
        e_n += n * count
        e_n2 += n * n * count
        e_bn += b * n * count
        line_sum += line_pay * count
        scatter_sum += config.scatter_pay(scatters) * count
        hit += count if b else 0
        trigger += count if n else 0
    e_b, e_b2, e_n, e_n2, e_bn = (x / total for x in (e_b, e_b2, e_n, e_n2, e_bn))
    if e_n >= 1:
        raise ValueError(
            f"free spins award {float(e_n):.3f} spins per spin on average: the feature never ends"
        )
    combos = line_combinations(config)
    per_line = Fraction(sum(w * config.pays[s][k] for (s, k), w in combos.items()), total)
    if per_line * lines != Fraction(line_sum, total):
        raise RuntimeError("line RTP per line and over the joint histogram disagree")
    scatter_counts = scatter_distribution(config)
    by_count: dict[int, int] = {}
    for (_, scatters), count in histogram.items():
        by_count[scatters] = by_count.get(scatters, 0) + count
    if by_count != scatter_counts:
        raise RuntimeError("scatter counts per reel and over the joint histogram disagree")
    # Free spin T = m·B + sum of N copies of T (B, N from the same spin); units: line bets.
    e_t = m * e_b / (1 - e_n)
    e_t2 = (m * m * e_b2 + 2 * m * e_bn * e_t + (e_n2 - e_n) * e_t**2) / (1 - e_n)
    # Round W = B + sum of N0 copies of T, N0 the base spin's award.
    e_w = e_b + e_n * e_t
    e_w2 = e_b2 + 2 * e_bn * e_t + e_n * e_t2 + (e_n2 - e_n) * e_t**2
    trig = Fraction(trigger, total)
    cap_mean, cap_prob, cap_second = _cap_bounds(config, histogram, total)
    return SlotMaths(
        combinations=total,
        histogram=histogram,
        line_rtp=Fraction(line_sum, total * lines),
        scatter_rtp=Fraction(scatter_sum, total),
        mean_awards=e_n,
        spins_per_round=e_n / (1 - e_n),
        rtp=e_w / lines,
        second_moment=e_w2 / lines**2,
        hit_frequency=Fraction(hit, total),
        trigger=trig,
        feature_mean=(e_n * e_t / lines) / trig if trig else Fraction(0),
        feature_spin_mean=e_t / lines,
        combos=combos,
        scatter_counts=scatter_counts,
        cap_mean_bound=cap_mean,
        cap_probability_bound=cap_prob,
        cap_second_bound=cap_second,
    )
