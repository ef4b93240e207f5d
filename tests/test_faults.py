"""Forwarding to the operator under faults (design.md section 3), through a real fault proxy.

The gateway calls the reference operator wallet through `FaultProxy`; the outbox worker's
background loop idles, and each test runs `OutboxWorker.run_once` itself when it wants a pass.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest
from helpers import *  # noqa: F403 -- the harness fixtures: harness, backend, gw
from helpers import OPENING_MINOR, OPERATOR, OPERATOR_KEY_ID, OPERATOR_SECRET, Gateway, Harness
from proxy import FailingOperator, FaultProxy, Mode

from gateway import keys
from wallet.outbox import OutboxWorker
from wallet.pam.server import PAM_VERIFIER
from wallet.policy import OperatorPolicy


def fast_policy(*, answer_after_operator: bool = False) -> OperatorPolicy:
    """Return a policy with deadlines small enough for tests."""
    return OperatorPolicy(
        name=OPERATOR,
        answer_after_operator=answer_after_operator,
        call_timeout_s=0.2,
        debit_deadline_s=0.3,
        credit_deadline_s=0.3,
        recovery_after_s=0.5,
    )


async def proxied_gateway(
    harness: Harness, *, answer_after_operator: bool = False
) -> tuple[Gateway, FaultProxy]:
    """Start a PAM, a proxy in front of it, and a seamless gateway calling the proxy."""
    pam = await harness.pam()
    proxy = FaultProxy("127.0.0.1", pam.port)
    await proxy.start()
    harness.stack.push_async_callback(proxy.close)
    gw = await harness.gateway(
        "seamless",
        pam=pam,
        wallet_url=proxy.url,
        policy=fast_policy(answer_after_operator=answer_after_operator),
    )
    await gw.open_player("p1")
    return gw, proxy


@pytest.fixture
async def proxied(harness: Harness) -> tuple[Gateway, FaultProxy]:
    """Return a store-and-forward seamless gateway whose operator calls pass a fault proxy."""
    return await proxied_gateway(harness)


def metric(text: str, name: str, **labels: str) -> float:
    """Return one sample's value from a Prometheus text page (0.0 if absent)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0


@pytest.mark.parametrize("fault", [Mode.DROP_REPLIES, Mode.DELAY], ids=["reply-dropped", "reply-too-late"])
async def test_debit_whose_reply_is_lost_is_declined_and_rolled_back(proxied, fault: Mode):
    """The operator commits a debit whose reply is lost: the bet is declined, then rolled back there."""
    gw, proxy = proxied
    assert gw.pam is not None
    token = await gw.session()
    # A delayed reply arrives long after the gateway's call timeout (0.2 s) and deadline (0.3 s).
    proxy.set_mode(fault, delay_s=5.0)
    answer = await gw.debit("d1", "2.50", token=token)
    assert (answer.http_status, answer.code, answer.body["retryable"]) == (200, "BET_DECLINED", False)
    if fault is Mode.DROP_REPLIES:
        # The operator answers only after it committed: it did take the bet, the answer was lost.
        assert proxy.replies_dropped >= 1
        assert await gw.pam.balance("p1") == 9_750
    row = await gw.operation("debit", "d1")
    assert (row["state"], row["reason"]) == ("rejected", "operator_unknown")
    [item] = await gw.outbox()
    assert (item["action"], item["state"]) == ("cancel_debit", "scheduled")
    assert (
        metric(
            await gw.metrics_text(),
            "croupier_operator_unknown_outcomes_total",
            operator=OPERATOR,
            call="debit",
        )
        >= 1
    )

    proxy.set_mode(Mode.PASS)
    assert await gw.run_outbox(passes=3) == 1
    assert await gw.pam.balance("p1") == OPENING_MINOR
    states = {
        (t["type"], t["transaction_id"] == str(row["transaction_id"])): t["state"]
        for t in await gw.pam.transactions()
    }
    assert states == {("debit", True): "rolled_back", ("rollback", False): "applied"}
    [item] = await gw.outbox()
    assert item["state"] == "delivered"
    # The declined bet stays declined for the provider's retries, and no money moved in the books.
    again = await gw.debit("d1", "2.50", token=token)
    assert again.code == "BET_DECLINED"
    assert await gw.entries() == []
    assert await gw.assert_books() == OPENING_MINOR


