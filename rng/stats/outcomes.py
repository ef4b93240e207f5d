"""Goodness-of-fit tests on scaled outcomes: what a game actually draws from ``randbelow(n)``.

Every test takes integer outcomes in ``[0, n)`` and returns a :class:`TestOutcome` with its
statistic, degrees of freedom, p-value and sample size; a test passes at ``p >= ALPHA`` (0.01).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rng.source import Source, shuffle
from rng.stats import ALPHA
from rng.stats.nist import igamc

Outcomes = npt.NDArray[np.int64]

MIN_EXPECTED = 5.0
MIN_RANGE = 2
MIN_RUNS_SIDE = 10
LAG_FACTOR = 10
PAIR_CELLS_MAX = 10_000
DEFAULT_MAX_LAG = 10


@dataclass(frozen=True)
class TestOutcome:
    """One statistical test's result."""

    name: str
    statistic: float
    p_value: float
    sample_size: int
    dof: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    applicable: bool = True

    @property
    def passed(self) -> bool:
        """Whether the test does not reject uniformity and independence at ALPHA (or could not run)."""
        return not self.applicable or self.p_value >= ALPHA

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "name": self.name,
            "statistic": _finite(self.statistic),
            "dof": self.dof,
            "p_value": _finite(self.p_value),
            "sample_size": self.sample_size,
            "applicable": self.applicable,
            "passed": self.passed,
            "details": self.details,
        }


def _finite(value: float) -> float | None:
    # JSON has no NaN or infinity: a test that could not run, or a constant stream, reports null.
    return value if math.isfinite(value) else None


def _not_applicable(name: str, size: int, reason: str) -> TestOutcome:
    return TestOutcome(name, math.nan, math.nan, size, None, {"reason": reason}, applicable=False)


def chi2_sf(statistic: float, dof: int) -> float:
    """Survival function of the chi-square distribution."""
    return igamc(dof / 2.0, statistic / 2.0)


def draw(source: Source, n: int, count: int) -> Outcomes:
    """Draw ``count`` outcomes of ``randbelow(n)`` from ``source``, through the production code path."""
    randbelow = source.randbelow
    return np.fromiter((randbelow(n) for _ in range(count)), dtype=np.int64, count=count)


def _chi2_counts(observed: npt.NDArray[np.int64], expected: float) -> float:
    return float(np.sum((observed - expected) ** 2) / expected)


def chi_square_uniform(values: Outcomes, n: int) -> TestOutcome:
    """Chi-square goodness of fit of the outcomes to the uniform distribution on ``[0, n)``."""
    name = f"chi-square uniformity over {n} outcomes"
    size = len(values)
    expected = size / n
    if n < MIN_RANGE or expected < MIN_EXPECTED:
        return _not_applicable(name, size, f"expected count per cell {expected:.2f} < {MIN_EXPECTED}")
    if values.min() < 0 or values.max() >= n:
        raise ValueError(f"outcomes outside [0, {n})")
    counts = np.bincount(values, minlength=n)
    statistic = _chi2_counts(counts, expected)
    return TestOutcome(
        name,
        statistic,
        chi2_sf(statistic, n - 1),
        size,
        n - 1,
        {"min_count": int(counts.min()), "max_count": int(counts.max()), "expected": expected},
    )


def serial_correlation(values: Outcomes, max_lag: int = DEFAULT_MAX_LAG) -> TestOutcome:
    """Lag-1..k serial correlation: each lag's coefficient, and the Ljung-Box Q over all lags."""
    name = f"serial correlation, lags 1..{max_lag} (Ljung-Box)"
    size = len(values)
    if size <= LAG_FACTOR * max_lag:
        return _not_applicable(name, size, "too few outcomes for the lags")
    x = values.astype(np.float64) - values.mean()
    denominator = float(np.dot(x, x))
    if denominator == 0.0:
        # A constant stream has no variance to correlate: it is as dependent as a stream can be.
        return TestOutcome(name, math.inf, 0.0, size, max_lag, {"reason": "constant outcomes"})
    lags: dict[str, Any] = {}
    q = 0.0
    for lag in range(1, max_lag + 1):
        r = float(np.dot(x[:-lag], x[lag:])) / denominator
        q += r * r / (size - lag)
        lags[str(lag)] = {"r": r, "p_value": math.erfc(abs(r) * math.sqrt(size) / math.sqrt(2.0))}
    statistic = size * (size + 2) * q
    return TestOutcome(name, statistic, chi2_sf(statistic, max_lag), size, max_lag, {"lags": lags})


def pair_bins(n: int, cells_max: int = PAIR_CELLS_MAX) -> int:
    """Return the largest divisor ``b`` of ``n`` with ``b * b <= cells_max`` (pairs use ``b`` equal bins)."""
    return max(b for b in range(1, n + 1) if n % b == 0 and b * b <= cells_max)


def pairs_chi_square(first: Outcomes, second: Outcomes, n1: int, n2: int, label: str = "") -> TestOutcome:
    """Chi-square over the ``n1 x n2`` table of paired outcomes (binned equally when the table is large)."""
    b1, b2 = pair_bins(n1), pair_bins(n2)
    name = f"pairs chi-square {label}{b1} x {b2}".strip()
    size = min(len(first), len(second))
    cells = b1 * b2
    expected = size / cells
    if min(b1, b2) < MIN_RANGE or expected < MIN_EXPECTED:
        return _not_applicable(name, size, f"{cells} cells, expected {expected:.2f} per cell")
    # Bins are exact: n is a multiple of b, so each bin holds n / b values and is equally likely.
    x = first[:size] // (n1 // b1)
    y = second[:size] // (n2 // b2)
    counts = np.bincount(x * b2 + y, minlength=cells)
    statistic = _chi2_counts(counts, expected)
    details = {"bins": [b1, b2], "expected": expected, "min_count": int(counts.min())}
    return TestOutcome(name, statistic, chi2_sf(statistic, cells - 1), size, cells - 1, details)


