"""Reconciliation against the reference operator wallet: differences found, safe ones healed, all recorded."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from helpers import *  # noqa: F403 -- the harness fixtures
from helpers import Gateway, Harness, Pam

from gateway import keys
from gateway.reconcile_job import LOCK_KEY, ReconcileJob
from wallet.backends.seamless import SeamlessWallet
from wallet.pam.server import create_pam_app
from wallet.pam.settings import PamSettings
from wallet.reconcile import Action, Kind
from wallet.reconciliation import Summary, run, run_ledger, seamless_lister

HORIZON_S = 600.0
CROUPIER = str(Path(sys.executable).parent / "croupier")
CONFIG = Path(__file__).resolve().parent.parent / "config" / "croupier.toml"


async def reconcile_now(gw: Gateway) -> Summary:
    """Reconcile the last hour of the gateway's operator against its PAM."""
    backend = gw.app[keys.WALLET].runtime("op1").backend
    assert isinstance(backend, SeamlessWallet)
    now = datetime.now(UTC)
    lister = seamless_lister(backend)
    since, until = now - timedelta(hours=1), now + timedelta(minutes=1)
    return await run(gw.pool, "op1", lister, since, until, now, HORIZON_S, metrics=gw.app[keys.METRICS])


async def _tx(gw: Gateway, external_id: str) -> uuid.UUID:
    found = await gw.pool.fetchval(
        "SELECT transaction_id FROM croupier.operations WHERE external_id = $1", external_id
    )
    assert found is not None
    return found  # type: ignore[no-any-return]


async def _bet_and_win(harness: Harness) -> tuple[Gateway, uuid.UUID]:
    """Start a seamless gateway where p1 (100.00 EUR) bet 1.00 and won 2.00; return it and the win's id."""
    gw = await harness.gateway("seamless")
    await gw.open_player("p1", 10_000)
    token = await gw.session()
    assert (await gw.debit("b1", "1.00", token=token)).ok
    assert (await gw.credit("w1", "2.00")).ok
    return gw, await _tx(gw, "w1")


async def test_books_that_agree_record_a_run_with_no_difference(harness: Harness) -> None:
    """Bets, wins and a refund applied on both sides: one run recorded, nothing to heal or report."""
    gw = await harness.gateway("seamless")
    await gw.open_player("p1", 10_000)
    token = await gw.session()
    assert (await gw.debit("b1", "1.00", token=token)).ok
    assert (await gw.credit("w1", "2.00")).ok
    assert (await gw.debit("b2", "3.00", token=token, round_id="r2")).ok
    assert (await gw.rollback("rb2", "b2", round_id="r2")).ok
    summary = await reconcile_now(gw)
    assert (summary.ours, summary.theirs, list(summary.differences)) == (4, 4, [])
    stored = await gw.pool.fetchrow(
        "SELECT ours, theirs FROM croupier.reconciliations WHERE id = $1", summary.reconciliation_id
    )
    assert tuple(stored) == (4, 4)


