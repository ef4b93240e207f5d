"""Run the whole battery on the production generators and write the certification report (MD and JSON)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import rng
from rng.fair import FairSource, commitment, new_server_seed
from rng.source import SecureSource
from rng.stats import ALPHA, nist
from rng.stats.outcomes import (
    TestOutcome,
    card_position_test,
    columns_tests,
    outcome_tests,
    shuffle_positions,
)
from rng.stats.report import render_markdown

GENERATORS = ("secure", "fair")
FAIR_CLIENT_SEED = "croupier-certification"
TYPICAL_STRIPS = (33, 40, 47, 55, 64)
ROULETTE_POCKETS = 37
DICE_OUTCOMES = 10_000
SHUFFLE_DECK = 10
CHUNK_ROUNDS = 50_000
CORE_MODULES = ("source.py", "fair.py")
REPORT_NAME = "rng-certification-report"

Table = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Generator:
    """Which generator a task draws from; for the fair one, the seeds (a task draws from its own nonces)."""

    kind: str
    server_seed: bytes = b""
    client_seed: str = FAIR_CLIENT_SEED

    def source(self, nonce: int) -> SecureSource | FairSource:
        """Return the source for one round: the OS generator, or the fair source of that nonce."""
        if self.kind == "secure":
            return SecureSource()
        return FairSource(self.server_seed, self.client_seed, nonce)

    def describe(self) -> dict[str, Any]:
        """Return what the report says about the generator."""
        if self.kind == "secure":
            return {"kind": "secure", "generator": "SecureSource: os.urandom (kernel getrandom), per draw"}
        return {
            "kind": "fair",
            "generator": "FairSource: HMAC-SHA256(server_seed, 'client_seed:nonce:cursor'), a nonce a round",
            "server_seed": self.server_seed.hex(),
            "commitment": commitment(self.server_seed),
            "client_seed": self.client_seed,
        }


def draw_rounds(generator: Generator, first_nonce: int, rounds: int, ranges: tuple[int, ...]) -> Table:
    """Play ``rounds`` rounds, each drawing ``randbelow(n)`` for every ``n`` in ``ranges`` (a pool task)."""
    out = np.empty((rounds, len(ranges)), dtype=np.int64)
    secure = SecureSource() if generator.kind == "secure" else None
    for index in range(rounds):
        source = secure if secure is not None else generator.source(first_nonce + index)
        for column, n in enumerate(ranges):
            out[index, column] = source.randbelow(n)
    return out


def shuffle_table(generator: Generator, first_nonce: int, shuffles: int, deck: int) -> Table:
    """Card-by-position counts over ``shuffles`` shuffles, one round (nonce) per shuffle (a pool task)."""
    if generator.kind == "secure":
        secure = SecureSource()
        return shuffle_positions((secure for _ in range(shuffles)), deck)
    return shuffle_positions((generator.source(first_nonce + i) for i in range(shuffles)), deck)


def raw_bytes(size: int) -> Table:
    """Raw bytes of the OS generator, before any scaling, as one column (a pool task)."""
    return np.frombuffer(SecureSource().read_bytes(size), dtype=np.uint8).astype(np.int64).reshape(-1, 1)


@dataclass(frozen=True)
class Scenario:
    """A kind of round whose outcomes are tested: the ranges drawn per round and how many rounds."""

    name: str
    description: str
    ranges: tuple[int, ...]
    rounds: int
    kind: str = "rounds"  # "rounds", "raw" (bytes before scaling) or "shuffle"


@dataclass
class ScenarioResult:
    """A scenario's tests, and the re-run on fresh data of any that failed."""

    scenario: Scenario
    tests: list[tuple[str, TestOutcome]]
    reruns: list[tuple[str, TestOutcome]] = field(default_factory=list)

    def rerun_of(self, label: str, test: TestOutcome) -> TestOutcome | None:
        """Return the re-run of one test, if it was re-run."""
        return next((t for lbl, t in self.reruns if lbl == label and t.name == test.name), None)

    def verdict(self, label: str, test: TestOutcome) -> str:
        """PASS on the first run or on the re-run after a failure; N/A when the test could not run."""
        if not test.applicable:
            return "N/A"
        if test.passed:
            return "PASS"
        rerun = self.rerun_of(label, test)
        return "PASS" if rerun is not None and rerun.passed else "FAIL"

    @property
    def ok(self) -> bool:
        """Whether no test failed twice."""
        return all(self.verdict(label, test) != "FAIL" for label, test in self.tests)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "ranges": list(self.scenario.ranges),
            "rounds": self.scenario.rounds,
            "tests": [
                {
                    "draw": label,
                    **test.to_dict(),
                    "rerun": (rerun.to_dict() if (rerun := self.rerun_of(label, test)) else None),
                    "verdict": self.verdict(label, test),
                }
                for label, test in self.tests
            ],
            "ok": self.ok,
        }


