"""NIST SP 800-22 rev. 1a on raw bits: per-sequence tests, proportion passing, uniformity of p-values.

Single-p-value tests call NIST's reference C code through the ``sp80022suite`` extension. Four
tests report several p-values in SP 800-22 (serial: 2, cumulative sums: forward and backward,
random excursions: 8 states, random excursions variant: 18 states) but the extension returns only
their minimum, whose distribution is not uniform; those four are computed here with numpy
exactly as the reference code does, each sub-test on its own line (the suite checks that the
minimum of ours equals the extension's). The non-overlapping template test is left out: the
extension reads NIST's template files from ``./templates`` and does not ship them.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from rng.stats import ALPHA

Bits = npt.NDArray[np.uint8]
PValues = dict[str, float]
ByteReader = Callable[[int], bytes]

UNIFORMITY_ALPHA = 0.0001
UNIFORMITY_MIN_SEQUENCES = 55
EXCURSION_STATES = (-4, -3, -2, -1, 1, 2, 3, 4)
VARIANT_STATES = (-9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9)
# SP 800-22 section 3.14: probability that a cycle visits state |x| exactly k times (k = 0..4, >= 5).
EXCURSION_PI = {
    1: (0.5000000000, 0.25000000000, 0.12500000000, 0.06250000000, 0.03125000000, 0.0312500000),
    2: (0.7500000000, 0.06250000000, 0.04687500000, 0.03515625000, 0.02636718750, 0.0791015625),
    3: (0.8333333333, 0.02777777778, 0.02314814815, 0.01929012346, 0.01607510288, 0.0803755143),
    4: (0.8750000000, 0.01562500000, 0.01367187500, 0.01196289063, 0.01046752930, 0.0732727051),
}
EXCLUDED = {
    "non_overlapping_template_matchings": (
        "sp80022suite reads NIST's aperiodic template files from ./templates and does not ship them"
    ),
}


def _module(name: str) -> ModuleType:
    # scipy and the C extension ship no type information; importing them as plain modules keeps
    # their untyped values at this one boundary, where every result is converted to float.
    return importlib.import_module(name)


def igamc(a: float, x: float) -> float:
    """Return the regularised upper incomplete gamma function Q(a, x) (cephes ``igamc``)."""
    value: float = _module("scipy.special").gammaincc(a, x)
    return float(value)


def _c_test(name: str, *args: int) -> Callable[[bytes], float]:
    def run(raw: bytes) -> float:
        p = float(getattr(_module("sp80022suite"), name)(*args, raw))
        if p < 0:
            raise ValueError(f"{name} could not run on {len(raw)} bits")
        return p

    return run


def bits_from_bytes(data: bytes, bits: int | None = None) -> Bits:
    """Unpack bytes into one 0/1 value per bit, most significant bit first."""
    unpacked = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    return unpacked if bits is None else unpacked[:bits]


def _psi2(bits: Bits, m: int) -> float:
    """Return psi^2_m of SP 800-22 section 2.11 over the sequence extended cyclically."""
    if m <= 0:
        return 0.0
    n = len(bits)
    extended = np.concatenate([bits, bits[: m - 1]]).astype(np.int64)
    patterns = np.zeros(n, dtype=np.int64)
    for j in range(m):
        patterns = (patterns << 1) | extended[j : j + n]
    counts = np.bincount(patterns, minlength=1 << m).astype(np.float64)
    return float(np.dot(counts, counts)) * (1 << m) / n - n


def serial(bits: Bits, m: int) -> PValues:
    """Run the serial test (2.11): the two p-values of the overlapping m-bit pattern frequencies."""
    psim0, psim1, psim2 = _psi2(bits, m), _psi2(bits, m - 1), _psi2(bits, m - 2)
    del1 = psim0 - psim1
    del2 = psim0 - 2.0 * psim1 + psim2
    return {"1": igamc(2 ** (m - 1) / 2, del1 / 2.0), "2": igamc(2 ** (m - 2) / 2, del2 / 2.0)}


def _trunc_div(a: int, b: int) -> int:
    # C integer division truncates toward zero; the reference code's summation bounds rely on it.
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b > 0) else -quotient


def _cusum_p(n: int, z: int) -> float:
    normal = _module("scipy.special").ndtr
    root = math.sqrt(n)
    k1 = np.arange(_trunc_div(_trunc_div(-n, z) + 1, 4), _trunc_div(_trunc_div(n, z) - 1, 4) + 1)
    k2 = np.arange(_trunc_div(_trunc_div(-n, z) - 3, 4), _trunc_div(_trunc_div(n, z) - 1, 4) + 1)
    sum1 = float(np.sum(normal((4 * k1 + 1) * z / root) - normal((4 * k1 - 1) * z / root)))
    sum2 = float(np.sum(normal((4 * k2 + 3) * z / root) - normal((4 * k2 + 1) * z / root)))
    return 1.0 - sum1 + sum2


def cumulative_sums(bits: Bits) -> PValues:
    """Cumulative sums test (2.13): forward and backward p-values."""
    walk = np.cumsum(2 * bits.astype(np.int64) - 1)
    high = max(0, int(walk.max()))
    low = min(0, int(walk.min()))
    final = int(walk[-1])
    forward = max(high, -low)
    backward = max(high - final, final - low)
    n = len(bits)
    return {"forward": _cusum_p(n, forward), "backward": _cusum_p(n, backward)}


def _excursion_cycles(bits: Bits) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]:
    """Return the walk, each position's cycle index, and the number of cycles J."""
    walk = np.cumsum(2 * bits.astype(np.int64) - 1)
    zero = walk == 0
    # A position belongs to the cycle counted by the zeros strictly before it.
    cycle = np.concatenate([[0], np.cumsum(zero)[:-1]]).astype(np.int64)
    cycles = int(zero.sum()) + (1 if walk[-1] != 0 else 0)
    return walk, cycle, cycles


