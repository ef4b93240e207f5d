"""The gateway's frame: settings, plug-in loading, health, metrics, request ids, error bodies."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

import pytest
from aiohttp import web

from gateway import keys
from gateway.app import create_app, load_adapters
from gateway.settings import OperatorSettings, Settings, SettingsError, from_mapping, load
from providers import registry
from providers.base import Adapter, ProviderConfig, Route
from providers.generic.adapter import GenericAdapter
from wallet.policy import OperatorPolicy

ROOT = Path(__file__).resolve().parent.parent


def _settings(db: str, redis: str, **operators: OperatorSettings) -> Settings:
    return Settings(
        database_url=db,
        redis_url=redis,
        operators=operators or {"op1": OperatorSettings(OperatorPolicy("op1"))},
        providers={"generic": ProviderConfig("generic", {"k1": b"secret"})},
    )


def test_example_config_loads() -> None:
    """The shipped example configuration is valid."""
    settings = load(ROOT / "config" / "croupier.toml", environ={})
    assert settings.operators["casino"].backend == "seamless"
    assert settings.operators["house"].policy.max_bet_minor["EUR"] == 100000
    assert settings.currencies["BTC"] == 8
    adapters = load_adapters(settings)
    assert set(adapters) == set(registry.names())
    assert all(adapter.catalogue() or name == "generic" for name, adapter in adapters.items())


def test_environment_wins_over_the_file() -> None:
    """DATABASE_URL and REDIS_URL from the environment override the file."""
    env = {"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://z", "CROUPIER_PORT": "9999"}
    settings = from_mapping({"gateway": {"database_url": "postgresql://a/b"}}, env)
    assert (settings.database_url, settings.redis_url, settings.port) == (
        "postgresql://x/y",
        "redis://z",
        9999,
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"operators": {"o": {"backend": "carrier-pigeon"}}}, "backend must be one of"),
        ({"operators": {"o": {"backend": "seamless"}}}, "needs wallet_url"),
        (
            {"operators": {"o": {"backend": "seamless", "wallet_url": "http://w", "secret": "env:NOPE_X"}}},
            "NOPE_X is not set",
        ),
    ],
)
def test_bad_settings_fail_at_start(raw: dict[str, object], message: str) -> None:
    """An invalid configuration is refused with a message that names the problem."""
    with pytest.raises(SettingsError, match=message):
        from_mapping(raw, {})


def test_registered_plugins_load_and_validate() -> None:
    """The generic adapter is found through the croupier.providers entry point group."""
    assert registry.load("generic") is GenericAdapter
    assert "generic" in registry.names()


class _Incomplete(Adapter):
    """An adapter that forgot most of its error table."""

    name = "incomplete"
    routes: ClassVar = [Route("POST", "/bet", "debit")]
    error_codes: ClassVar = {}

    def authenticate(self, request: web.Request, body: bytes) -> None:
        """Accept everything."""

    async def parse(self, *args: object) -> object:  # type: ignore[override]
        """Never called."""
        raise NotImplementedError

    def render(self, *args: object) -> web.StreamResponse:  # type: ignore[override]
        """Never called."""
        raise NotImplementedError

    def render_error(self, *args: object) -> web.StreamResponse:  # type: ignore[override]
        """Never called."""
        raise NotImplementedError


def test_a_broken_plugin_fails_at_load() -> None:
    """An adapter without a native code for every refusal is refused when it loads."""
    with pytest.raises(registry.PluginError, match="no native code for"):
        registry.check("incomplete", _Incomplete)
    with pytest.raises(registry.PluginError, match="not an Adapter"):
        registry.check("x", object)
    with pytest.raises(registry.PluginError, match="calls itself"):
        registry.check("other-name", GenericAdapter)


def test_an_unregistered_provider_in_settings_fails_at_start() -> None:
    """Configuring a provider with no plug-in fails in create_app, not on the first bet."""
    settings = Settings(
        database_url="postgresql://unused",
        redis_url="redis://unused",
        providers={"nosuch": ProviderConfig("nosuch")},
    )
    with pytest.raises(registry.PluginError, match="no plug-in"):
        create_app(settings)


async def test_health_metrics_and_request_ids(aiohttp_client, fresh_db, fresh_redis) -> None:
    """Livez and readyz answer, metrics export, request ids echo, unknown paths answer JSON."""
    client = await aiohttp_client(create_app(_settings(fresh_db, fresh_redis)))
    live = await client.get("/livez")
    assert live.status == 200
    ready = await client.get("/readyz", headers={"X-Request-Id": "abc-123"})
    assert ready.status == 200
    assert ready.headers["X-Request-Id"] == "abc-123"
    assert (await ready.json())["checks"] == {"postgres": "ok", "redis": "ok", "operator:op1": "ok"}
    missing = await client.get("/nowhere")
    assert missing.status == 404
    assert (await missing.json())["status"] == "ERROR"
    assert missing.headers["X-Request-Id"]
    metrics = await client.get("/metrics")
    text = await metrics.text()
    assert "croupier_outbox_depth" in text
    assert "croupier_provider_request_seconds" in text


async def test_readyz_reports_an_unreachable_operator(aiohttp_client, fresh_db, fresh_redis) -> None:
    """A seamless operator whose wallet is down makes readyz answer 503 naming that check."""
    down = OperatorSettings(
        OperatorPolicy("down", call_timeout_s=0.5), "seamless", "http://127.0.0.1:9", "k", b"s"
    )
    client = await aiohttp_client(create_app(_settings(fresh_db, fresh_redis, down=down)))
    ready = await client.get("/readyz")
    assert ready.status == 503
    body = await ready.json()
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["operator:down"].startswith("error")


def test_recovery_must_outlast_the_request_deadline() -> None:
    """The outbox may not start cancelling a debit that its request is still retrying."""
    raw = {
        "operators": {
            "o": {"backend": "ledger", "debit_deadline_s": 5, "call_timeout_s": 2, "recovery_after_s": 6}
        }
    }
    with pytest.raises(SettingsError, match="recovery_after_s must be at least"):
        from_mapping(raw, {})


async def test_the_outbox_worker_ends_its_pass_instead_of_being_cancelled(fresh_db, fresh_redis) -> None:
    """Stopping the worker lets the pass under way finish and ends `run` on its own, not by cancel."""
    app = create_app(_settings(fresh_db, fresh_redis))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        worker = app[keys.OUTBOX]
        task = asyncio.create_task(worker.run())
        await asyncio.sleep(0)  # the pass is under way
        worker.stop()
        await asyncio.wait_for(task, 10)
        assert task.done()
        assert not task.cancelled()
    finally:
        await runner.cleanup()
