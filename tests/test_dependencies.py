"""Decisions that depend on an operation still in flight at the operator are retryable, not final.

The gateway calls the reference operator wallet through a fault proxy that holds each reply for a
while, so a bet stays pending at the operator while its round's win or refund arrives.
"""

from __future__ import annotations

import asyncio

from helpers import *  # noqa: F403 -- the harness fixtures
from helpers import OPENING_MINOR, Gateway, Harness
from proxy import FaultProxy, Mode
from test_faults import proxied_gateway


async def held(gw: Gateway, proxy: FaultProxy, kind: str, external_id: str) -> None:
    """Wait until the gateway has stored the operation as pending and called the operator."""
    for _ in range(200):
        state = await gw.pool.fetchval(
            "SELECT state FROM croupier.operations WHERE kind = $1 AND external_id = $2", kind, external_id
        )
        if state == "pending":
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{kind} {external_id} never became pending")


async def stored(gw: Gateway, kind: str, external_id: str) -> int:
    """Return how many operations are stored under a key."""
    return int(
        await gw.pool.fetchval(
            "SELECT count(*) FROM croupier.operations WHERE kind = $1 AND external_id = $2", kind, external_id
        )
    )


async def test_win_during_its_pending_bet_is_in_progress_then_paid(harness: Harness):
    """A win that arrives while its bet is pending at the operator is retryable; its retry is paid."""
    gw, proxy = await proxied_gateway(harness)
    assert gw.pam is not None
    token = await gw.session()
    # Below the gateway's call timeout (0.2 s): the bet is slow, not lost.
    proxy.set_mode(Mode.DELAY, delay_s=0.15)
    bet = asyncio.create_task(gw.debit("d1", "2.50", token=token))
    await held(gw, proxy, "debit", "d1")
    early = await gw.credit("c1", "5.00")
    assert (early.code, early.body["retryable"]) == ("IN_PROGRESS", True)
    assert await stored(gw, "credit", "c1") == 0
    assert (await bet).ok
    proxy.set_mode(Mode.PASS)
    retry = await gw.credit("c1", "5.00")
    assert retry.ok, retry.body
    assert retry.body["replay"] is False
    assert await gw.pam.balance("p1") == OPENING_MINOR - 250 + 500
    assert await gw.entries() == [-250, 500]
    assert await gw.assert_books() == OPENING_MINOR + 250


async def test_win_whose_pending_bet_is_then_declined_is_refused_for_good(harness: Harness):
    """Once the pending bet is declined, the win's retry gets the final refusal: no bet."""
    gw, proxy = await proxied_gateway(harness)
    assert gw.pam is not None
    token = await gw.session()
    # Past the call timeout and the bet's deadline: the bet is declined as an unknown outcome.
    proxy.set_mode(Mode.DELAY, delay_s=5.0)
    bet = asyncio.create_task(gw.debit("d1", "2.50", token=token))
    await held(gw, proxy, "debit", "d1")
    early = await gw.credit("c1", "5.00")
    assert early.code == "IN_PROGRESS"
    assert (await bet).code == "BET_DECLINED"
    proxy.set_mode(Mode.PASS)
    final = await gw.credit("c1", "5.00")
    assert (final.code, final.body["retryable"]) == ("BET_NOT_FOUND", False)
    assert (await gw.operation("credit", "c1"))["state"] == "rejected"
    await gw.run_outbox(passes=3)
    assert await gw.pam.balance("p1") == OPENING_MINOR
    assert await gw.assert_books() == OPENING_MINOR


async def test_refund_during_a_pending_win_is_in_progress_then_decided(harness: Harness):
    """A refund of a bet whose round has a win pending at the operator waits for that win."""
    gw, proxy = await proxied_gateway(harness)
    assert gw.pam is not None
    token = await gw.session()
    assert (await gw.debit("d1", "2.50", token=token)).ok
    proxy.set_mode(Mode.DELAY, delay_s=0.15)
    win = asyncio.create_task(gw.credit("c1", "5.00"))
    await held(gw, proxy, "credit", "c1")
    early = await gw.rollback("rb1", "d1")
    assert (early.code, early.body["retryable"]) == ("IN_PROGRESS", True)
    assert await stored(gw, "rollback", "rb1") == 0
    assert (await win).ok
    proxy.set_mode(Mode.PASS)
    final = await gw.rollback("rb1", "d1")
    # The win was paid, so the bet can no longer be refunded: now that refusal is final.
    assert (final.code, final.body["retryable"]) == ("ALREADY_SETTLED", False)
    assert await gw.pam.balance("p1") == OPENING_MINOR + 250
    assert await gw.assert_books() == OPENING_MINOR + 250
