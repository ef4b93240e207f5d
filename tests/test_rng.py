"""The RNG: OS-only entropy, unbiased scaling and shuffle, fork safety, provably fair draws, the CLI."""

from __future__ import annotations

import argparse
import ast
import hashlib
import hmac
import itertools
import json
import math
import multiprocessing
import os
from collections import Counter
from pathlib import Path

import pytest

import rng
from rng.cli import register
from rng.fair import (
    FairSource,
    SeedPair,
    check_commitment,
    commitment,
    fair_block,
    parse_server_seed,
    replay_draws,
    verify_draws,
)
from rng.source import (
    RecordingSource,
    ReplayMismatchError,
    ReplaySource,
    SecureSource,
    StreamSource,
    shuffle,
    weighted_index,
)

SEED = bytes(range(32))
# HMAC-SHA256(bytes(range(32)), b"player-seed:7:0") and b"...:7:1", computed independently and pinned.
BLOCK_0 = bytes.fromhex("47b6c6f9b0d2730e7cae6d8fb15f9b3b20a53d96f80f0592132b25cf9ad46800")
BLOCK_1 = bytes.fromhex("38c4ba3107c930fda35a8cbb28fc51378b23ba1ce21c5ef6559f6ed29b587abc")
SEED_SHA256 = "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"


class ExhaustedError(Exception):
    """The enumerating reader has handed out every input."""


class EnumeratingReader:
    """Hands out every ``size``-byte input once, in order, each shifted left by ``shift`` bits."""

    def __init__(self, size: int, values: int, shift: int = 0) -> None:
        self._inputs = iter(range(values))
        self._size = size
        self._shift = shift

    def read(self, size: int) -> bytes:
        """Return the next input."""
        assert size == self._size, f"asked for {size} bytes, enumerating {self._size}-byte inputs"
        value = next(self._inputs, None)
        if value is None:
            raise ExhaustedError
        return (value << self._shift).to_bytes(size, "big")


def enumerate_buckets(n: int, size: int, values: int, shift: int = 0) -> Counter[int]:
    """Feed every input to ``randbelow(n)`` and count the accepted outcomes."""
    source = StreamSource(EnumeratingReader(size, values, shift).read)
    counts: Counter[int] = Counter()
    while True:
        try:
            counts[source.randbelow(n)] += 1
        except ExhaustedError:
            return counts


@pytest.mark.parametrize("n", [*range(2, 257), 257, 1000, 1369, 10_000, 65_535, 65_536])
def test_scaling_gives_exactly_equal_buckets_over_all_inputs(n: int) -> None:
    """Every 1- or 2-byte input once: after rejection each of the n outcomes is hit exactly equally often."""
    size = max(1, ((n - 1).bit_length() + 7) // 8)
    counts = enumerate_buckets(n, size, 256**size)
    bits = (n - 1).bit_length()
    assert sorted(counts) == list(range(n))
    assert set(counts.values()) == {256**size >> bits}


def test_scaling_over_three_bytes_is_exact_on_every_significant_input() -> None:
    """For n = 100,003 (17 bits in 3 bytes) every value of the 17 bits used gives equal buckets."""
    n = 100_003
    counts = enumerate_buckets(n, 3, 1 << 17, shift=7)
    assert len(counts) == n
    assert set(counts.values()) == {1}


def test_modulo_would_have_been_biased_on_the_same_inputs() -> None:
    """The enumeration has teeth: reducing the same 256 bytes modulo 37 gives unequal buckets."""
    counts = Counter(value % 37 for value in range(256))
    assert len(set(counts.values())) == 2


def test_randbelow_checks_its_range_and_spends_nothing_on_one() -> None:
    def no_bytes(size: int) -> bytes:
        raise AssertionError(f"read {size} bytes for n = 1")

    source = StreamSource(no_bytes)
    assert source.randbelow(1) == 0
    with pytest.raises(ValueError, match=">= 1"):
        source.randbelow(0)
    with pytest.raises(TypeError):
        source.randbelow(True)  # noqa: FBT003 -- a bool is the wrong type on purpose
    with pytest.raises(TypeError):
        source.randbelow(2.0)  # type: ignore[arg-type]


def test_secure_source_reads_the_os_generator_for_every_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only os.urandom feeds SecureSource, afresh for each draw (nothing buffered in user space)."""
    sizes: list[int] = []
    real = os.urandom

    def watched(size: int) -> bytes:
        sizes.append(size)
        return real(size)

    monkeypatch.setattr(os, "urandom", watched)
    source = SecureSource()
    values = [source.randbelow(37) for _ in range(50)]
    assert all(0 <= v < 37 for v in values)
    assert len(sizes) >= 50
    assert set(sizes) == {1}
    assert len(source.read_bytes(1000)) == 1000
    assert sizes[-1] == 1000


def _first_output(source: SecureSource, conn: multiprocessing.connection.Connection) -> None:
    conn.send(source.read_bytes(32) + source.randbelow(2**64).to_bytes(8, "big"))
    conn.close()


def test_forked_workers_never_repeat_each_other_or_the_parent() -> None:
    """Fork 8 workers from a parent that already drew: every first output differs (requirement 4)."""
    source = SecureSource()
    parent = source.read_bytes(40)
    context = multiprocessing.get_context("fork")
    outputs = [parent]
    for _ in range(8):
        receiver, sender = context.Pipe(duplex=False)
        worker = context.Process(target=_first_output, args=(source, sender))
        worker.start()
        outputs.append(receiver.recv())
        worker.join(timeout=30)
        assert worker.exitcode == 0
    assert len(set(outputs)) == len(outputs)
    assert outputs[1:] != [parent] * 8


def test_weighted_index_uses_integer_weights_exactly() -> None:
    """Over every value of randbelow(total) each index is picked exactly its weight's number of times."""
    weights = [3, 0, 5, 1, 7]
    total = sum(weights)
    picks = Counter(weighted_index(ReplaySource([(total, r)]), weights) for r in range(total))
    assert picks == Counter({0: 3, 2: 5, 3: 1, 4: 7})
    with pytest.raises(TypeError):
        weighted_index(ReplaySource([(1, 0)]), [0.5, 0.5])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="positive total"):
        weighted_index(ReplaySource([(1, 0)]), [0, 0])
    with pytest.raises(ValueError, match=">= 0"):
        weighted_index(ReplaySource([(1, 0)]), [2, -1])


