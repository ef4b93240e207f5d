"""Settings from a TOML file in config/ and environment variables (which win)."""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from providers.base import ProviderConfig
from wallet.policy import OperatorPolicy

BACKENDS = ("ledger", "seamless")
LOSS_PERIODS = ("day", "week", "month")
_OPERATOR_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class SettingsError(ValueError):
    """The configuration is invalid; raised at start."""


# A JWT client assertion's algorithm is fixed per key, never taken from the token's header.
JWT_ALGORITHMS = ("ES256", "RS256", "PS256", "EdDSA")


@dataclass(frozen=True, slots=True)
class JwtKey:
    """A public key an operator signs its client assertions with, and its one algorithm."""

    algorithm: str
    public_key: str


@dataclass(frozen=True, slots=True)
class ApiCredentials:
    """How an operator authenticates to the Operator API: HMAC keys and JWT keys, by key id."""

    hmac_keys: Mapping[str, bytes] = field(default_factory=dict)
    jwt_keys: Mapping[str, JwtKey] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """One operator: its policy, where its wallet is, and its Operator API credentials."""

    policy: OperatorPolicy
    backend: str = "ledger"
    wallet_url: str = ""
    key_id: str = ""
    secret: bytes = b""
    api: ApiCredentials = field(default_factory=ApiCredentials)
    # How many sessions one player may have open on one game at once; a launch past it ends the oldest.
    max_sessions_per_game: int = 1
    # The play money a demo session starts with, in minor units of its currency.
    demo_balance_minor: int = 100_000


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
    # How long the engine's writer waits for more operations once it has one, beyond those queued
    # while the previous batch committed (which form the batch by themselves). 0 waits for none:
    # on the measured machine a window only added latency (docs/benchmarks.md).
    engine_window_ms: float = 0.0
    engine_max_batch: int = 256
    engine_writers: int = 1
    pool_size: int = 20
    # Redis connections per process. A request past them waits (up to redis_wait_s) rather than
    # failing: redis-py's default pool raises at 100 connections in use, a burst any node sees.
    redis_pool_size: int = 64
    redis_wait_s: float = 5.0
    # Session tokens are JWTs signed with the active key; older keys still verify until removed.
    # With none configured each process makes its own, which only suits a single node.
    session_keys: Mapping[str, bytes] = field(default_factory=lambda: {"local": secrets.token_bytes(32)})
    session_active_key: str = "local"
    session_ttl_s: int = 4 * 3600
    # How long a node keeps a session it has read; an ended session is dropped on every node at
    # once (Redis pub/sub), so this bounds only what a node that missed the message honours.
    session_cache_s: float = 1.0
    # The `aud` an operator's client assertion must name.
    api_audience: str = "croupier"
    # The reconciliation job: every interval (0: never), on one node, each seamless operator's
    # window that ended at least horizon ago.
    reconcile_interval_s: float = 3600.0
    reconcile_horizon_s: float = 3600.0
    # How long each node keeps the merged game catalogue before asking the adapters again.
    catalogue_ttl_s: float = 300.0


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


def _optional_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _jwt_key(where: str, raw: object) -> JwtKey:
    if not isinstance(raw, Mapping):
        raise SettingsError(f"{where}: a JWT key is a table with algorithm and public_key")
    algorithm = raw.get("algorithm")
    if algorithm not in JWT_ALGORITHMS:
        raise SettingsError(f"{where}: algorithm must be one of {JWT_ALGORITHMS}")
    key = raw.get("public_key")
    if isinstance(key, str) and key.startswith("file:"):
        key = Path(key[5:]).read_text(encoding="utf-8")
    if not isinstance(key, str) or "PUBLIC KEY" not in key:
        raise SettingsError(f"{where}: public_key must be a PEM public key or 'file:PATH'")
    return JwtKey(algorithm=str(algorithm), public_key=key)


def _api(name: str, raw: Mapping[str, Any]) -> ApiCredentials:
    return ApiCredentials(
        hmac_keys={
            k: _secret(v, f"operator {name} api key {k}") for k, v in raw.get("hmac_keys", {}).items()
        },
        jwt_keys={k: _jwt_key(f"operator {name} jwt key {k}", v) for k, v in raw.get("jwt_keys", {}).items()},
    )