def _excursions_applicable(n: int, cycles: int) -> bool:
    return cycles >= max(0.005 * math.sqrt(n), 500)


def random_excursions(bits: Bits, *, require_cycles: bool = True) -> PValues | None:
    """Run the random excursions test (2.14): a p-value per state -4..-1, 1..4; None when J < 500."""
    walk, cycle, cycles = _excursion_cycles(bits)
    if require_cycles and not _excursions_applicable(len(bits), cycles):
        return None
    result: PValues = {}
    for state in EXCURSION_STATES:
        visits = np.bincount(cycle[walk == state], minlength=cycles)
        nu = np.bincount(np.minimum(visits, 5), minlength=6).astype(np.float64)
        expected = cycles * np.asarray(EXCURSION_PI[abs(state)])
        chi2 = float(np.sum((nu - expected) ** 2 / expected))
        result[f"x={state:+d}"] = igamc(2.5, chi2 / 2.0)
    return result


def random_excursions_variant(bits: Bits, *, require_cycles: bool = True) -> PValues | None:
    """Run the random excursions variant test (2.15): a p-value per state -9..-1, 1..9; None when J < 500."""
    walk, _, cycles = _excursion_cycles(bits)
    if require_cycles and not _excursions_applicable(len(bits), cycles):
        return None
    top = VARIANT_STATES[-1]
    inside = walk[np.abs(walk) <= top]
    counts = np.bincount(inside + top, minlength=2 * top + 1)
    return {
        f"x={state:+d}": math.erfc(
            abs(int(counts[state + top]) - cycles) / math.sqrt(2.0 * cycles * (4.0 * abs(state) - 2))
        )
        for state in VARIANT_STATES
    }


@dataclass(frozen=True)
class NistTest:
    """One SP 800-22 test: how to run it on a sequence and the shortest sequence it is valid for."""

    name: str
    title: str
    min_bits: int
    subtests: tuple[str, ...]
    params: str

    def run(self, bits: Bits, raw: bytes) -> PValues | None:
        """Return the p-value of each sub-test, or None when the sequence does not qualify."""
        log2n = int(math.log2(len(bits)))
        numpy_tests: dict[str, Callable[[Bits], PValues | None]] = {
            "serial": lambda b: serial(b, _serial_m(log2n)),
            "cumulative_sums": cumulative_sums,
            "random_excursions": random_excursions,
            "random_excursions_variant": random_excursions_variant,
        }
        if self.name in numpy_tests:
            return numpy_tests[self.name](bits)
        params = {
            "approximate_entropy": (_apen_m(log2n),),
            "block_frequency": (128,),
            "linear_complexity": (500,),
            "overlapping_template_matchings": (9,),
        }
        return {"": _c_test(self.name, *params.get(self.name, ()))(raw)}