async def test_a_lost_win_is_delivered_again_once_and_a_stranger_is_reported(harness: Harness) -> None:
    """The operator lost a win and holds a credit nobody sent: the win is sent again, the stranger shown."""
    gw, win = await _bet_and_win(harness)
    assert gw.pam is not None
    # The operator loses the win (a restore from an old backup, say) and gains a stranger.
    async with gw.pam.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM pam.transactions WHERE transaction_id = $1", str(win))
        await conn.execute(
            "UPDATE pam.players SET balance_minor = balance_minor - 200 WHERE player_id = 'p1'"
        )
        stranger = uuid.uuid4()
        await conn.execute(
            "INSERT INTO pam.transactions (transaction_id, type, player_id, currency, amount_minor,"
            " round_id, provider, state, status)"
            " VALUES ($1, 'credit', 'p1', 'EUR', 500, 'r-x', 'other', 'applied', 'OK')",
            str(stranger),
        )
    assert await gw.balance() == 10_000 - 100

    first = await reconcile_now(gw)
    found = {(d.transaction_id, d.kind, d.action) for d in first.differences}
    assert found == {
        (win, Kind.MISSING_AT_OPERATOR, Action.REDELIVER),
        (stranger, Kind.UNKNOWN_TO_GATEWAY, Action.REPORT),
    }
    assert sorted(first.outcomes) == ["healing", "reported"]
    assert first.unhealed == 1

    # Run again before the outbox has delivered: it is in hand, nothing more is done.
    second = await reconcile_now(gw)
    assert sorted(second.outcomes) == ["already_healing", "reported"]

    assert await gw.run_outbox() == 1
    assert await gw.balance() == 10_000 - 100 + 200
    third = await reconcile_now(gw)
    assert [(d.transaction_id, d.kind) for d in third.differences] == [(stranger, Kind.UNKNOWN_TO_GATEWAY)]
    # A redelivered win is one transaction at the operator, under its own id.
    count = await gw.pam.pool.fetchval(
        "SELECT count(*) FROM pam.transactions WHERE transaction_id = $1", str(win)
    )
    assert count == 1
    recorded = await gw.pool.fetch(
        "SELECT outcome, count(*) FROM croupier.reconciliation_differences GROUP BY outcome ORDER BY outcome"
    )
    assert [tuple(r) for r in recorded] == [("already_healing", 1), ("healing", 1), ("reported", 3)]


async def test_a_debit_the_provider_was_told_failed_is_cancelled_at_the_operator(harness: Harness) -> None:
    """The gateway refused a bet for an unknown outcome, the operator kept it: reconciliation cancels it."""
    gw = await harness.gateway("seamless")
    assert gw.pam is not None
    await gw.open_player("p1", 10_000)
    token = await gw.session()
    assert (await gw.debit("b1", "1.00", token=token)).ok
    bet = await _tx(gw, "b1")
    # As if the operator's answer had been lost: the gateway told the provider the bet failed.
    async with gw.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE croupier.operations SET state = 'rejected', reason = 'operator_unknown'"
            " WHERE transaction_id = $1",
            bet,
        )
    summary = await reconcile_now(gw)
    assert [(d.transaction_id, d.kind, d.action) for d in summary.differences] == [
        (bet, Kind.STATUS_MISMATCH, Action.CANCEL_AT_OPERATOR)
    ]
    assert summary.outcomes == ["healing"]
    assert await gw.run_outbox() == 1
    assert await gw.balance() == 10_000  # the bet's money is back with the player
    again = await reconcile_now(gw)
    assert list(again.differences) == []


