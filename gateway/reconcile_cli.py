"""`croupier reconcile`: one operator's window, gateway against operator, printed as a table."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from aiohttp import web

from gateway import keys
from gateway.app import create_app
from gateway.settings import Settings, SettingsError
from gateway.stuck_rounds import StuckRounds
from wallet.backends.seamless import SeamlessWallet
from wallet.reconciliation import Summary, run, run_ledger, seamless_lister

# Past this, something still pending is a difference: the operator's retry window is long over.
DEFAULT_HORIZON_S = 3600.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the reconcile subcommand; the caller sets its func."""
    cmd = sub.add_parser("reconcile", help="reconcile the gateway's ledger against an operator's wallet")
    cmd.add_argument("--config")
    cmd.add_argument("--operator", required=True)
    cmd.add_argument("--since", type=_instant, help="ISO 8601 (default: 24 hours before --until)")
    cmd.add_argument("--until", type=_instant, help="ISO 8601 (default: now)")
    cmd.add_argument(
        "--horizon-s", type=float, default=DEFAULT_HORIZON_S, help="when pending becomes a difference"
    )
    return cmd


def _instant(text: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date-time") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


async def reconcile_operator(settings: Settings, args: argparse.Namespace) -> Summary:
    """Start the gateway's resources without serving, reconcile, and stop them."""
    if args.operator not in settings.operators:
        raise SettingsError(f"no operator {args.operator!r} in the configuration")
    now = datetime.now(UTC)
    until = args.until or now
    since = args.since or until - timedelta(days=1)
    if since >= until:
        raise SettingsError("--since must be before --until")
    runner = web.AppRunner(create_app(settings))
    await runner.setup()  # the pools, the engine and the outbox worker, which delivers what is healed
    try:
        app = runner.app
        backend = app[keys.WALLET].runtime(args.operator).backend
        pool, metrics = app[keys.PG_POOL], app[keys.METRICS]
        stuck = StuckRounds(pool, app[keys.WALLET], app[keys.ADAPTERS], app[keys.PROVIDER_CONTEXT])
        settled = await stuck.settle(args.operator, since, until, now)
        if not isinstance(backend, SeamlessWallet):
            # The money is in the gateway's own ledger: its entries are checked against it.
            return await run_ledger(pool, args.operator, since, until, now, metrics=metrics, settled=settled)
        lister = seamless_lister(backend)
        return await run(
            pool, args.operator, lister, since, until, now, args.horizon_s, metrics=metrics, settled=settled
        )
    finally:
        await runner.cleanup()


def table(summary: Summary, operator: str) -> str:
    """Return the run as a plain-text table."""
    head = f"reconciliation {summary.reconciliation_id} of operator {operator}:"
    if summary.books == "ledger":
        counts = f"{summary.ours} operations and {summary.theirs} accounts of the gateway's ledger"
    else:
        counts = f"{summary.ours} transfers at the gateway, {summary.theirs} at the operator"
    lines = [f"{head} {counts}"]
    if not summary.differences:
        lines.append("the books agree")
    for diff, outcome in zip(summary.differences, summary.outcomes, strict=True):
        subject = str(diff.transaction_id) if diff.transaction_id else diff.subject
        lines.append(f"  {diff.kind.value:<22} {subject}  {outcome:<15} {diff.reason}")
    lines.append(f"differences: {len(summary.differences)}, left for a person: {summary.unhealed}")
    return "\n".join(lines)
