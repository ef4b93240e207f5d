"""`croupier rng verify | dump | certify`: recompute a provably fair round, collect raw output, certify."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rng.fair import (
    FairSource,
    check_commitment,
    commitment,
    parse_server_seed,
    validate_client_seed,
    verify_draws,
)
from rng.source import RecordingSource, SecureSource

DUMP_CHUNK_BYTES = 65_536
OUTCOMES_PER_WRITE = 4_096
DEFAULT_BET_MINOR = 100


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `rng` command and its subcommands."""
    parser = sub.add_parser("rng", help="the certified RNG: provably fair checks, raw output, certification")
    commands = parser.add_subparsers(dest="rng_command", required=True)

    verify = commands.add_parser("verify", help="recompute a provably fair round from its revealed seeds")
    verify.add_argument("--server-seed", required=True, help="the revealed server seed, 64 hex digits")
    verify.add_argument("--client-seed", required=True, help="the client seed of the round")
    verify.add_argument("--nonce", type=int, required=True, help="the round's nonce")
    verify.add_argument("--game", help="replay the round through this game (slot, roulette, dice)")
    verify.add_argument("--params", default="{}", help="the round's game parameters, as JSON")
    verify.add_argument(
        "--bet-minor", type=int, help="the stake in minor units (default: the roulette bets' sum, else 100)"
    )
    verify.add_argument("--commitment", help="the SHA-256 published before play, checked against the seed")
    verify.add_argument(
        "--draws", help="the round's recorded draws, JSON [[n, value], ...], checked one by one"
    )
    verify.set_defaults(func=cmd_verify)

    dump = commands.add_parser("dump", help="write the production generator's output to standard output")
    what = dump.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--bytes",
        type=int,
        metavar="N",
        help="N raw bytes before scaling, binary (0: until the reader stops)",
    )
    what.add_argument(
        "--outcomes", type=int, metavar="N", help="N scaled outcomes randbelow(--range), one a line"
    )
    dump.add_argument(
        "--range", type=int, default=37, metavar="R", help="the range of --outcomes (default 37)"
    )
    dump.set_defaults(func=cmd_dump)

    certify = commands.add_parser(
        "certify", help="run NIST SP 800-22 and the outcome tests, write the report"
    )
    certify.add_argument("--sequences", type=int, default=100, help="NIST sequences per generator (100)")
    certify.add_argument("--bits", type=int, default=1_000_000, help="bits per NIST sequence (1,000,000)")
    certify.add_argument(
        "--outcomes", type=int, default=1_000_000, help="draws per single-draw outcome test (1,000,000)"
    )
    certify.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    certify.add_argument(
        "--generator", choices=("secure", "fair", "both"), default="both", help="which generator (both)"
    )
    certify.add_argument("--seed", help="the fair generator's server seed, hex (default: a fresh one)")
    certify.add_argument("--slot-config", help="the slot's TOML, for the reel strip lengths")
    certify.add_argument("--out", default="docs", help="directory for the Markdown and JSON report (docs)")
    certify.set_defaults(func=cmd_certify)


def _error(message: str) -> int:
    print(f"croupier rng: {message}", file=sys.stderr)  # noqa: T201
    return 2


def _print_json(value: Mapping[str, Any]) -> None:
    print(json.dumps(value, indent=2))  # noqa: T201


def _parse_draws(text: str) -> list[tuple[int, int]]:
    raw = json.loads(text)
    if not isinstance(raw, list) or not all(
        isinstance(d, list | tuple) and len(d) == 2 and all(isinstance(v, int) for v in d)  # noqa: PLR2004
        for d in raw
    ):
        raise ValueError("--draws must be a JSON list of [n, value] pairs")
    return [(int(n), int(value)) for n, value in raw]


def _replay_game(
    args: argparse.Namespace, seed: bytes, params: dict[str, Any], notes: list[str]
) -> dict[str, Any] | None:
    """Play the round again through the game on the fair source; None when the games are not installed."""
    try:
        from rng.games.base import load_game  # noqa: PLC0415 -- the games are optional for verification
    except ImportError:
        notes.append("the games package is not installed: only the raw draws were verified")
        return None
    game = load_game(args.game)
    bet_minor = args.bet_minor
    if bet_minor is None:
        bets = params.get("bets")
        bet_minor = sum(int(b["amount_minor"]) for b in bets) if isinstance(bets, list) else DEFAULT_BET_MINOR
    game.validate(bet_minor, params)
    recorder = RecordingSource(FairSource(seed, args.client_seed, args.nonce))
    result = game.play(recorder, bet_minor, params)
    return {
        "name": args.game,
        "bet_minor": bet_minor,
        "params": params,
        "win_minor": result.win_minor,
        "state": result.state,
        "draws": [list(d) for d in recorder.draws],
    }