async def _croupier(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run the installed command without blocking this loop (the PAM it calls is served here)."""
    proc = await asyncio.create_subprocess_exec(
        CROUPIER, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_command_prints_the_run_and_exits_1_on_what_is_left(
    harness: Harness, tmp_path: Path
) -> None:
    """`croupier reconcile`: 0 when the books agree, 1 with a difference listed, 2 for an unknown operator."""
    pam = Pam(await harness.serve(create_pam_app(PamSettings(harness.database_url, {"pam-1": b"change-me"}))))
    config = tmp_path / "croupier.toml"
    text = CONFIG.read_text()
    assert 'wallet_url = "http://127.0.0.1:8090"' in text
    config.write_text(text.replace('wallet_url = "http://127.0.0.1:8090"', f'wallet_url = "{pam.url}"'))
    env = {**os.environ, "DATABASE_URL": harness.database_url, "REDIS_URL": harness.redis_url}
    args = ("reconcile", "--config", str(config), "--operator", "casino")
    code, out, err = await _croupier(*args, env=env)
    assert (code, "the books agree" in out) == (0, True), err
    stranger = uuid.uuid4()
    await pam.pool.execute(
        "INSERT INTO pam.transactions (transaction_id, type, player_id, currency, amount_minor,"
        " round_id, provider, state, status)"
        " VALUES ($1, 'credit', 'p1', 'EUR', 500, 'r', 'x', 'applied', 'OK')",
        str(stranger),
    )
    code, out, err = await _croupier(*args, env=env)
    assert code == 1, err
    assert f"unknown_to_gateway     {stranger}  reported" in out
    assert "left for a person: 1" in out
    code, out, err = await _croupier("reconcile", "--config", str(config), "--operator", "nobody", env=env)
    assert code == 2
    assert "croupier: error: no operator 'nobody' in the configuration" in err
    assert "Traceback" not in err
    # A ledger-backend operator's own books are checked instead: entries against balances.
    code, out, err = await _croupier("reconcile", "--config", str(config), "--operator", "house", env=env)
    assert (code, "accounts of the gateway's ledger" in out, "the books agree" in out) == (0, True, True), err


async def test_the_job_runs_on_one_node_at_a_time_and_chains_its_windows(harness: Harness) -> None:
    """Two nodes pass at once: one reconciles, the other finds the lock taken or nothing due."""
    a = await harness.gateway("seamless")
    b = await harness.gateway("seamless", pam=a.pam)
    await a.open_player("p1", 10_000)
    token = await a.session()
    assert (await a.debit("b1", "1.00", token=token)).ok
    # Late enough that the window ending one horizon ago holds the bet.
    now = datetime.now(UTC) + timedelta(hours=1, seconds=30)
    first, second = await asyncio.gather(
        a.app[keys.RECONCILE_JOB].run_once(now), b.app[keys.RECONCILE_JOB].run_once(now)
    )
    done = [r for r in (first, second) if r]
    assert len(done) == 1
    # The seamless operator against its wallet; the play-money one's own ledger beside it.
    found = [(s.books, s.ours, s.theirs, len(s.differences)) for s in done[0]]
    assert found == [("operator_wallet", 1, 1, 0), ("ledger", 0, 0, 0)]
    runs = await a.pool.fetch("SELECT since, until FROM croupier.reconciliations WHERE scheduled")
    assert len(runs) == 2
    # The same pass built the GGR roll-ups of the week's closed days, for each real-money operator.
    built = await a.pool.fetch("SELECT operator, count(*) FROM croupier.ggr_days GROUP BY 1")
    assert [tuple(r) for r in built] == [("op1", 7)]
    # The next pass takes the window after it, not the same one again.
    later = now + timedelta(hours=1)
    (following, _) = await b.app[keys.RECONCILE_JOB].run_once(later) or []
    windows = await a.pool.fetch(
        "SELECT since, until FROM croupier.reconciliations WHERE scheduled AND operator = 'op1' ORDER BY id"
    )
    assert windows[1]["since"] == windows[0]["until"]
    assert following.ours == 0


async def test_the_job_skips_while_another_node_holds_its_lock(harness: Harness) -> None:
    """Whoever holds the advisory lock runs the job; the others record nothing."""
    gw = await harness.gateway("seamless")
    holder = await asyncpg.connect(harness.database_url)
    try:
        assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
        now = datetime.now(UTC) + timedelta(hours=2)
        assert await gw.app[keys.RECONCILE_JOB].run_once(now) is None
        assert await gw.pool.fetchval("SELECT count(*) FROM croupier.reconciliations") == 0
    finally:
        await holder.close()
    assert await gw.app[keys.RECONCILE_JOB].run_once(now) is not None


async def _pam_state(gw: Gateway) -> list[tuple[object, ...]]:
    """Return everything the PAM holds, to show what a run changed there."""
    assert gw.pam is not None
    rows = await gw.pam.pool.fetch(
        "SELECT transaction_id, type, amount_minor, state FROM pam.transactions ORDER BY transaction_id"
    )
    players = await gw.pam.pool.fetch("SELECT player_id, balance_minor FROM pam.players ORDER BY player_id")
    return [tuple(r) for r in rows] + [tuple(p) for p in players]


async def test_an_amount_changed_at_the_operator_is_reported_and_nothing_moves(harness: Harness) -> None:
    """The PAM's copy of a win says 2.50 where the gateway sent 2.00: reported, nothing sent, counted."""
    gw, win = await _bet_and_win(harness)
    assert gw.pam is not None
    await gw.pam.pool.execute(
        "UPDATE pam.transactions SET amount_minor = 250 WHERE transaction_id = $1", str(win)
    )
    before = await _pam_state(gw)
    summary = await reconcile_now(gw)
    assert [(d.transaction_id, d.kind, d.action) for d in summary.differences] == [
        (win, Kind.AMOUNT_MISMATCH, Action.REPORT)
    ]
    assert summary.outcomes == ["reported"]
    assert await gw.pool.fetchval("SELECT count(*) FROM croupier.outbox WHERE state = 'scheduled'") == 0
    assert await gw.run_outbox() == 0
    assert await _pam_state(gw) == before
    metrics = await gw.metrics_text()
    labels = 'kind="amount_mismatch",operator="op1",outcome="reported"'
    line = f"croupier_reconciliation_differences_total{{{labels}}} 1.0"
    assert line in metrics


async def test_a_dead_lettered_refund_is_delivered_again(harness: Harness) -> None:
    """A refund the outbox gave up on never reached the PAM: reconciliation hands it back to the outbox."""
    gw = await harness.gateway("seamless")
    assert gw.pam is not None
    await gw.open_player("p1", 10_000)
    token = await gw.session()
    assert (await gw.debit("b1", "3.00", token=token)).ok
    assert (await gw.rollback("rb1", "b1")).ok
    bet, refund = await _tx(gw, "b1"), await _tx(gw, "rb1")
    # As if the PAM had refused the queued refund until the outbox gave up: it never got there.
    async with gw.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE croupier.operations SET state = 'queued' WHERE transaction_id = $1", refund
        )
        await conn.execute(
            "UPDATE croupier.outbox SET state = 'dead' FROM croupier.operations o"
            " WHERE o.id = outbox.operation_id AND o.transaction_id = $1",
            refund,
        )
    async with gw.pam.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM pam.transactions WHERE transaction_id = $1", str(refund))
        await conn.execute(
            "UPDATE pam.transactions SET state = 'applied' WHERE transaction_id = $1", str(bet)
        )
        await conn.execute(
            "UPDATE pam.players SET balance_minor = balance_minor - 300 WHERE player_id = 'p1'"
        )
    assert await gw.balance() == 10_000 - 300
    summary = await reconcile_now(gw)
    found = {
        (d.transaction_id, d.kind, d.action): o
        for d, o in zip(summary.differences, summary.outcomes, strict=True)
    }
    assert found == {
        (refund, Kind.MISSING_AT_OPERATOR, Action.REDELIVER): "healing",
        # The bet it refunds still stands there: that is the same fault, shown for a person too.
        (bet, Kind.STATUS_MISMATCH, Action.REPORT): "reported",
    }
    assert await gw.run_outbox() == 1
    assert await gw.balance() == 10_000
    assert list((await reconcile_now(gw)).differences) == []