def _operator(name: str, raw: Mapping[str, Any]) -> OperatorSettings:
    if not _OPERATOR_NAME.fullmatch(name):
        # Names appear in provider user ids ('operator:player') and demo ledgers ('operator.demo').
        raise SettingsError(f"operator {name!r}: a name is 1 to 64 letters, digits, '_' or '-'")
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
        loss_limit_minor=dict(raw.get("loss_limit_minor", {})),
        loss_period=str(raw.get("loss_period", "day")),
        session_limit_s=_optional_int(raw.get("session_limit_s")),
        reality_check_s=_optional_int(raw.get("reality_check_s")),
    )
    if policy.loss_period not in LOSS_PERIODS:
        raise SettingsError(f"operator {name}: loss_period must be one of {LOSS_PERIODS}")
    slowest_s = max(policy.debit_deadline_s, policy.credit_deadline_s) + 2 * policy.call_timeout_s
    if policy.recovery_after_s < slowest_s:
        # The outbox must not start cancelling a debit the request is still retrying.
        raise SettingsError(
            f"operator {name}: recovery_after_s must be at least the longest deadline plus two"
            f" call timeouts ({slowest_s} s)"
        )
    common: dict[str, Any] = {
        "api": _api(name, raw.get("api", {})),
        "max_sessions_per_game": int(raw.get("max_sessions_per_game", 1)),
        "demo_balance_minor": int(raw.get("demo_balance_minor", 100_000)),
    }
    if common["max_sessions_per_game"] < 1:
        raise SettingsError(f"operator {name}: max_sessions_per_game must be at least 1")
    if backend == "ledger":
        return OperatorSettings(policy=policy, **common)
    url = raw.get("wallet_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise SettingsError(f"operator {name}: a seamless backend needs wallet_url")
    return OperatorSettings(
        policy=policy,
        backend=backend,
        wallet_url=url,
        key_id=str(raw.get("key_id", "")),
        secret=_secret(raw.get("secret"), f"operator {name}"),
        **common,
    )


def _check_key_ids(operators: Mapping[str, OperatorSettings]) -> None:
    """Refuse a key id used by two operators: a key id names exactly one operator."""
    seen: dict[str, str] = {}
    for name, op in operators.items():
        for kid in (*op.api.hmac_keys, *op.api.jwt_keys):
            if kid in seen:
                raise SettingsError(f"api key id {kid!r} is used by operators {seen[kid]} and {name}")
            seen[kid] = name


def _session_keys(gw: Mapping[str, Any]) -> dict[str, Any]:
    raw = gw.get("session_keys")
    if raw is None:
        return {}
    keys = {k: _secret(v, f"session key {k}") for k, v in raw.items()}
    active = gw.get("session_active_key")
    if active not in keys:
        raise SettingsError("gateway.session_active_key must name one of gateway.session_keys")
    return {"session_keys": keys, "session_active_key": active}


def _number(value: object, where: str, low: float, high: float | None = None, *, integer: bool) -> float:
    """Return a setting's number (TOML's, or an environment string's), or raise naming the setting."""
    if isinstance(value, str):
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            raise SettingsError(f"{where}: {value!r} is not a number") from None
    # bool is an int in Python, and `pool_size = true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and type(value) is float):
        raise SettingsError(f"{where}: expected {'an integer' if integer else 'a number'}, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"{low} to {high}" if high is not None else f"at least {low}"
        raise SettingsError(f"{where}: {value} is out of range ({bound})")
    return value


def _int(value: object, where: str, low: int, high: int | None = None) -> int:
    """Return an integer setting, or raise naming it."""
    return int(_number(value, where, low, high, integer=True))


def _float(value: object, where: str, low: float) -> float:
    """Return a number setting, or raise naming it."""
    return float(_number(value, where, low, integer=False))


def _gw_int(gw: Mapping[str, Any], name: str, default: int, low: int) -> int:
    """Return an integer setting of the [gateway] table, or its default."""
    return _int(gw.get(name, default), f"gateway.{name}", low)


def _gw_float(gw: Mapping[str, Any], name: str, default: float, low: float) -> float:
    """Return a number setting of the [gateway] table, or its default."""
    return _float(gw.get(name, default), f"gateway.{name}", low)


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
    operators = {name: _operator(name, o) for name, o in raw.get("operators", {}).items()}
    _check_key_ids(operators)
    return Settings(
        database_url=env.get("DATABASE_URL") or gw.get("database_url"),
        redis_url=env.get("REDIS_URL") or gw.get("redis_url"),
        host=env.get("CROUPIER_HOST") or gw.get("host", "127.0.0.1"),
        port=_int(env.get("CROUPIER_PORT") or gw.get("port", 8080), "gateway.port", 0, 65535),
        data_dir=Path(env.get("CROUPIER_DATA_DIR") or gw.get("data_dir", ".croupier")),
        currencies=dict(raw.get("currencies", {})),
        operators=operators,
        providers=providers,
        outbox_interval_s=_gw_float(gw, "outbox_interval_s", 0.5, 0),
        engine_window_ms=_gw_float(gw, "engine_window_ms", 0.0, 0),
        engine_max_batch=_gw_int(gw, "engine_max_batch", 256, 1),
        engine_writers=_gw_int(gw, "engine_writers", 1, 1),
        pool_size=_gw_int(gw, "pool_size", 20, 1),
        redis_pool_size=_gw_int(gw, "redis_pool_size", 64, 1),
        redis_wait_s=_gw_float(gw, "redis_wait_s", 5.0, 0),
        session_ttl_s=_gw_int(gw, "session_ttl_s", 4 * 3600, 1),
        session_cache_s=_gw_float(gw, "session_cache_s", 1.0, 0),
        api_audience=str(gw.get("api_audience", "croupier")),
        reconcile_interval_s=_gw_float(gw, "reconcile_interval_s", 3600.0, 0),
        reconcile_horizon_s=_gw_float(gw, "reconcile_horizon_s", 3600.0, 0),
        catalogue_ttl_s=_gw_float(gw, "catalogue_ttl_s", 300.0, 0),
        **_session_keys(gw),
    )


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load settings from a TOML file (CROUPIER_CONFIG or the example) and the environment."""
    env = os.environ if environ is None else environ
    chosen = path or Path(env.get("CROUPIER_CONFIG", "config/croupier.toml"))
    if not chosen.exists():
        raise SettingsError(f"no configuration file at {chosen}")
    with chosen.open("rb") as fh:
        try:
            raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{chosen} is not valid TOML: {exc}") from None
    return from_mapping(raw, env)
