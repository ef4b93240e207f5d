"""The statistical battery: NIST SP 800-22, the outcome tests, and the whole on good and broken generators."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import sp80022suite

import rng
from rng.fair import FairSource, fair_block
from rng.source import ReplaySource, Source
from rng.stats import certify, nist, outcomes

SEED = hashlib.sha256(b"croupier statistical tests").digest()
# SP 800-22 section 2.13.8's 100-bit example sequence.
EPSILON_100 = (
    "1100100100001111110110101010001000100001011010001100001000110100110001001100011001100010100010111000"
)
REPO = Path(rng.__file__).resolve().parents[1]


def bits(text: str) -> nist.Bits:
    return np.array([int(c) for c in text], dtype=np.uint8)


def fair_reader(label: str) -> Callable[[int], bytes]:
    """Return a deterministic, good byte stream: one fresh FairSource round per read."""
    nonces = itertools.count()

    def read(size: int) -> bytes:
        return FairSource(SEED, label, next(nonces)).read_bytes(size)

    return read


def fair_outcomes(n: int, count: int, label: str = "outcomes") -> outcomes.Outcomes:
    return outcomes.draw(FairSource(SEED, label, 0), n, count)


def test_worked_examples_of_sp800_22() -> None:
    """Values from SP 800-22 rev. 1a's examples (serial with the corrected igamc, as the reference code)."""
    assert nist.cumulative_sums(bits("1011010111"))["forward"] == pytest.approx(0.4116588, abs=1e-6)
    sums = nist.cumulative_sums(bits(EPSILON_100))
    assert sums["forward"] == pytest.approx(0.219194, abs=1e-6)
    assert sums["backward"] == pytest.approx(0.114866, abs=1e-6)
    serial = nist.serial(bits("0011011101"), 3)
    assert serial["1"] == pytest.approx(0.808792, abs=1e-6)
    assert serial["2"] == pytest.approx(0.670320, abs=1e-6)
    excursions = nist.random_excursions(bits("0110110101"), require_cycles=False)
    assert excursions is not None
    assert excursions["x=+1"] == pytest.approx(0.502529, abs=1e-4)
    variant = nist.random_excursions_variant(bits("0110110101"), require_cycles=False)
    assert variant is not None
    assert variant["x=+1"] == pytest.approx(0.683091, abs=1e-6)
    frequency = nist.TESTS_BY_NAME["frequency"].run(bits(EPSILON_100), bits(EPSILON_100).tobytes())
    assert frequency == {"": pytest.approx(0.109599, abs=1e-6)}


def test_numpy_tests_agree_with_the_reference_code() -> None:
    """Our per-sub-test p-values have the minimum that the C extension returns, applicability included."""
    applicable = 0
    # Nonce 0 has 128 cycles (not applicable), nonce 3 has 971: both branches are compared.
    for nonce in (0, 3):
        sequence = nist.bits_from_bytes(FairSource(SEED, "reference", nonce).read_bytes(125_000))
        raw = sequence.tobytes()
        assert min(nist.serial(sequence, 16).values()) == pytest.approx(
            sp80022suite.serial(16, raw), abs=1e-12
        )
        assert min(nist.cumulative_sums(sequence).values()) == pytest.approx(
            sp80022suite.cumulative_sums(raw), abs=1e-12
        )
        for ours, theirs in (
            (nist.random_excursions, sp80022suite.random_excursions),
            (nist.random_excursions_variant, sp80022suite.random_excursions_variant),
        ):
            result = ours(sequence)
            if result is None:
                with pytest.raises(ValueError, match="cycles"):
                    theirs(raw)
            else:
                applicable += 1
                assert min(result.values()) == pytest.approx(theirs(raw), abs=1e-12)
    assert applicable == 2


def test_proportion_bound_and_uniformity_follow_sp800_22() -> None:
    low, high = nist.proportion_bounds(100)
    assert 96 < low * 100 < 97
    assert high > 1
    histogram, p_uniform = nist.uniformity([i / 100 + 0.005 for i in range(100)])
    assert histogram == (10,) * 10
    assert p_uniform == pytest.approx(1.0)
    _, p_skewed = nist.uniformity([0.05] * 100)
    assert p_skewed < nist.UNIFORMITY_ALPHA