def _parse_verify(args: argparse.Namespace) -> tuple[bytes, dict[str, Any], list[tuple[int, int]] | None]:
    """Return the seed, the game parameters and the recorded draws, or raise ValueError."""
    seed = parse_server_seed(args.server_seed)
    validate_client_seed(args.client_seed)
    if args.nonce < 0:
        raise ValueError("nonce must be >= 0")
    params = json.loads(args.params)
    if not isinstance(params, dict):
        raise ValueError("--params must be a JSON object")  # noqa: TRY004 -- bad input, reported as such
    return seed, params, (_parse_draws(args.draws) if args.draws else None)


def cmd_verify(args: argparse.Namespace) -> int:
    """Recompute a round from its revealed server seed, client seed and nonce; exit 1 on any mismatch."""
    try:
        seed, params, recorded = _parse_verify(args)
    except ValueError as exc:
        return _error(str(exc))
    notes: list[str] = []
    report: dict[str, Any] = {
        "server_seed": seed.hex(),
        "commitment": commitment(seed),
        "client_seed": args.client_seed,
        "nonce": args.nonce,
    }
    checks: list[bool] = []
    if args.commitment:
        report["commitment_ok"] = check_commitment(seed, args.commitment)
        checks.append(report["commitment_ok"])
    if args.game:
        try:
            game = _replay_game(args, seed, params, notes)
        except (ValueError, KeyError, OSError) as exc:
            return _error(f"cannot replay the {args.game} round: {exc}")
        if game is not None:
            report["game"] = game
            if recorded is not None:
                report["game"]["draws_match_recorded"] = [tuple(d) for d in game["draws"]] == recorded
                checks.append(report["game"]["draws_match_recorded"])
    if recorded is not None:
        verification = verify_draws(seed, args.client_seed, args.nonce, recorded)
        report["recorded_draws"] = verification.to_dict()
        checks.append(verification.ok)
    if not args.game and recorded is None:
        notes.append("give --game (and --params) to replay the round, or --draws to check recorded draws")
    report["notes"] = notes
    report["ok"] = all(checks)
    _print_json(report)
    return 0 if report["ok"] else 1


def _outcome_lines(count: int, n: int) -> Iterator[bytes]:
    source = SecureSource()
    for start in range(0, count, OUTCOMES_PER_WRITE):
        batch = min(OUTCOMES_PER_WRITE, count - start)
        yield "".join(f"{source.randbelow(n)}\n" for _ in range(batch)).encode()


def _byte_chunks(count: int) -> Iterator[bytes]:
    source = SecureSource()
    remaining = count
    while count == 0 or remaining > 0:
        size = DUMP_CHUNK_BYTES if count == 0 else min(DUMP_CHUNK_BYTES, remaining)
        remaining -= size
        yield source.read_bytes(size)


def cmd_dump(args: argparse.Namespace) -> int:
    """Write raw bytes (or scaled outcomes) of the production generator to standard output."""
    count = args.bytes if args.bytes is not None else args.outcomes
    if count < 0 or (args.outcomes is not None and count == 0):
        return _error("the count must be positive (0 bytes means an endless stream)")
    if args.range < 1:
        return _error("--range must be >= 1")
    chunks = _byte_chunks(count) if args.bytes is not None else _outcome_lines(count, args.range)
    out = sys.stdout.buffer
    try:
        for chunk in chunks:
            out.write(chunk)
        out.flush()
    except BrokenPipeError:
        # The reader has had enough (dieharder, head): stop quietly, and keep the interpreter's own
        # flush at exit from failing on the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


def _slot_config(args: argparse.Namespace) -> Path:
    if args.slot_config:
        return Path(args.slot_config)
    try:
        from rng.games.base import config_dir  # noqa: PLC0415 -- the games are optional here
    except ImportError:
        return Path("config/games/slot.toml")
    return config_dir() / "slot.toml"


def cmd_certify(args: argparse.Namespace) -> int:
    """Run the battery on the chosen generators and write the report; exit 1 unless every test passes."""
    from rng.stats import certify, nist  # noqa: PLC0415 -- numpy and scipy load only for this command

    if args.sequences < 1 or args.bits < 1 or args.outcomes < 1:
        return _error("--sequences, --bits and --outcomes must be positive")
    try:
        seed = parse_server_seed(args.seed) if args.seed else None
    except ValueError as exc:
        return _error(str(exc))
    options = certify.CertifyOptions(
        sequences=args.sequences,
        bits=args.bits,
        outcomes=args.outcomes,
        workers=args.workers or nist.default_workers(),
        generators=certify.GENERATORS if args.generator == "both" else (args.generator,),
        fair_seed=seed,
        slot_config=_slot_config(args),
    )
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr)  # noqa: T201

    report = certify.certify(options, progress)
    md_path, json_path = certify.write_report(report, Path(args.out))
    for kind, generator in report["generators"].items():
        print(f"{kind}: {'PASS' if generator['ok'] else 'FAIL'}")  # noqa: T201
    print(f"verdict: {report['verdict']} in {report['elapsed_s']} s; wrote {md_path} and {json_path}")  # noqa: T201
    return 0 if report["verdict"] == "PASS" else 1