class Nonces:
    """Hands out fresh nonces for the fair generator, so that no round of a run reuses one."""

    def __init__(self) -> None:
        self._next = 0

    def take(self, count: int) -> int:
        """Reserve ``count`` consecutive nonces and return the first."""
        first = self._next
        self._next += count
        return first


def _chunks(total: int, size: int) -> Iterator[int]:
    while total > 0:
        yield min(size, total)
        total -= size


def _submit(executor: Executor | None, fn: Callable[..., Table], *args: object) -> Callable[[], Table]:
    if executor is None:
        result = fn(*args)
        return lambda: result
    future = executor.submit(fn, *args)
    return future.result


def run_scenario(
    scenario: Scenario, generator: Generator, nonces: Nonces, executor: Executor | None
) -> list[tuple[str, TestOutcome]]:
    """Draw the scenario's outcomes afresh (in parallel chunks) and test them."""
    pending = []
    for rounds in _chunks(scenario.rounds, CHUNK_ROUNDS):
        first = nonces.take(rounds)
        if scenario.kind == "raw":
            pending.append(_submit(executor, raw_bytes, rounds))
        elif scenario.kind == "shuffle":
            pending.append(_submit(executor, shuffle_table, generator, first, rounds, scenario.ranges[0]))
        else:
            pending.append(_submit(executor, draw_rounds, generator, first, rounds, scenario.ranges))
    parts = [result() for result in pending]
    if scenario.kind == "shuffle":
        return [(f"{scenario.ranges[0]} cards", card_position_test(np.sum(parts, axis=0)))]
    table = np.concatenate(parts)
    if scenario.kind == "raw":
        return [("bytes", test) for test in outcome_tests(table[:, 0], 256)]
    columns = [table[:, index] for index in range(len(scenario.ranges))]
    return columns_tests(columns, scenario.ranges)


def check_scenario(
    scenario: Scenario, generator: Generator, nonces: Nonces, executor: Executor | None
) -> ScenarioResult:
    """Run a scenario, and once more on fresh data if any test failed."""
    result = ScenarioResult(scenario, run_scenario(scenario, generator, nonces, executor))
    if not all(test.passed for _, test in result.tests):
        result.reruns = run_scenario(scenario, generator, nonces, executor)
    return result


def strip_lengths(slot_config: Path) -> tuple[tuple[int, ...], str]:
    """Return the slot's reel strip lengths from its configuration, or typical lengths without one."""
    try:
        data = tomllib.loads(slot_config.read_text(encoding="utf-8"))
        lengths = tuple(len(reel["strip"]) for reel in data["reels"])
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
        return TYPICAL_STRIPS, "typical lengths (no slot configuration found)"
    if not lengths:
        return TYPICAL_STRIPS, "typical lengths (the slot configuration has no reels)"
    return lengths, str(slot_config)


