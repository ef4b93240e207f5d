"""Summarise a gateway's cProfile (from bench_wallet.py --profile-dir) as microseconds per operation."""

from __future__ import annotations

import argparse
import pstats
import sys

# The stages of one bet or win, as functions whose cumulative time covers them. Nested stages
# are included in their parents (the session look-up is inside parsing, SQL inside the engine).
STAGES: tuple[tuple[str, str, str], ...] = (
    ("aiohttp handler, all of a request's Python", "aiohttp/web_app.py", "_handle"),
    ("  generic adapter: verify, parse, build the operation", "providers/generic/adapter.py", "parse"),
    ("    session look-up (Redis or the node's cache)", "gateway/sessions.py", "by_id"),
    ("    signature check (HMAC-SHA256)", "wallet/signing.py", "verify"),
    ("    amount to minor units, exactly", "wallet/money.py", "to_minor"),
    ("  wallet core, request side (validate, await the engine)", "wallet/core.py", "execute"),
    ("  answer: JSON and the response", "aiohttp/web_response.py", "_prepare_headers"),
    ("engine: one batch's transaction, per operation", "wallet/engine.py", "_transaction"),
    ("  prefetch statement", "wallet/statements.py", "prefetch"),
    ("  decide, pure Python", "wallet/decide.py", "decide"),
    ("  write statement", "wallet/statements.py", "write"),
    ("asyncpg: issuing statements (Python side)", "asyncpg/connection.py", "_do_execute"),
    ("Redis client: issuing commands", "redis/asyncio/client.py", "execute_command"),
    ("transaction ids (uuid5)", "uuid.py", "uuid5"),
    ("prometheus metrics: labels", "prometheus_client/metrics.py", "labels"),
)


def stage_times(stats: pstats.Stats) -> dict[str, tuple[float, int]]:
    """Return each stage's cumulative seconds and call count."""
    found: dict[str, tuple[float, int]] = {}
    raw = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, name), (_cc, calls, _tt, cum, _callers) in raw.items():
        for label, path, function in STAGES:
            if name == function and filename.endswith(path):
                seconds, count = found.get(label, (0.0, 0))
                found[label] = (seconds + cum, count + calls)
    return found


def main(argv: list[str] | None = None) -> int:
    """Print the stages of one or more profiles side by side, in microseconds per operation."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profiles", nargs="+", help="LABEL=PATH.prof:OPERATIONS")
    args = parser.parse_args(argv)
    columns = []
    for spec in args.profiles:
        label, _, rest = spec.partition("=")
        path, _, ops = rest.rpartition(":")
        stats = pstats.Stats(path, stream=sys.stderr)
        total = stats.total_tt  # type: ignore[attr-defined]
        columns.append((label, stage_times(stats), int(ops), total))
    print("| stage | " + " | ".join(f"{label} µs/op" for label, *_ in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    totals = " | ".join(f"{1e6 * total / ops:.0f}" for _, _, ops, total in columns)
    print(f"| whole process (profiled) | {totals} |")
    for label, _path, _function in STAGES:
        cells = []
        for _, found, ops, _total in columns:
            seconds, _calls = found.get(label, (0.0, 0))
            cells.append(f"{1e6 * seconds / ops:.0f}")
        print(f"| {label.replace('  ', '&nbsp;&nbsp;')} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