def _serial_m(log2n: int) -> int:
    # SP 800-22 2.11.7: m < floor(log2 n) - 2; 16 is the reference default for 10^6 bits.
    return min(16, log2n - 3)


def _apen_m(log2n: int) -> int:
    # SP 800-22 2.12.7: m < floor(log2 n) - 5; 10 is the reference default for 10^6 bits.
    return min(10, log2n - 6)


TESTS: tuple[NistTest, ...] = (
    NistTest("frequency", "Frequency (monobit)", 100, ("",), ""),
    NistTest("block_frequency", "Frequency within a block", 100, ("",), "M = 128"),
    NistTest("runs", "Runs", 100, ("",), ""),
    NistTest("longest_run_of_ones", "Longest run of ones in a block", 128, ("",), "M by n (8, 128, 10^4)"),
    NistTest("rank", "Binary matrix rank", 38_912, ("",), "32 x 32 matrices"),
    NistTest("discrete_fourier_transform", "Discrete Fourier transform (spectral)", 1_000, ("",), ""),
    NistTest("overlapping_template_matchings", "Overlapping template matching", 100_000, ("",), "m = 9"),
    NistTest("universal", "Maurer's universal statistical", 387_840, ("",), "L by n"),
    NistTest("linear_complexity", "Linear complexity", 100_000, ("",), "M = 500"),
    NistTest("serial", "Serial", 1_000, ("1", "2"), "m = min(16, log2 n - 3)"),
    NistTest("approximate_entropy", "Approximate entropy", 1_000, ("",), "m = min(10, log2 n - 6)"),
    NistTest("cumulative_sums", "Cumulative sums", 100, ("forward", "backward"), ""),
    NistTest(
        "random_excursions",
        "Random excursions",
        100,
        tuple(f"x={s:+d}" for s in EXCURSION_STATES),
        "applicable when J >= 500",
    ),
    NistTest(
        "random_excursions_variant",
        "Random excursions variant",
        100,
        tuple(f"x={s:+d}" for s in VARIANT_STATES),
        "applicable when J >= 500",
    ),
)
TESTS_BY_NAME = {test.name: test for test in TESTS}


def applicable_tests(bits: int) -> tuple[NistTest, ...]:
    """Return the tests valid for sequences of ``bits`` bits."""
    return tuple(test for test in TESTS if bits >= test.min_bits)


def run_sequence(data: bytes, bits: int, names: tuple[str, ...]) -> dict[str, PValues | None]:
    """Run the named tests on one sequence given as packed bytes (a process-pool task)."""
    array = bits_from_bytes(data, bits)
    raw = array.tobytes()
    return {name: TESTS_BY_NAME[name].run(array, raw) for name in names}


def proportion_bounds(sequences: int, alpha: float = ALPHA) -> tuple[float, float]:
    """SP 800-22 4.2.1: the acceptable range of the proportion of passing sequences."""
    p_hat = 1.0 - alpha
    half = 3.0 * math.sqrt(p_hat * alpha / sequences)
    return p_hat - half, p_hat + half


def uniformity(pvalues: list[float]) -> tuple[tuple[int, ...], float]:
    """SP 800-22 4.2.2: the histogram of p-values in ten bins and the chi-square P-value_T."""
    counts = np.histogram(np.clip(pvalues, 0.0, 1.0), bins=10, range=(0.0, 1.0))[0]
    expected = len(pvalues) / 10.0
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    return tuple(int(c) for c in counts), igamc(9 / 2, chi2 / 2)


@dataclass(frozen=True)
class Line:
    """One line of the final analysis: a sub-test's results across the sequences."""

    test: str
    subtest: str
    sequences: int
    passed: int
    proportion_low: float
    histogram: tuple[int, ...]
    uniformity_p: float | None

    @property
    def label(self) -> str:
        """The test and sub-test, as one name."""
        return f"{self.test} {self.subtest}".strip()

    @property
    def applicable(self) -> bool:
        """Whether any sequence qualified for the test."""
        return self.sequences > 0

    @property
    def proportion_ok(self) -> bool:
        """Whether the proportion of passing sequences is in range."""
        return self.passed >= self.proportion_low * self.sequences

    @property
    def uniformity_ok(self) -> bool:
        """Whether the p-values are uniform (trivially true below 55 sequences, where it is not judged)."""
        return self.uniformity_p is None or self.uniformity_p >= UNIFORMITY_ALPHA

    @property
    def ok(self) -> bool:
        """Whether the line passes both SP 800-22 checks."""
        return not self.applicable or (self.proportion_ok and self.uniformity_ok)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "test": self.test,
            "subtest": self.subtest,
            "sequences": self.sequences,
            "passed": self.passed,
            "proportion": self.passed / self.sequences if self.sequences else None,
            "proportion_min": self.proportion_low,
            "proportion_ok": self.proportion_ok,
            "histogram": list(self.histogram),
            "uniformity_p": self.uniformity_p,
            "uniformity_ok": self.uniformity_ok,
            "ok": self.ok,
        }