def scenarios(generator: str, outcomes: int, slot_config: Path) -> list[Scenario]:
    """Return the outcome scenarios for a generator, sized from ``outcomes`` draws per single-draw game."""
    lengths, origin = strip_lengths(slot_config)
    spins = max(1, outcomes * 2 // 5)
    result = []
    if generator == "secure":
        result.append(
            Scenario("raw bytes", "raw output before scaling (collection tool 1)", (256,), outcomes, "raw")
        )
    result += [
        Scenario("roulette", "European roulette pocket, randbelow(37)", (ROULETTE_POCKETS,), outcomes),
        Scenario("slot spin", f"one stop per reel, strip lengths from {origin}", lengths, spins),
    ]
    if lengths != TYPICAL_STRIPS:
        result.append(
            Scenario("reel strips 33..64", "typical strip lengths, not powers of two", TYPICAL_STRIPS, spins)
        )
    result += [
        Scenario("dice", "dice roll, randbelow(10000)", (DICE_OUTCOMES,), outcomes),
        Scenario(
            "shuffle", "Fisher-Yates shuffle of 10 cards", (SHUFFLE_DECK,), max(1, outcomes // 10), "shuffle"
        ),
    ]
    return result


def module_hashes() -> dict[str, str]:
    """SHA-256 of every RNG and certification module (the games live elsewhere and are certified apart)."""
    root = Path(rng.__file__).resolve().parent
    files = sorted(p for p in root.rglob("*.py") if "games" not in p.relative_to(root).parts)
    return {
        f"rng/{p.relative_to(root).as_posix()}": hashlib.sha256(p.read_bytes()).hexdigest() for p in files
    }


def core_hash() -> str:
    """One SHA-256 over the modules that produce outcomes (source.py then fair.py), for the pin."""
    root = Path(rng.__file__).resolve().parent
    digest = hashlib.sha256()
    for name in CORE_MODULES:
        digest.update((root / name).read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class CertifyOptions:
    """Sizes and choices of one certification run."""

    sequences: int = 100
    bits: int = 1_000_000
    outcomes: int = 1_000_000
    workers: int = field(default_factory=nist.default_workers)
    generators: tuple[str, ...] = GENERATORS
    fair_seed: bytes | None = None
    slot_config: Path = Path("config/games/slot.toml")


def _fair_reader(generator: Generator, nonces: Nonces) -> Callable[[int], bytes]:
    # Each NIST sequence is one round's whole stream (cursor 0, 1, 2, ...) at a fresh nonce.
    def read(size: int) -> bytes:
        return generator.source(nonces.take(1)).read_bytes(size)

    return read


def certify(options: CertifyOptions, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run the NIST battery and the outcome tests on each generator; return the report."""
    started = time.perf_counter()
    report: dict[str, Any] = {
        "title": "Croupier RNG certification report",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": (
            f"croupier rng certify --sequences {options.sequences} --bits {options.bits} "
            f"--outcomes {options.outcomes} --generator {','.join(options.generators)}"
        ),
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "workers": options.workers,
            "numpy": np.__version__,
            "sp80022suite": importlib.metadata.version("sp80022suite"),
        },
        "alpha": ALPHA,
        "uniformity_alpha": nist.UNIFORMITY_ALPHA,
        "modules": module_hashes(),
        "core_sha256": core_hash(),
        "core_modules": [f"rng/{name}" for name in CORE_MODULES],
        "excluded_nist_tests": nist.EXCLUDED,
        "generators": {},
    }
    with nist.pool(options.workers) as executor:
        for kind in options.generators:
            generator = (
                Generator("secure")
                if kind == "secure"
                else Generator("fair", options.fair_seed or new_server_seed(), FAIR_CLIENT_SEED)
            )
            nonces = Nonces()
            read = SecureSource().read_bytes if kind == "secure" else _fair_reader(generator, nonces)
            progress(f"{kind}: NIST SP 800-22, {options.sequences} x {options.bits} bits")
            tick = time.perf_counter()
            battery = nist.run_battery(read, options.sequences, options.bits, executor)
            nist_s = time.perf_counter() - tick
            results = []
            tick = time.perf_counter()
            for scenario in scenarios(kind, options.outcomes, options.slot_config):
                progress(f"{kind}: {scenario.name}, {scenario.rounds:,} rounds")
                results.append(check_scenario(scenario, generator, nonces, executor))
            outcomes_s = time.perf_counter() - tick
            report["generators"][kind] = {
                **generator.describe(),
                "nist": battery.to_dict(),
                "nist_elapsed_s": round(nist_s, 1),
                "outcomes": [r.to_dict() for r in results],
                "outcomes_elapsed_s": round(outcomes_s, 1),
                "ok": battery.ok and all(r.ok for r in results),
            }
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    report["verdict"] = "PASS" if all(g["ok"] for g in report["generators"].values()) else "FAIL"
    return report


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write the report as ``rng-certification-report.md`` and ``.json`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{REPORT_NAME}.json"
    md_path = out_dir / f"{REPORT_NAME}.md"
    json_path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return md_path, json_path