@pytest.mark.parametrize("size", [3, 4, 5])
def test_shuffle_gives_every_permutation_exactly_once_over_all_draws(size: int) -> None:
    """Fisher-Yates over every possible sequence of draws yields each of the n! permutations once."""
    ranges = list(range(size, 1, -1))
    seen: Counter[tuple[int, ...]] = Counter()
    for values in itertools.product(*(range(n) for n in ranges)):
        replay = ReplaySource(list(zip(ranges, values, strict=True)))
        items = list(range(size))
        shuffle(replay, items)
        assert replay.exhausted
        seen[tuple(items)] += 1
    assert len(seen) == math.factorial(size)
    assert set(seen.values()) == {1}


def test_recording_then_replaying_reproduces_every_draw() -> None:
    recorder = RecordingSource(FairSource(SEED, "player-seed", 1))
    values = [recorder.randbelow(n) for n in (37, 10_000, 2, 1, 64)]
    assert recorder.draws == list(zip((37, 10_000, 2, 1, 64), values, strict=True))
    replay = ReplaySource(recorder.draws)
    assert [replay.randbelow(n) for n in (37, 10_000, 2, 1, 64)] == values
    assert replay.exhausted


def test_replay_refuses_a_different_range_or_one_draw_too_many() -> None:
    replay = ReplaySource([(37, 5), (10, 9)])
    assert not replay.exhausted
    assert replay.randbelow(37) == 5
    with pytest.raises(ReplayMismatchError, match="range 11 asked, range 10 recorded"):
        replay.randbelow(11)
    assert replay.randbelow(10) == 9
    with pytest.raises(ReplayMismatchError, match="only 2 draws"):
        replay.randbelow(10)
    with pytest.raises(ReplayMismatchError, match="not in"):
        ReplaySource([(10, 10)])


def test_fair_source_matches_the_hand_computed_hmac_vector() -> None:
    """The bytes are HMAC-SHA256(seed, 'client:nonce:cursor'); randbelow(37) keeps each byte's top 6 bits."""
    assert fair_block(SEED, "player-seed", 7, 0) == BLOCK_0
    assert hmac.new(SEED, b"player-seed:7:1", hashlib.sha256).digest() == BLOCK_1
    expected = [b >> 2 for b in BLOCK_0 if b >> 2 < 37][:8]
    assert expected == [17, 28, 3, 31, 27, 35, 23, 14]
    source = FairSource(SEED, "player-seed", 7)
    assert [source.randbelow(37) for _ in range(8)] == expected
    assert source.blocks_used == 1