async def test_credit_whose_reply_is_lost_is_delivered_exactly_once(proxied):
    """A credit whose reply is lost is answered OK queued, retried by the outbox, and paid once."""
    gw, proxy = proxied
    assert gw.pam is not None
    token = await gw.session()
    assert (await gw.debit("d1", "2.50", token=token)).ok
    proxy.set_mode(Mode.DROP_REPLIES)
    answer = await gw.credit("c1", "5.00")
    assert answer.ok
    assert answer.body["queued"] is True
    assert proxy.replies_dropped >= 1
    assert (await gw.operation("credit", "c1"))["state"] == "queued"
    assert await gw.pam.balance("p1") == 10_250

    proxy.set_mode(Mode.PASS)
    assert await gw.run_outbox(passes=3) == 1
    assert (await gw.operation("credit", "c1"))["state"] == "applied"
    paid = [t for t in await gw.pam.transactions() if t["type"] == "credit"]
    assert [(c["state"], c["amount_minor"]) for c in paid] == [("applied", 500)]
    assert await gw.entries() == [-250, 500]
    assert await gw.assert_books() == 10_250
    again = await gw.credit("c1", "5.00")
    assert again.ok
    assert again.body["replay"] is True
    assert again.body["balance"] == "102.50"
    assert await gw.pam.balance("p1") == 10_250


async def test_credit_while_the_operator_is_down_waits_in_the_outbox(proxied):
    """With the operator down a credit is queued in the outbox, visible in metrics, and delivered later."""
    gw, proxy = proxied
    assert gw.pam is not None
    token = await gw.session()
    assert (await gw.debit("d1", "2.50", token=token)).ok
    proxy.set_mode(Mode.CUT)
    answer = await gw.credit("c1", "5.00")
    assert answer.ok
    assert answer.body["queued"] is True
    [_, item] = await gw.outbox()
    assert (item["action"], item["state"]) == ("credit", "scheduled")
    assert await gw.run_outbox() == 0  # still down: the worker tries and backs off
    [_, item] = await gw.outbox()
    assert (item["state"], item["attempts"]) == ("scheduled", 1)
    assert item["last_error"]
    assert metric(await gw.metrics_text(), "croupier_outbox_depth") == 1.0
    assert await gw.pam.balance("p1") == 9_750

    proxy.set_mode(Mode.PASS)
    # Skip the worker's backoff rather than wait for it.
    await gw.pool.execute("UPDATE croupier.outbox SET due_at = now() WHERE state = 'scheduled'")
    assert await gw.run_outbox() == 1
    [_, item] = await gw.outbox()
    assert item["state"] == "delivered"
    assert (await gw.operation("credit", "c1"))["state"] == "applied"
    text = await gw.metrics_text()
    assert metric(text, "croupier_outbox_depth") == 0.0
    assert metric(text, "croupier_outbox_delivered_total", action="credit", outcome="delivered") == 1.0
    assert await gw.assert_books() == 10_250


async def test_answer_after_operator_mode_keeps_the_provider_retrying_until_delivered(harness):
    """With answer_after_operator, a credit is retryable while the operator is down and OK once delivered."""
    gw, proxy = await proxied_gateway(harness, answer_after_operator=True)
    assert gw.pam is not None
    token = await gw.session()
    assert (await gw.debit("d1", "2.50", token=token)).ok
    proxy.set_mode(Mode.CUT)
    first = await gw.credit("c1", "5.00")
    assert (first.http_status, first.code, first.body["retryable"]) == (503, "UNAVAILABLE", True)
    assert (await gw.operation("credit", "c1"))["state"] == "queued"
    retry = await gw.credit("c1", "5.00")
    assert (retry.http_status, retry.code, retry.body["retryable"]) == (503, "IN_PROGRESS", True)

    proxy.set_mode(Mode.PASS)
    assert await gw.run_outbox() == 1
    done = await gw.credit("c1", "5.00")
    assert done.ok
    assert done.body["balance"] == "102.50"
    assert done.body["queued"] is False
    assert await gw.pam.balance("p1") == 10_250
    assert await gw.entries() == [-250, 500]
    assert await gw.assert_books() == 10_250