def test_tests_too_long_for_the_sequence_are_left_out() -> None:
    names = {t.name for t in nist.applicable_tests(100_000)}
    assert "universal" not in names
    assert {"frequency", "linear_complexity", "overlapping_template_matchings", "serial"} <= names
    assert "universal" in {t.name for t in nist.applicable_tests(1_000_000)}
    assert "non_overlapping_template_matchings" not in {t.name for t in nist.TESTS}
    assert "non_overlapping_template_matchings" in nist.EXCLUDED


def test_battery_passes_a_good_generator() -> None:
    result = nist.run_battery(fair_reader("good"), 12, 100_000)
    assert result.ok
    by_test = {line.test for line in result.lines}
    assert {"frequency", "block_frequency", "runs", "longest_run_of_ones", "rank"} <= by_test
    assert {"discrete_fourier_transform", "linear_complexity", "approximate_entropy"} <= by_test
    assert all(line.sequences == 12 for line in result.lines if not line.test.startswith("random_excursions"))


def test_battery_fails_a_constant_generator_even_after_the_rerun() -> None:
    result = nist.run_battery(bytes, 5, 20_000)
    assert not result.ok
    frequency = next(line for line in result.lines if line.test == "frequency")
    assert frequency.passed == 0
    rerun = result.rerun_of(frequency)
    assert rerun is not None
    assert not rerun.ok
    assert result.to_dict()["lines"][0]["verdict"] == "FAIL"


def test_battery_fails_a_biased_generator() -> None:
    """Bits that are 1 with probability 0.55, from an otherwise good stream."""
    good = fair_reader("biased")

    def biased(size: int) -> bytes:
        uniform = np.frombuffer(good(size * 8), dtype=np.uint8)
        return np.packbits(uniform < 141).tobytes()

    result = nist.run_battery(biased, 5, 20_000)
    assert not result.ok
    failed = {line.test for line in result.lines if not result.verdict(line)}
    assert {"frequency", "cumulative_sums"} <= failed


