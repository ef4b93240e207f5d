"""Races that PostgreSQL must decide: copies of one operation at once, on one node or two."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from helpers import *  # noqa: F403 -- the harness fixtures: harness, backend, gw
from helpers import OPENING_MINOR, Gateway, Harness, definite

from gateway import keys
from providers.generic.simulator import Answer
from wallet.ledger import SCHEMA
from wallet.migrate import load_migrations, migrate

COPIES = 50


def _tally(answers: list[Answer]) -> tuple[int, int, int]:
    """Return how many answers applied, replayed, or asked to retry; fail on anything else."""
    applied = replayed = retry = 0
    for answer in answers:
        if answer.ok and not answer.body["replay"]:
            applied += 1
        elif answer.ok:
            replayed += 1
        elif (answer.http_status, answer.code, answer.body.get("retryable")) == (503, "IN_PROGRESS", True):
            retry += 1
        else:
            pytest.fail(f"unexpected answer to a copy: {answer}")
    return applied, replayed, retry


async def test_fifty_copies_of_one_debit_apply_once(gw: Gateway):
    """Fifty copies of one debit at the same moment apply once; the rest replay or get IN_PROGRESS."""
    token = await gw.session()
    answers = await asyncio.gather(*(gw.debit("d1", "2.50", token=token) for _ in range(COPIES)))
    applied, replayed, retry = _tally(list(answers))
    assert applied == 1
    assert applied + replayed + retry == COPIES
    assert await gw.entries() == [-250]
    assert await gw.counts() == (1, 1)
    assert await gw.assert_books() == 9_750
    # Once the dust settles, a late copy is a plain replay.
    late = await gw.debit("d1", "2.50", token=token)
    assert late.ok
    assert late.body["replay"] is True
    if gw.pam is not None:
        assert [t["type"] for t in await gw.pam.transactions()] == ["debit"]


async def test_fifty_copies_of_one_credit_pay_once(gw: Gateway):
    """Fifty copies of one win at the same moment pay the player once."""
    token = await gw.session()
    assert (await gw.debit("d1", "2.50", token=token)).ok
    answers = await asyncio.gather(*(gw.credit("c1", "5.00") for _ in range(COPIES)))
    applied, _, _ = _tally(list(answers))
    assert applied == 1
    assert await gw.entries() == [-250, 500]
    assert await gw.assert_books() == 10_250


async def test_refunds_of_one_bet_under_different_ids_at_once_refund_it_once(gw: Gateway):
    """Ten rollbacks with different ids for the same bet, all at once, refund it exactly once."""
    token = await gw.session()
    assert (await gw.debit("d1", "2.50", token=token)).ok
    answers = await asyncio.gather(*(definite(lambda i=i: gw.rollback(f"rb{i}", "d1")) for i in range(10)))
    assert all(answer.ok for answer in answers), answers
    assert await gw.entries() == [-250, 250]
    assert await gw.assert_books() == OPENING_MINOR
    if gw.pam is not None:
        rollbacks = [t for t in await gw.pam.transactions() if t["type"] == "rollback"]
        assert len(rollbacks) == 1


async def test_debit_and_its_rollback_at_the_same_moment_settle_consistently(gw: Gateway):
    """A debit racing its own rollback ends either refunded or refused; never taken for good."""
    token = await gw.session()
    debit, refund = await asyncio.gather(
        gw.debit("d1", "2.50", token=token),
        # A rollback that meets the debit in flight is told IN_PROGRESS and retries.
        definite(lambda: gw.rollback("rb1", "d1", round_id="r1")),
    )
    assert refund.ok, refund
    stored = (await gw.operation("debit", "d1"))["state"]
    if debit.ok:
        # The debit won the key: the rollback found it and reversed it.
        assert stored == "applied"
        assert await gw.entries() == [-250, 250]
    else:
        # The rollback's tombstone won the key: the debit is refused and nothing moved.
        assert debit.code == "TRANSACTION_ROLLED_BACK"
        assert stored == "tombstone"
        assert await gw.entries() == []
    assert await gw.assert_books() == OPENING_MINOR


async def test_one_debit_sent_to_two_nodes_sharing_a_database_applies_once(harness: Harness, backend: str):
    """Two gateway nodes on one database apply copies of one debit once between them."""
    first = await harness.gateway(backend)
    second = await harness.gateway(backend, pam=first.pam)
    await first.open_player("p1")
    second.openings = first.openings
    token = await first.session()
    copies = [node.debit("d1", "2.50", token=token) for _ in range(10) for node in (first, second)]
    answers = await asyncio.gather(*copies)
    applied, replayed, retry = _tally(list(answers))
    assert (applied, applied + replayed + retry) == (1, 20)
    assert await first.entries() == [-250]
    assert await second.assert_books() == 9_750


async def test_migrations_run_twice_at_once_apply_once(fresh_db: str):
    """Two nodes migrating one database at the same moment apply each version exactly once."""
    versions = [m.version for m in load_migrations("wallet")]
    conns = [await asyncpg.connect(fresh_db) for _ in range(2)]
    try:
        results = await asyncio.gather(*(migrate(c, "wallet", "croupier") for c in conns))
        assert sorted(results) == [[], versions]
        rows = await conns[0].fetch(
            "SELECT version, count(*) AS n FROM croupier.schema_migrations GROUP BY version ORDER BY version"
        )
        assert [(r["version"], r["n"]) for r in rows] == [(v, 1) for v in versions]
        # A third start finds nothing to do and the tables are usable.
        assert await migrate(conns[1], "wallet", "croupier") == []
        assert await conns[0].fetchval("SELECT count(*) FROM croupier.operations") == 0
    finally:
        for conn in conns:
            await conn.close()


async def test_the_idempotency_key_is_the_only_unique_guard_on_operations(fresh_db: str):
    """ON CONFLICT handles only the key's index: any other UNIQUE index would let racing copies fail."""
    conn = await asyncpg.connect(fresh_db)
    try:
        await migrate(conn, "wallet", SCHEMA)
        unique = await conn.fetch(
            "SELECT pg_get_indexdef(indexrelid) AS def FROM pg_index"
            " WHERE indrelid = 'croupier.operations'::regclass AND indisunique AND NOT indisprimary"
        )
    finally:
        await conn.close()
    assert [r["def"].split(" USING btree ")[1] for r in unique] == ["(provider, scope, kind, external_id)"]


async def test_a_burst_past_the_redis_pool_waits_instead_of_failing(harness: Harness):
    """More session look-ups at once than Redis connections: each waits its turn, none fails."""
    gw = await harness.gateway("ledger")
    token = await gw.session()
    sessions = gw.app[keys.SESSIONS]
    burst = 3 * gw.app[keys.SETTINGS].redis_pool_size  # redis-py's own default pool fails past 100
    found = await asyncio.gather(*(sessions.get(token) for _ in range(burst)))
    assert all(s is not None and s.player_id == "p1" for s in found)