def summarise(results: list[dict[str, PValues | None]], tests: tuple[NistTest, ...]) -> list[Line]:
    """Fold per-sequence p-values into one line per sub-test."""
    lines = []
    for test in tests:
        for sub in test.subtests:
            pvalues = [values[sub] for r in results if (values := r[test.name]) is not None]
            count = len(pvalues)
            histogram, uniform_p = uniformity(pvalues) if count else ((0,) * 10, None)
            lines.append(
                Line(
                    test=test.name,
                    subtest=sub,
                    sequences=count,
                    passed=sum(p >= ALPHA for p in pvalues),
                    proportion_low=proportion_bounds(count)[0] if count else 0.0,
                    histogram=histogram,
                    uniformity_p=uniform_p if count >= UNIFORMITY_MIN_SEQUENCES else None,
                )
            )
    return lines


@contextmanager
def pool(workers: int) -> Iterator[Executor | None]:
    """Yield a pool of ``workers`` spawned processes (no parent state shared), or None for in-process."""
    if workers <= 1:
        yield None
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as executor:
        yield executor


def run_tests(
    read: ByteReader, sequences: int, bits: int, tests: tuple[NistTest, ...], executor: Executor | None
) -> list[Line]:
    """Draw ``sequences`` fresh sequences of ``bits`` bits from ``read`` and run ``tests`` on each."""
    names = tuple(test.name for test in tests)
    size = (bits + 7) // 8
    if executor is None:
        results = [run_sequence(read(size), bits, names) for _ in range(sequences)]
    else:
        futures = [executor.submit(run_sequence, read(size), bits, names) for _ in range(sequences)]
        results = [future.result() for future in futures]
    return summarise(results, tests)


@dataclass(frozen=True)
class BatteryResult:
    """The battery over one generator: the first run, and the re-run of any test that failed it."""

    sequences: int
    bits: int
    lines: tuple[Line, ...]
    reruns: tuple[Line, ...]
    tests: tuple[str, ...]

    def verdict(self, line: Line) -> bool:
        """Judge a line: it passes on its first run, or fails then passes on fresh data (SP 800-22)."""
        if line.ok:
            return True
        rerun = next((r for r in self.reruns if r.label == line.label), None)
        return rerun is not None and rerun.ok

    def rerun_of(self, line: Line) -> Line | None:
        """Return the re-run of a line that failed, if any."""
        return next((r for r in self.reruns if r.label == line.label), None)

    @property
    def ok(self) -> bool:
        """Whether every applicable line passes."""
        return all(self.verdict(line) for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "sequences": self.sequences,
            "bits": self.bits,
            "tests": list(self.tests),
            "lines": [
                {
                    **line.to_dict(),
                    "rerun": (rerun.to_dict() if (rerun := self.rerun_of(line)) else None),
                    "verdict": "PASS" if self.verdict(line) else ("N/A" if not line.applicable else "FAIL"),
                }
                for line in self.lines
            ],
            "ok": self.ok,
        }


def run_battery(
    read: ByteReader, sequences: int, bits: int, executor: Executor | None = None
) -> BatteryResult:
    """Run every applicable test on ``sequences`` x ``bits``, re-running failed tests once on fresh data."""
    tests = applicable_tests(bits)
    lines = run_tests(read, sequences, bits, tests, executor)
    failed = tuple(TESTS_BY_NAME[name] for name in dict.fromkeys(ln.test for ln in lines if not ln.ok))
    reruns = run_tests(read, sequences, bits, failed, executor) if failed else []
    return BatteryResult(sequences, bits, tuple(lines), tuple(reruns), tuple(t.name for t in tests))


def default_workers() -> int:
    """One worker per core."""
    return max(1, os.cpu_count() or 1)
