"""The ledger engine: concurrent requests share a transaction and still come out as one by one."""

from __future__ import annotations

import asyncio

from helpers import *  # noqa: F403 -- the harness fixtures
from helpers import OPENING_MINOR, OPERATOR, PROVIDER, Gateway, Harness

from gateway import keys
from wallet.errors import RejectedError
from wallet.operations import Kind, Operation, Result
from wallet.policy import Capabilities

CAPS = Capabilities(free_rounds=True)


def bet(tx: str, amount: int, *, player: str = "p1", round_id: str = "r1") -> Operation:
    """Return a generic bet."""
    return Operation(Kind.DEBIT, PROVIDER, OPERATOR, player, "EUR", tx, amount, round_id, "g1")


def win(tx: str, amount: int, *, player: str = "p1", round_id: str = "r1") -> Operation:
    """Return a generic win."""
    return Operation(Kind.CREDIT, PROVIDER, OPERATOR, player, "EUR", tx, amount, round_id, "g1")


async def at_once(gw: Gateway, ops: list[Operation]) -> list[Result | BaseException]:
    """Submit operations in this order, all before the writer takes the next batch."""
    wallet = gw.app[keys.WALLET]
    tasks = [asyncio.create_task(wallet.execute(op, CAPS)) for op in ops]
    return list(await asyncio.gather(*tasks, return_exceptions=True))


async def batches(gw: Gateway) -> float:
    """Return how many transactions the engine has committed, by its own histogram."""
    samples = gw.app[keys.METRICS].engine_batch_size.collect()[0].samples
    return next(s.value for s in samples if s.name.endswith("_count"))


async def test_one_players_bets_in_one_batch_apply_in_arrival_order(harness: Harness):
    """Bets past the balance in one batch: the first ones apply, the rest are refused with the balance."""
    gw = await harness.gateway("ledger")
    await gw.open_player("p1", 1_000)
    before = await gw.pool.fetchval("SELECT count(*) FROM croupier.operations")
    outcomes = await at_once(gw, [bet(f"d{n}", 300) for n in range(5)])
    balances = [o.balance_minor if isinstance(o, Result) else None for o in outcomes]
    assert balances == [700, 400, 100, None, None]
    refusals = [o for o in outcomes if isinstance(o, RejectedError)]
    assert [(r.reason.value, r.balance_minor) for r in refusals] == [("insufficient_funds", 100)] * 2
    assert await gw.pool.fetchval("SELECT count(*) FROM croupier.operations") == before + 5
    # The five shared commits: the first may go alone while the rest queue behind it.
    assert await batches(gw) <= 2
    assert await gw.entries() == [-300, -300, -300]
    assert await gw.assert_books() == 100


async def test_a_win_after_its_bet_in_the_same_batch_is_paid(harness: Harness):
    """A bet and its round's win in one batch: the win sees the bet, the round counts both."""
    gw = await harness.gateway("ledger")
    await gw.open_player("p1")
    outcomes = await at_once(gw, [bet("d1", 250), win("c1", 500), win("c-none", 100, round_id="r-none")])
    assert isinstance(outcomes[0], Result)
    assert outcomes[0].balance_minor == OPENING_MINOR - 250
    assert isinstance(outcomes[1], Result)
    assert outcomes[1].balance_minor == OPENING_MINOR + 250
    assert isinstance(outcomes[2], RejectedError)
    assert outcomes[2].reason.value == "bet_not_found"
    round_ = await gw.pool.fetchrow("SELECT * FROM croupier.rounds WHERE round_id = 'r1'")
    assert (round_["bets_count"], round_["bets_minor"], round_["wins_count"], round_["wins_minor"]) == (
        1,
        250,
        1,
        500,
    )
    assert await gw.pool.fetchval("SELECT count(*) FROM croupier.rounds WHERE round_id = 'r-none'") == 0
    assert await gw.assert_books() == OPENING_MINOR + 250


async def test_a_repeat_in_the_same_batch_replays_the_first(harness: Harness):
    """The same bet twice in one batch is applied once; the copy is answered as a replay."""
    gw = await harness.gateway("ledger")
    await gw.open_player("p1")
    first, copy, other = await at_once(gw, [bet("d1", 250), bet("d1", 250), bet("d2", 100)])
    assert isinstance(first, Result)
    assert not first.replay
    assert isinstance(copy, Result)
    assert copy.replay
    assert isinstance(other, Result)
    assert other.balance_minor == OPENING_MINOR - 350
    assert await gw.entries() == [-250, -100]
    assert await gw.assert_books() == OPENING_MINOR - 350


async def test_a_failing_operation_fails_alone(harness: Harness):
    """An operation the database refuses fails by itself; the rest of its batch is applied."""
    gw = await harness.gateway("ledger")
    for player in ("p1", "p2", "p3"):
        await gw.open_player(player)
    # A fault inside PostgreSQL for one key only, as a broken disk page or a bad row would be.
    await gw.pool.execute(
        "CREATE FUNCTION croupier.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF NEW.external_id = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF;"
        " RETURN NEW; END $$;"
        " CREATE TRIGGER refuse_poison BEFORE INSERT ON croupier.operations"
        " FOR EACH ROW EXECUTE FUNCTION croupier.refuse_poison()"
    )
    ops = [bet("ok1", 100, player="p1"), bet("poison", 100, player="p2"), bet("ok2", 100, player="p3")]
    outcomes = await at_once(gw, ops)
    assert isinstance(outcomes[0], Result)
    assert isinstance(outcomes[2], Result)
    assert not isinstance(outcomes[1], Result)
    stored = await gw.pool.fetch("SELECT external_id FROM croupier.operations ORDER BY external_id")
    assert [r["external_id"] for r in stored] == ["ok1", "ok2"]
    for player in ("p1", "p3"):
        assert await gw.assert_books(player) == OPENING_MINOR - 100
    assert await gw.assert_books("p2") == OPENING_MINOR


async def test_two_nodes_racing_the_same_keys_apply_each_once(harness: Harness):
    """Two gateways on one database get the same bets at once: the UNIQUE key lets each apply once."""
    first = await harness.gateway("ledger")
    second = await harness.gateway("ledger")
    await first.open_player("p1")
    ops = [bet(f"d{n}", 100, round_id=f"r{n % 3}") for n in range(30)]
    a, b = await asyncio.gather(at_once(first, ops), at_once(second, ops))
    for x, y in zip(a, b, strict=True):
        assert isinstance(x, Result)
        assert isinstance(y, Result)
        assert x.transaction_id == y.transaction_id
        assert x.replay != y.replay  # one node applied it, the other answered its replay
    assert await first.pool.fetchval("SELECT count(*) FROM croupier.entries WHERE kind = 'operation'") == 30
    assert await first.assert_books() == OPENING_MINOR - 3_000