def consecutive_pairs(values: Outcomes, n: int) -> TestOutcome:
    """Chi-square over non-overlapping consecutive pairs ``(x[2i], x[2i+1])`` (independent under H0)."""
    half = len(values) // 2
    return pairs_chi_square(values[0 : 2 * half : 2], values[1 : 2 * half : 2], n, n, "consecutive ")


def runs_about_median(values: Outcomes, n: int) -> TestOutcome:
    """Wald-Wolfowitz runs above and below the median of ``[0, n)`` (the median itself is dropped)."""
    name = "runs above/below the median"
    size = len(values)
    # For odd n the value (n - 1) / 2 is the median and belongs to neither side.
    kept = values[values != (n - 1) // 2] if n % 2 else values
    above = kept >= n // 2 + (n % 2)
    n1 = int(above.sum())
    n2 = len(above) - n1
    if n < MIN_RANGE or min(n1, n2) < MIN_RUNS_SIDE:
        return _not_applicable(name, size, "too few values on one side of the median")
    runs = 1 + int(np.count_nonzero(above[1:] != above[:-1]))
    total = n1 + n2
    mean = 2.0 * n1 * n2 / total + 1.0
    variance = 2.0 * n1 * n2 * (2.0 * n1 * n2 - total) / (total * total * (total - 1.0))
    z = (runs - mean) / math.sqrt(variance)
    details = {"runs": runs, "expected_runs": mean, "z": z, "above": n1, "below": n2}
    return TestOutcome(name, z, math.erfc(abs(z) / math.sqrt(2.0)), len(above), None, details)


def gap_test(values: Outcomes, n: int) -> TestOutcome:
    """Run Knuth's gap test: gaps between outcomes below ``h = max(1, n // 8)`` are geometric, p = h / n."""
    hit_below = max(1, n // 8)
    p = hit_below / n
    name = f"gap test (outcomes < {hit_below})"
    hits = np.flatnonzero(values < hit_below)
    gaps = np.diff(hits) - 1
    size = len(gaps)
    if size == 0 or p >= 1.0:
        return _not_applicable(name, len(values), "too few hits")
    # Classes 0..t-1 and a tail >= t, with t chosen so that the tail still expects MIN_EXPECTED gaps.
    tail = int(math.log(MIN_EXPECTED / size) / math.log1p(-p)) if size * (1 - p) > MIN_EXPECTED else 0
    classes = min(max(tail, 0), 60)
    if classes < 1 or size * p < MIN_EXPECTED:
        return _not_applicable(name, len(values), "too few gaps for the classes")
    probabilities = np.array([p * (1 - p) ** g for g in range(classes)] + [(1 - p) ** classes])
    observed = np.bincount(np.minimum(gaps, classes), minlength=classes + 1)
    expected = size * probabilities
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    details = {"gaps": size, "classes": classes + 1, "hit_probability": p}
    return TestOutcome(name, statistic, chi2_sf(statistic, classes), size, classes, details)


def outcome_tests(values: Outcomes, n: int, max_lag: int = DEFAULT_MAX_LAG) -> list[TestOutcome]:
    """Every single-stream test on one range's outcomes."""
    return [
        chi_square_uniform(values, n),
        serial_correlation(values, max_lag),
        consecutive_pairs(values, n),
        runs_about_median(values, n),
        gap_test(values, n),
    ]


def shuffle_positions(sources: Iterable[Source], deck: int) -> npt.NDArray[np.int64]:
    """Count how often each card lands in each position, one Fisher-Yates shuffle per source."""
    table = np.zeros((deck, deck), dtype=np.int64)
    positions = np.arange(deck)
    for source in sources:
        cards = list(range(deck))
        shuffle(source, cards)
        table[cards, positions] += 1
    return table


def card_position_test(table: npt.NDArray[np.int64]) -> TestOutcome:
    """Chi-square of a card-by-position table against ``shuffles / deck`` per cell, ``(deck - 1)^2`` dof."""
    deck = table.shape[0]
    shuffles = int(table[0].sum())
    expected = shuffles / deck
    name = f"shuffle card-by-position ({deck} cards)"
    if expected < MIN_EXPECTED:
        return _not_applicable(name, shuffles, "too few shuffles")
    statistic = _chi2_counts(table, expected)
    dof = (deck - 1) ** 2
    details = {
        "deck": deck,
        "expected": expected,
        "min_count": int(table.min()),
        "max_count": int(table.max()),
    }
    return TestOutcome(name, statistic, chi2_sf(statistic, dof), shuffles, dof, details)


def columns_tests(
    columns: Sequence[Outcomes], ranges: Sequence[int], max_lag: int = DEFAULT_MAX_LAG
) -> list[tuple[str, TestOutcome]]:
    """Test outcomes drawn together each round: each column alone, and adjacent columns as pairs."""
    results: list[tuple[str, TestOutcome]] = []
    for index, (values, n) in enumerate(zip(columns, ranges, strict=True)):
        label = f"draw {index + 1} of {len(ranges)} (n = {n})" if len(ranges) > 1 else f"n = {n}"
        results.extend((label, test) for test in outcome_tests(values, n, max_lag))
    for index in range(len(ranges) - 1):
        label = f"draws {index + 1} and {index + 2} of the same round"
        pair = pairs_chi_square(columns[index], columns[index + 1], ranges[index], ranges[index + 1], "")
        results.append((label, pair))
    return results