async def test_http_500_from_the_operator_is_an_unknown_outcome(harness):
    """A 500 is never taken as a refusal: the debit is declined and cancelled, the credit is queued."""
    front = FailingOperator(upstream_url=None)
    server = await harness.serve(front.app)
    gw = await harness.gateway(
        "seamless",
        wallet_url=str(server.make_url("/")).rstrip("/"),
        policy=fast_policy(),
    )
    token = await gw.session()
    debit = await gw.debit("d1", "2.50", token=token)
    assert (debit.http_status, debit.code) == (200, "BET_DECLINED")
    promo = await gw.credit("c1", "5.00", round_id="r9", kind="promo")
    assert promo.ok
    assert promo.body["queued"] is True
    assert (await gw.operation("debit", "d1"))["reason"] == "operator_unknown"
    assert (await gw.operation("credit", "c1"))["state"] == "queued"
    assert [(o["action"], o["state"]) for o in await gw.outbox()] == [
        ("cancel_debit", "scheduled"),
        ("credit", "scheduled"),
    ]
    assert await gw.run_outbox() == 0
    # Still failing: nothing is given up on, and nothing is marked dead.
    assert {o["state"] for o in await gw.outbox()} == {"scheduled"}
    assert await gw.entries() == []
    assert {"/v1/debit", "/v1/rollback", "/v1/credit"} <= set(front.calls)


async def test_http_500_after_the_operator_applied_is_reconciled_by_the_outbox(harness):
    """An operator that applies a debit and a credit but answers 500 ends consistent after the outbox."""
    pam = await harness.pam()
    front = FailingOperator(upstream_url=pam.url)
    server = await harness.serve(front.app)
    gw = await harness.gateway(
        "seamless",
        pam=pam,
        wallet_url=str(server.make_url("/")).rstrip("/"),
        policy=fast_policy(),
    )
    await gw.open_player("p1")
    token = await gw.session()
    assert (await gw.debit("d1", "2.50", token=token)).code == "BET_DECLINED"
    assert (await gw.credit("c1", "5.00", round_id="r9", kind="promo")).body["queued"] is True
    assert await pam.balance("p1") == 10_250  # both applied at the operator, both unknown here

    front.failing = False
    assert await gw.run_outbox(passes=3) == 2
    assert await pam.balance("p1") == 10_500
    states = sorted((t["type"], t["state"]) for t in await pam.transactions())
    assert states == [("credit", "applied"), ("debit", "rolled_back"), ("rollback", "applied")]
    assert [o["state"] for o in await gw.outbox()] == ["delivered", "delivered"]
    assert await gw.entries() == [500]
    assert await gw.assert_books() == 10_500


async def test_provider_refund_of_a_declined_bet_is_ok_and_the_operator_ends_whole(proxied):
    """A provider refunding a bet the gateway declined gets OK; the outbox still cancels it there."""
    gw, proxy = proxied
    assert gw.pam is not None
    token = await gw.session()
    proxy.set_mode(Mode.DROP_REPLIES)
    assert (await gw.debit("d1", "2.50", token=token)).code == "BET_DECLINED"
    refund = await gw.rollback("rb1", "d1")
    assert refund.ok
    assert refund.body["tombstone"] is False
    assert (await gw.operation("rollback", "rb1"))["state"] == "applied"
    proxy.set_mode(Mode.PASS)
    assert await gw.run_outbox(passes=3) == 1
    assert await gw.pam.balance("p1") == OPENING_MINOR
    assert await gw.entries() == []
    assert await gw.assert_books() == OPENING_MINOR