async def _ledger_play(harness: Harness) -> Gateway:
    """Start a ledger-backend gateway and play every kind of movement through it, refusals included."""
    gw = await harness.gateway("ledger")
    await gw.open_player("p1", 10_000)
    await gw.open_player("p2", 500)
    token = await gw.session()
    assert (await gw.debit("b1", "1.00", token=token)).ok
    assert (await gw.credit("w1", "2.50")).ok
    assert (await gw.credit("w0", "0.00")).ok  # a losing result books a zero entry
    assert (await gw.debit("b2", "3.00", token=token, round_id="r2")).ok
    assert (await gw.rollback("rb2", "b2", round_id="r2")).ok
    assert (await gw.rollback("rb2-again", "b2", round_id="r2")).ok  # reverses nothing more
    assert (await gw.rollback("rb3", "b3", round_id="r3")).ok  # before its bet: a tombstone
    assert not (await gw.debit("b3", "1.00", token=token, round_id="r3")).ok
    assert not (await gw.debit("b4", "999.00", token=token, round_id="r4")).ok  # insufficient funds
    assert (await gw.debit("b1", "1.00", token=token)).ok  # a retry: the same one operation
    return gw


async def _check_ledger_now(gw: Gateway) -> Summary:
    now = datetime.now(UTC)
    return await run_ledger(gw.pool, "op1", now - timedelta(hours=1), now + timedelta(minutes=1), now)


