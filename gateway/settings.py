"""Settings from a TOML file in config/ and environment variables (which win)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from providers.base import ProviderConfig
from wallet.policy import OperatorPolicy

BACKENDS = ("ledger", "seamless")


class SettingsError(ValueError):
    """The configuration is invalid; raised at start."""


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """One operator: its policy and where its wallet is."""

    policy: OperatorPolicy
    backend: str = "ledger"
    wallet_url: str = ""
    key_id: str = ""
    secret: bytes = b""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the gateway needs to start."""

    database_url: str | None = None
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".croupier")
    currencies: Mapping[str, int] = field(default_factory=dict)
    operators: Mapping[str, OperatorSettings] = field(default_factory=dict)
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    outbox_interval_s: float = 0.5
    pool_size: int = 20


def _secret(value: object, where: str) -> bytes:
    """Read a secret given inline or as 'env:NAME'."""
    if not isinstance(value, str) or not value:
        raise SettingsError(f"{where}: secret must be a non-empty string")
    if value.startswith("env:"):
        found = os.environ.get(value[4:])
        if not found:
            raise SettingsError(f"{where}: environment variable {value[4:]} is not set")
        return found.encode()
    return value.encode()


def _operator(name: str, raw: Mapping[str, Any]) -> OperatorSettings:
    backend = raw.get("backend", "ledger")
    if backend not in BACKENDS:
        raise SettingsError(f"operator {name}: backend must be one of {BACKENDS}")
    policy = OperatorPolicy(
        name=name,
        max_bet_minor=dict(raw.get("max_bet_minor", {})),
        answer_after_operator=bool(raw.get("answer_after_operator", False)),
        call_timeout_s=float(raw.get("call_timeout_s", 2.0)),
        debit_deadline_s=float(raw.get("debit_deadline_s", 5.0)),
        credit_deadline_s=float(raw.get("credit_deadline_s", 5.0)),
        recovery_after_s=float(raw.get("recovery_after_s", 30.0)),
    )
    slowest_s = max(policy.debit_deadline_s, policy.credit_deadline_s) + 2 * policy.call_timeout_s
    if policy.recovery_after_s < slowest_s:
        # The outbox must not start cancelling a debit the request is still retrying.
        raise SettingsError(
            f"operator {name}: recovery_after_s must be at least the longest deadline plus two"
            f" call timeouts ({slowest_s} s)"
        )
    if backend == "ledger":
        return OperatorSettings(policy=policy)
    url = raw.get("wallet_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise SettingsError(f"operator {name}: a seamless backend needs wallet_url")
    return OperatorSettings(
        policy=policy,
        backend=backend,
        wallet_url=url,
        key_id=str(raw.get("key_id", "")),
        secret=_secret(raw.get("secret"), f"operator {name}"),
    )


def from_mapping(raw: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from parsed TOML, with environment overrides."""
    env = os.environ if environ is None else environ
    gw = raw.get("gateway", {})
    providers = {
        name: ProviderConfig(
            name=name,
            secrets={k: _secret(v, f"provider {name}") for k, v in p.get("secrets", {}).items()},
            options={k: v for k, v in p.items() if k != "secrets"},
        )
        for name, p in raw.get("providers", {}).items()
    }
    return Settings(
        database_url=env.get("DATABASE_URL") or gw.get("database_url"),
        redis_url=env.get("REDIS_URL") or gw.get("redis_url"),
        host=env.get("CROUPIER_HOST") or gw.get("host", "127.0.0.1"),
        port=int(env.get("CROUPIER_PORT") or gw.get("port", 8080)),
        data_dir=Path(env.get("CROUPIER_DATA_DIR") or gw.get("data_dir", ".croupier")),
        currencies=dict(raw.get("currencies", {})),
        operators={name: _operator(name, o) for name, o in raw.get("operators", {}).items()},
        providers=providers,
        outbox_interval_s=float(gw.get("outbox_interval_s", 0.5)),
        pool_size=int(gw.get("pool_size", 20)),
    )


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load settings from a TOML file (CROUPIER_CONFIG or the example) and the environment."""
    env = os.environ if environ is None else environ
    chosen = path or Path(env.get("CROUPIER_CONFIG", "config/croupier.toml"))
    if not chosen.exists():
        raise SettingsError(f"no configuration file at {chosen}")
    with chosen.open("rb") as fh:
        return from_mapping(tomllib.load(fh), env)