async def test_two_nodes_running_the_outbox_at_once_deliver_once(harness):
    """Outbox workers on two nodes sharing a database deliver a queued credit exactly once."""
    first, proxy = await proxied_gateway(harness)
    assert first.pam is not None
    second = await harness.gateway("seamless", pam=first.pam, policy=fast_policy())
    second.openings = first.openings
    token = await first.session()
    assert (await first.debit("d1", "2.50", token=token)).ok
    proxy.set_mode(Mode.CUT)
    assert (await first.credit("c1", "5.00")).body["queued"] is True
    proxy.set_mode(Mode.PASS)
    finished = await asyncio.gather(first.run_outbox(), second.run_outbox())
    assert sum(finished) == 1
    paid = [t for t in await first.pam.transactions() if t["type"] == "credit"]
    assert len(paid) == 1
    delivered = [
        metric(
            await node.metrics_text(), "croupier_outbox_delivered_total", action="credit", outcome="delivered"
        )
        for node in (first, second)
    ]
    assert sorted(delivered) == [0.0, 1.0]
    assert await second.assert_books() == 10_250


async def test_a_slow_operator_never_gets_one_outbox_row_from_two_nodes(harness):
    """However slow the operator, a row is delivered by one node: a pass never outlives a lease."""
    pam = await harness.pam()
    proxy = FaultProxy("127.0.0.1", pam.port)
    await proxy.start()
    harness.stack.push_async_callback(proxy.close)
    policy = dataclasses.replace(fast_policy(), call_timeout_s=1.0)
    first = await harness.gateway("seamless", pam=pam, wallet_url=proxy.url, policy=policy)
    await first.open_player("p1")
    second = await harness.gateway("seamless", pam=pam, wallet_url=proxy.url, policy=policy)
    token = await first.session()
    assert (await first.debit("d1", "2.50", token=token)).ok
    proxy.set_mode(Mode.CUT)
    for n in range(4):
        assert (await first.credit(f"c{n}", "1.00")).body["queued"] is True
    await first.pool.execute("UPDATE croupier.outbox SET due_at = now() WHERE state = 'scheduled'")
    # Each delivery takes 0.25 s, well inside the call timeout; the configured lease is shorter
    # than one pass over all four rows would take.
    proxy.set_mode(Mode.DELAY, delay_s=0.25)
    workers = [OutboxWorker(gw.app[keys.WALLET], lease_s=0.3) for gw in (first, second)]

    async def keep_polling(worker: OutboxWorker) -> int:
        done = 0
        for _ in range(12):
            done += await worker.run_once()
            await asyncio.sleep(0.1)
        return done

    finished = await asyncio.gather(*(keep_polling(w) for w in workers))
    assert sum(finished) == 4
    delivered = [
        metric(
            await gw.metrics_text(), "croupier_outbox_delivered_total", action="credit", outcome="delivered"
        )
        for gw in (first, second)
    ]
    assert sum(delivered) == 4
    paid = [t for t in await first.pam.transactions() if t["type"] == "credit"]
    assert len(paid) == 4
    assert await first.pam.balance("p1") == OPENING_MINOR - 250 + 400
    assert await first.assert_books() == OPENING_MINOR + 150


async def credit_state(gw: Gateway, external_id: str) -> str:
    """Return the stored state of a credit."""
    return str(
        await gw.pool.fetchval(
            "SELECT state FROM croupier.operations WHERE kind = 'credit' AND external_id = $1", external_id
        )
    )