async def test_a_ledger_backend_whose_entries_make_its_balances_agrees(harness: Harness) -> None:
    """Bets, wins, refunds, a rollback before its bet, refusals: each entry once, each balance its entries."""
    gw = await _ledger_play(harness)
    summary = await _check_ledger_now(gw)
    assert (summary.books, summary.differences) == ("ledger", [])
    # b1, w1, w0, b2, rb2, rb2-again, rb3, b3's tombstone and the refused b4: retries add none.
    assert summary.ours == 9
    assert summary.theirs == 2
    run = await gw.pool.fetchrow(
        "SELECT books, ours, theirs FROM croupier.reconciliations WHERE id = $1", summary.reconciliation_id
    )
    assert run is not None
    assert tuple(run) == ("ledger", summary.ours, summary.theirs)


async def test_a_ledger_balance_moved_without_an_entry_and_an_entry_booked_twice_are_reported(
    harness: Harness,
) -> None:
    """A balance changed by hand and a win booked twice: each found, reported, and nothing changed."""
    gw = await _ledger_play(harness)
    win = await _tx(gw, "w1")
    await gw.pool.execute(
        "UPDATE croupier.accounts SET balance_minor = balance_minor + 7 WHERE player_id = 'p2'"
    )
    # p2's account had no entry in the window: a booking brings it in.
    await gw.pool.execute(
        "INSERT INTO croupier.entries (kind, operator, player_id, currency, amount_minor, note)"
        " VALUES ('adjustment', 'op1', 'p2', 'EUR', 0, 'touch')"
    )
    await gw.pool.execute(
        "INSERT INTO croupier.entries (operation_id, operator, player_id, currency, amount_minor)"
        " SELECT id, operator, player_id, currency, 250 FROM croupier.operations WHERE transaction_id = $1",
        win,
    )
    before = await gw.pool.fetch("SELECT * FROM croupier.accounts ORDER BY player_id")
    summary = await _check_ledger_now(gw)
    found = sorted((d.kind, d.transaction_id) for d in summary.differences)
    assert found == sorted(
        [(Kind.APPLIED_TWICE, win), (Kind.BALANCE_MISMATCH, None), (Kind.BALANCE_MISMATCH, None)],
        key=str,
    )
    balances = {d.reason for d in summary.differences if d.kind is Kind.BALANCE_MISMATCH}
    assert any("p1 in EUR" in reason and "entries sum to" in reason for reason in balances)
    assert any(reason == "balance of p2 in EUR is 507, its entries sum to 500" for reason in balances)
    assert set(summary.outcomes) == {"reported"}
    assert summary.unhealed == 3
    assert await gw.pool.fetch("SELECT * FROM croupier.accounts ORDER BY player_id") == before
    stored = await gw.pool.fetch(
        "SELECT kind, subject, transaction_id FROM croupier.reconciliation_differences"
        " WHERE reconciliation_id = $1 ORDER BY kind, subject",
        summary.reconciliation_id,
    )
    assert [tuple(row) for row in stored] == [
        ("applied_twice", None, win),
        ("balance_mismatch", "p1/EUR", None),
        ("balance_mismatch", "p2/EUR", None),
    ]


async def test_the_job_checks_a_ledger_backend_operator_too(harness: Harness) -> None:
    """The scheduled pass covers ledger-backend operators, marked as the ledger's books."""
    gw = await _ledger_play(harness)
    job = ReconcileJob(gw.pool, gw.app[keys.WALLET], interval_s=7200, horizon_s=0)
    summaries = await job.run_once(datetime.now(UTC) + timedelta(seconds=1))
    assert summaries is not None
    runs = await gw.pool.fetch("SELECT id, operator, books FROM croupier.reconciliations WHERE scheduled")
    by_operator = {row["operator"]: (row["books"], row["id"]) for row in runs}
    assert by_operator["op1"][0] == "ledger"
    (mine,) = [s for s in summaries if s.reconciliation_id == by_operator["op1"][1]]
    assert (mine.books, mine.ours, mine.differences) == ("ledger", 9, [])