def test_chi_square_accepts_uniform_and_rejects_modulo_bias() -> None:
    exact = np.repeat(np.arange(37), 100)
    balanced = outcomes.chi_square_uniform(exact, 37)
    assert balanced.statistic == 0
    assert balanced.p_value == pytest.approx(1.0)
    assert outcomes.chi_square_uniform(fair_outcomes(37, 200_000), 37).passed
    stream = b"".join(fair_block(SEED, "modulo", 0, cursor) for cursor in range(200_000 // 32))
    modulo = np.frombuffer(stream, dtype=np.uint8).astype(np.int64) % 37
    biased = outcomes.chi_square_uniform(modulo, 37)
    assert biased.p_value < 1e-6
    assert not biased.passed


def test_serial_correlation_catches_a_sticky_source() -> None:
    good = fair_outcomes(37, 50_000)
    assert outcomes.serial_correlation(good).passed
    repeat = FairSource(SEED, "sticky", 0)
    sticky = good.copy()
    for i in range(1, len(sticky)):
        if repeat.randbelow(4) == 0:
            sticky[i] = sticky[i - 1]
    result = outcomes.serial_correlation(sticky)
    assert not result.passed
    assert result.details["lags"]["1"]["r"] > 0.2


def test_pairs_catch_a_source_whose_second_draw_follows_the_first() -> None:
    good = fair_outcomes(37, 100_000)
    assert outcomes.consecutive_pairs(good, 37).passed
    follow = good.copy()
    follow[1::2] = (follow[0::2] + 1) % 37
    assert outcomes.chi_square_uniform(follow, 37).passed
    assert not outcomes.consecutive_pairs(follow, 37).passed
    assert outcomes.pair_bins(10_000) == 100
    assert outcomes.pair_bins(37) == 37
    assert outcomes.pair_bins(101) == 1
    assert not outcomes.consecutive_pairs(fair_outcomes(101, 1000), 101).applicable


def test_runs_and_gaps_catch_a_too_regular_source() -> None:
    good = fair_outcomes(10_000, 100_000, "regular")
    assert outcomes.runs_about_median(good, 10_000).passed
    assert outcomes.gap_test(good, 10_000).passed
    cycling = np.tile(np.arange(10_000), 10)
    assert outcomes.chi_square_uniform(cycling, 10_000).p_value == pytest.approx(1.0)
    assert not outcomes.runs_about_median(cycling, 10_000).passed
    assert not outcomes.gap_test(cycling, 10_000).passed
    alternating = np.tile([3, 30], 5_000)
    assert not outcomes.runs_about_median(alternating, 37).passed


def naive_shuffle(source: Source, items: list[int]) -> None:
    """Shuffle the classic wrong way: swap every position with any position (n^n paths, n! orders)."""
    for i in range(len(items)):
        j = source.randbelow(len(items))
        items[i], items[j] = items[j], items[i]


def test_card_position_table_passes_fisher_yates_and_catches_the_naive_shuffle() -> None:
    shuffles = 10_000
    good = outcomes.shuffle_positions((FairSource(SEED, "deck", n) for n in range(shuffles)), 4)
    assert (good.sum(axis=0) == shuffles).all()
    assert outcomes.card_position_test(good).passed
    bad = np.zeros((4, 4), dtype=np.int64)
    for nonce in range(shuffles):
        cards = [0, 1, 2, 3]
        naive_shuffle(FairSource(SEED, "naive", nonce), cards)
        bad[cards, np.arange(4)] += 1
    assert not outcomes.card_position_test(bad).passed


def test_columns_of_a_round_are_tested_alone_and_in_adjacent_pairs() -> None:
    source = FairSource(SEED, "spin", 0)
    ranges = (32, 33, 47)
    table = np.array([[source.randbelow(n) for n in ranges] for _ in range(40_000)])
    results = outcomes.columns_tests([table[:, i] for i in range(3)], ranges)
    labels = [label for label, _ in results]
    assert labels.count("draws 1 and 2 of the same round") == 1
    assert labels.count("draw 3 of 3 (n = 47)") == 5
    # About 17 tests at alpha = 0.01: one may land under it by chance, none anywhere near zero.
    assert all(test.p_value > 1e-3 for _, test in results)
    copied = table.copy()
    copied[:, 1] = copied[:, 0]
    results = outcomes.columns_tests([copied[:, i] for i in range(3)], (32, 32, 47))
    assert not dict(results)["draws 1 and 2 of the same round"].passed


def test_replayed_draws_feed_the_outcome_tests_like_any_source() -> None:
    values = outcomes.draw(ReplaySource([(37, v % 37) for v in range(370)]), 37, 370)
    assert outcomes.chi_square_uniform(values, 37).statistic == 0


def test_strip_lengths_come_from_the_slot_config_or_typical_values(tmp_path: Path) -> None:
    config = tmp_path / "slot.toml"
    config.write_text('[[reels]]\nstrip = ["A", "B", "C"]\n[[reels]]\nstrip = ["A", "B"]\n')
    assert certify.strip_lengths(config) == ((3, 2), str(config))
    assert certify.strip_lengths(tmp_path / "missing.toml")[0] == certify.TYPICAL_STRIPS
    assert tuple(sorted(certify.TYPICAL_STRIPS)) == certify.TYPICAL_STRIPS
    assert min(certify.TYPICAL_STRIPS) >= 32
    assert max(certify.TYPICAL_STRIPS) <= 64


def test_the_certification_report_pins_the_current_rng_modules() -> None:
    """Change control (requirement 11): docs/ holds a passing report made from the RNG code as it is."""
    report = json.loads((REPO / "docs" / "rng-certification-report.json").read_text(encoding="utf-8"))
    assert report["verdict"] == "PASS"
    assert report["core_sha256"] == certify.core_hash()
    current = certify.module_hashes()
    for module in ("rng/source.py", "rng/fair.py"):
        assert report["modules"][module] == current[module], f"{module} changed since certification"
    secure = report["generators"]["secure"]
    assert secure["nist"]["sequences"] >= 100
    assert secure["nist"]["bits"] >= 1_000_000
    assert (REPO / "docs" / "rng-certification-report.md").is_file()