def test_fair_source_takes_more_blocks_as_needed() -> None:
    """Past 32 bytes the cursor moves to the next block; a draw may straddle two blocks."""
    source = FairSource(SEED, "player-seed", 7)
    stream = BLOCK_0 + BLOCK_1
    assert source.randbelow(256) == stream[0]
    two_byte = [source.randbelow(65_536) for _ in range(16)]
    assert two_byte == [int.from_bytes(stream[1 + 2 * i : 3 + 2 * i], "big") for i in range(16)]
    assert source.blocks_used == 2
    assert source.read_bytes(31) == BLOCK_1[1:]
    assert source.read_bytes(1) == fair_block(SEED, "player-seed", 7, 2)[:1]
    assert source.blocks_used == 3


def test_fair_source_rejects_instead_of_reducing() -> None:
    """randbelow(129) (8 bits, half rejected) is rejection over the stream, never modulo or float."""
    stream = b"".join(fair_block(SEED, "c", 3, cursor) for cursor in range(4))
    expected = [b for b in stream if b < 129][:40]
    source = FairSource(SEED, "c", 3)
    assert [source.randbelow(129) for _ in range(40)] == expected
    assert expected != [b % 129 for b in stream[:40]]


def test_fair_source_is_deterministic_and_every_input_matters() -> None:
    def draws(seed: bytes, client: str, nonce: int) -> list[int]:
        source = FairSource(seed, client, nonce)
        return [source.randbelow(10_000) for _ in range(20)]

    first = draws(SEED, "abc", 0)
    assert draws(SEED, "abc", 0) == first
    assert draws(SEED, "abc", 1) != first
    assert draws(SEED, "abd", 0) != first
    assert draws(bytes(32), "abc", 0) != first
    assert replay_draws(SEED, "abc", 0, [10_000] * 20) == first


def test_fair_source_validates_its_inputs() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        FairSource(b"short", "c", 0)
    with pytest.raises(ValueError, match="non-empty"):
        FairSource(SEED, "", 0)
    with pytest.raises(ValueError, match="printable"):
        FairSource(SEED, "a\nb", 0)
    with pytest.raises(ValueError, match="nonce"):
        FairSource(SEED, "c", -1)
    with pytest.raises(ValueError, match="hex"):
        parse_server_seed("zz")
    with pytest.raises(ValueError, match="32 bytes"):
        parse_server_seed("00" * 31)


def test_commitment_is_the_sha256_of_the_server_seed() -> None:
    assert commitment(SEED) == SEED_SHA256 == hashlib.sha256(SEED).hexdigest()
    assert check_commitment(SEED, SEED_SHA256.upper())
    assert not check_commitment(bytes(32), SEED_SHA256)


def test_seed_rotation_reveals_the_committed_seed_and_starts_afresh() -> None:
    pair = SeedPair.new("my-seed")
    published = pair.public()
    assert set(published) == {"commitment", "client_seed", "nonce"}
    assert pair.server_seed.hex() not in json.dumps(published)
    assert repr(pair).count(pair.server_seed.hex()) == 0
    played = pair.advance().advance()
    assert played.nonce == 2
    assert played.source().nonce == 2
    revealed, fresh = played.rotate("new-seed")
    assert revealed.rounds == 2
    assert revealed.commitment == published["commitment"]
    assert check_commitment(bytes.fromhex(revealed.server_seed_hex), revealed.commitment)
    assert fresh.nonce == 0
    assert fresh.client_seed == "new-seed"
    assert fresh.server_seed != pair.server_seed
    assert fresh.commitment != pair.commitment
    assert played.rotate()[1].client_seed == "my-seed"


def test_verify_draws_recomputes_a_round_and_names_a_tampered_draw() -> None:
    recorder = RecordingSource(FairSource(SEED, "player", 42))
    for n in (32, 32, 32, 32, 32, 37):
        recorder.randbelow(n)
    good = verify_draws(SEED, "player", 42, recorder.draws)
    assert good.ok
    assert good.blocks_used == 1
    tampered = [*recorder.draws[:-1], (37, (recorder.draws[-1][1] + 1) % 37)]
    bad = verify_draws(SEED, "player", 42, tampered)
    assert not bad.ok
    assert [c.index for c in bad.checks if not c.ok] == [5]
    assert not verify_draws(SEED, "player", 43, recorder.draws).ok


RANDOM_MODULES = {"random", "numpy.random"}


