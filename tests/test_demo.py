"""`croupier demo` end to end: both operators' balances agree with the gateway's ledger."""

from __future__ import annotations

from gateway.demo import print_report, run_demo
from gateway.settings import Settings
from providers import registry


async def test_demo_rounds_agree_with_the_ledger(postgres_url, fresh_redis, capsys) -> None:
    """A short demo plays through every provider at once and ends with every balance explained."""
    tally, checks, waiting = await run_demo(
        Settings(database_url=postgres_url, redis_url=fresh_redis),
        rounds=120,
        players=8,
        seed=3,
    )
    assert tally.rounds == 120
    # Every registered provider played, through its own simulator and protocol.
    assert set(tally.by_provider) == set(registry.names())
    assert tally.bets > 0
    assert tally.wins > 0
    assert waiting == 0
    assert len(checks) == max(8, 2 * len(registry.names()))
    assert {c.operator for c in checks} == {"demo-casino", "demo-ledger"}
    assert all(c.agrees for c in checks), checks
    # Money moved: at least one balance differs from its opening.
    assert any(c.operator_minor != c.opening_minor for c in checks)
    # The seamless operator's wallet, reconciled against the ledger: everything on both sides, matched.
    rec = tally.reconciliation
    assert rec is not None
    assert rec.ours > 0
    assert rec.theirs > 0
    assert list(rec.differences) == []
    assert print_report(tally, checks, waiting) is True
    out = capsys.readouterr().out
    assert f"reconciliation {rec.reconciliation_id}: {rec.ours} transfers" in out
    assert f"AGREE ({len(checks)} players)" in out