async def test_owed_money_refused_for_our_signature_is_sent_again(harness: Harness):
    """A credit the operator refuses for our key (rotated there first) stays queued and is retried.

    The provider was told the win was paid (store and forward); losing it because our key or body
    was refused would silently drop owed money, so the outbox keeps sending until it is taken.
    """
    gw, proxy = await proxied_gateway(harness)
    token = await gw.session()
    assert (await gw.debit("d1", "1.00", token=token)).ok
    proxy.set_mode(Mode.CUT)
    win = await gw.credit("c1", "3.00")
    assert win.ok, win
    assert win.body["queued"] is True
    # The operator now only knows a key the gateway does not have: every call is refused 401.
    assert gw.pam is not None
    accepted = gw.pam.app[PAM_VERIFIER].secrets
    assert isinstance(accepted, dict)
    accepted.clear()
    accepted["other-key"] = b"not the gateway's secret"
    proxy.set_mode(Mode.PASS)
    await gw.run_outbox()
    assert await credit_state(gw, "c1") == "queued"
    row = await gw.pool.fetchrow(
        "SELECT state, attempts, last_error FROM croupier.outbox ORDER BY id DESC LIMIT 1"
    )
    assert row["state"] == "scheduled"
    assert "INVALID_SIGNATURE" in row["last_error"]
    assert await gw.pam.balance("p1") == OPENING_MINOR - 100
    # The operator takes the key again: the next pass delivers the credit exactly once.
    accepted.clear()
    accepted[OPERATOR_KEY_ID] = OPERATOR_SECRET
    await gw.pool.execute("UPDATE croupier.outbox SET due_at = now() WHERE state = 'scheduled'")
    await gw.run_outbox()
    assert await credit_state(gw, "c1") == "applied"
    assert await gw.pam.balance("p1") == OPENING_MINOR - 100 + 300
    assert await gw.assert_books() == OPENING_MINOR - 100 + 300


async def test_owed_money_refused_for_good_goes_dead_and_stays_owed(harness: Harness):
    """A queued credit the operator refuses for good stays owed (not a refusal) and raises the alarm."""
    gw, proxy = await proxied_gateway(harness)
    token = await gw.session()
    assert (await gw.debit("d1", "1.00", token=token)).ok
    proxy.set_mode(Mode.CUT)
    assert (await gw.credit("c1", "3.00")).body["queued"] is True
    # The player's account disappears at the operator: a definite refusal of the owed credit.
    assert gw.pam is not None
    await gw.pam.pool.execute("UPDATE pam.players SET player_id = 'gone' WHERE player_id = 'p1'")
    proxy.set_mode(Mode.PASS)
    await gw.run_outbox()
    assert await credit_state(gw, "c1") == "queued"
    row = await gw.pool.fetchrow("SELECT state, last_error FROM croupier.outbox ORDER BY id DESC LIMIT 1")
    assert (row["state"], row["last_error"]) == ("dead", "PLAYER_NOT_FOUND")
    assert metric(await gw.metrics_text(), "croupier_outbox_dead") == 1.0


async def test_a_pending_credit_the_operator_refuses_is_its_answer_not_a_dead_letter(harness: Harness):
    """A credit whose node died before answering anyone, then refused for good, is settled as refused."""
    gw, proxy = await proxied_gateway(harness)
    token = await gw.session()
    assert (await gw.debit("d1", "1.00", token=token)).ok
    proxy.set_mode(Mode.CUT)
    assert (await gw.credit("c1", "3.00")).body["queued"] is True
    # As if the node had died between taking the credit and answering: the provider has no answer.
    await gw.pool.execute(
        "UPDATE croupier.operations SET state = 'pending' WHERE kind = 'credit' AND external_id = 'c1'"
    )
    assert gw.pam is not None
    await gw.pam.pool.execute("UPDATE pam.players SET player_id = 'gone' WHERE player_id = 'p1'")
    proxy.set_mode(Mode.PASS)
    await gw.run_outbox()
    assert await credit_state(gw, "c1") == "rejected"
    row = await gw.pool.fetchrow("SELECT state, last_error FROM croupier.outbox ORDER BY id DESC LIMIT 1")
    assert (row["state"], row["last_error"]) == ("delivered", "PLAYER_NOT_FOUND")
    assert metric(await gw.metrics_text(), "croupier_outbox_dead") == 0.0
    retry = await gw.credit("c1", "3.00")
    assert (retry.ok, retry.code) == (False, "PLAYER_NOT_FOUND")