def _random_uses(tree: ast.AST) -> list[str]:
    """Every import of random or numpy.random, and every ``<numpy alias>.random`` attribute."""
    numpy_names = {"numpy"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(f"import {a.name}" for a in node.names if a.name in RANDOM_MODULES)
            numpy_names.update(a.asname or "numpy" for a in node.names if a.name == "numpy")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {a.name for a in node.names}
            if module in RANDOM_MODULES or (module == "numpy" and "random" in names):
                found.append(f"from {module} import {', '.join(sorted(names))}")
    found.extend(
        f"{node.value.id}.random"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "random"
        and isinstance(node.value, ast.Name)
        and node.value.id in numpy_names
    )
    return found


def test_no_rng_module_draws_from_random_or_numpy_random() -> None:
    """Requirement 1: outside the simulators (rng/games/simulate*.py), nothing under rng/ uses random."""
    root = Path(rng.__file__).parent
    checked = []
    offenders = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] == "games" and relative.name.startswith("simulat"):
            continue
        checked.append(relative.as_posix())
        uses = _random_uses(ast.parse(path.read_text(encoding="utf-8")))
        if uses:
            offenders[relative.as_posix()] = uses
    assert "source.py" in checked
    assert "fair.py" in checked
    assert offenders == {}


def test_the_random_scan_catches_every_spelling() -> None:
    code = "import random\nimport numpy as np\nfrom numpy import random as r\nx = np.random.default_rng()\n"
    assert len(_random_uses(ast.parse(code))) == 3


# The CLI, through a parser built with register().


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="croupier")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_verify_checks_commitment_and_recorded_draws(capsys: pytest.CaptureFixture[str]) -> None:
    draws = [[37, v] for v in replay_draws(SEED, "player", 9, [37, 37, 37])]
    base = ["rng", "verify", "--server-seed", SEED.hex(), "--client-seed", "player", "--nonce", "9"]
    assert _run([*base, "--commitment", SEED_SHA256, "--draws", json.dumps(draws)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"]
    assert report["commitment_ok"]
    assert report["recorded_draws"]["ok"]

    draws[1][1] = (draws[1][1] + 1) % 37
    assert _run([*base, "--draws", json.dumps(draws)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [d["ok"] for d in report["recorded_draws"]["draws"]] == [True, False, True]

    assert _run([*base, "--commitment", "00" * 32]) == 1
    assert json.loads(capsys.readouterr().out)["commitment_ok"] is False
    assert _run(["rng", "verify", "--server-seed", "abc", "--client-seed", "p", "--nonce", "0"]) == 2


def test_cli_verify_replays_a_game_round(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("rng.games.base")
    base = ["rng", "verify", "--server-seed", SEED.hex(), "--client-seed", "player", "--nonce", "3"]
    params = json.dumps({"target": 50, "direction": "under"})
    assert _run([*base, "--game", "dice", "--params", params]) == 0
    game = json.loads(capsys.readouterr().out)["game"]
    assert game["draws"]
    assert [tuple(d) for d in game["draws"]] == list(
        zip(
            [n for n, _ in game["draws"]],
            replay_draws(SEED, "player", 3, [n for n, _ in game["draws"]]),
            strict=True,
        )
    )
    assert _run([*base, "--game", "dice", "--params", params, "--draws", json.dumps(game["draws"])]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["game"]["draws_match_recorded"]
    assert report["game"]["win_minor"] == game["win_minor"]


def test_cli_dump_writes_raw_bytes_and_outcomes(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert _run(["rng", "dump", "--bytes", "100000"]) == 0
    raw = capsysbinary.readouterr().out
    assert len(raw) == 100_000
    assert len(set(raw)) == 256
    assert _run(["rng", "dump", "--outcomes", "500", "--range", "37"]) == 0
    values = [int(v) for v in capsysbinary.readouterr().out.split()]
    assert len(values) == 500
    assert all(0 <= v < 37 for v in values)
    assert _run(["rng", "dump", "--bytes", "-1"]) == 2


def test_cli_certify_writes_both_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tiny, seeded run of the fair generator end to end: Markdown and JSON with sizes and verdicts."""
    argv = ["rng", "certify", "--sequences", "4", "--bits", "40000", "--outcomes", "4000", "--workers", "1"]
    argv += ["--generator", "fair", "--seed", "11" * 32, "--out", str(tmp_path)]
    assert _run(argv) == 0
    assert "verdict: PASS" in capsys.readouterr().out
    report = json.loads((tmp_path / "rng-certification-report.json").read_text())
    fair = report["generators"]["fair"]
    assert fair["nist"]["sequences"] == 4
    assert fair["nist"]["bits"] == 40_000
    assert {line["test"] for line in fair["nist"]["lines"]} >= {"frequency", "runs", "rank", "serial"}
    assert {s["scenario"] for s in fair["outcomes"]} >= {"roulette", "dice", "slot spin", "shuffle"}
    assert (
        report["modules"]["rng/source.py"]
        == hashlib.sha256(Path(rng.__file__).with_name("source.py").read_bytes()).hexdigest()
    )
    markdown = (tmp_path / "rng-certification-report.md").read_text()
    assert "**Verdict: PASS.**" in markdown
    assert "| roulette |" in markdown
