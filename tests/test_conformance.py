"""The conformance kit: every registered adapter passes it; a broken adapter fails it readably."""

from __future__ import annotations

import dataclasses
import uuid
from typing import ClassVar

import pytest
from aiohttp import web

from providers import registry
from providers.base import Batch, Route
from providers.conformance.report import Verdict, run_battery
from providers.context import ProviderContext
from providers.generic.adapter import GenericAdapter
from providers.generic.simulator import GenericSimulator
from wallet.operations import Kind, Operation


@pytest.mark.parametrize("provider", registry.names())
async def test_every_registered_adapter_passes_the_kit(
    provider: str, postgres_url, fresh_db, fresh_redis
) -> None:
    """Each adapter registered under croupier.providers passes every scenario it can express."""
    adapter = registry.load(provider)
    report = await run_battery(adapter, fresh_db, fresh_redis)
    assert report.passed, report.table()
    minimum = adapter.simulator().kit_minimum_passes
    assert sum(f.verdict is Verdict.PASS for f in report.findings) >= minimum, report.table()


class ForgetfulAdapter(GenericAdapter):
    """A deliberately broken adapter: it gives every bet a fresh id, so retries pay twice."""

    name = "forgetful"
    routes: ClassVar = GenericAdapter.routes

    async def parse(
        self, route: Route, request: web.Request, body: bytes, ctx: ProviderContext
    ) -> Operation | Batch:
        """Parse as the generic protocol does, then lose the bet's idempotency key."""
        op = await super().parse(route, request, body, ctx)
        assert isinstance(op, Operation)
        if op.kind is Kind.DEBIT:
            return dataclasses.replace(op, external_id=f"{op.external_id}-{uuid.uuid4().hex}")
        return op


class ForgetfulSimulator(GenericSimulator):
    """The generic simulator, pointed at the forgetful adapter's routes."""

    provider: ClassVar[str] = "forgetful"


async def test_a_broken_adapter_fails_with_a_readable_report(fresh_db, fresh_redis) -> None:
    """An adapter that loses bet ids fails the replay scenarios, and the report says which and why."""
    report = await run_battery(ForgetfulAdapter, fresh_db, fresh_redis, ForgetfulSimulator)
    assert not report.passed
    failed = {f.scenario: f.detail for f in report.failures()}
    assert "duplicate bet replays" in failed
    assert "concurrent duplicates apply once" in failed
    assert "rollback before bet tombstones" in failed
    assert "replay" in failed["duplicate bet replays"]
    table = report.table()
    assert "FAIL" in table
    assert "conformance of provider 'forgetful'" in table
    assert f"{len(failed)} failed" in table
    # What the broken adapter does not touch still passes: the kit blames precisely.
    verdicts = {f.scenario: f.verdict for f in report.findings}
    assert verdicts["win without bet"] is Verdict.PASS
    assert verdicts["bad signature is refused"] is Verdict.PASS
