"""Property tests of the ledger engine: a batch must come out exactly as its operations one by one.

1. Random operations applied in one go (batched) and strictly one at a time give the same answers,
   stored rows, entries, rounds and balances.
2. `wallet.decide` over an in-memory snapshot agrees with a small model of the semantics table.
3. Two nodes given the same operations at once take every key once, and the books balance.
4. An operation PostgreSQL refuses fails alone; the rest of its batch is applied.

Each example runs in namespaces of its own (a prefix on player, round and transaction ids) on the
test's gateways, so the batched side and the one-by-one side share a database without meeting.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
import weakref
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg
from helpers import *  # noqa: F403 -- the harness fixtures
from helpers import OPERATOR, PROVIDER, Gateway, Harness
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gateway import keys
from providers.generic.adapter import GenericAdapter
from wallet import ledger
from wallet.core import Wallet
from wallet.decide import Decision, Item, Snapshot, account_key, decide, op_key, round_key
from wallet.engine import Job
from wallet.errors import InProgressError, MismatchError, Reason, RejectedError, WalletError
from wallet.operations import CreditKind, Kind, Operation, Result, SessionState, State
from wallet.policy import Capabilities, OperatorPolicy

CURRENCY = "EUR"
GAME = "g1"
# The operator's bet limit on the gateways here: some generated bets are above it.
MAX_BET_MINOR = 2_000
POLICY = OperatorPolicy(name=OPERATOR, max_bet_minor={CURRENCY: MAX_BET_MINOR})


# Each Hypothesis example is a new namespace on the test's gateway, never a new database.
def examples(count: int) -> settings:
    """Return the settings of a property test run for `count` examples."""
    return settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        # No explain phase: it reruns a failing example hundreds of times against the database.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    )


# What a step of a scenario does; repeated entries weigh the draw.
ACTIONS = ("debit",) * 4 + ("credit",) * 3 + ("rollback",) * 2 + ("end_round", "repeat", "repeat", "mismatch")
AMOUNTS = st.one_of(st.sampled_from([0, 1, 100, 250, 500, 1_000, 2_000, 2_001]), st.integers(0, 2_500))
LIMITS = ("none", "none", "none", "blocked", "lapsed", "max_bet", "loss")


@dataclass(frozen=True, slots=True)
class Step:
    """One generated operation, in terms of the scenario's players, rounds and earlier steps."""

    action: str
    player: int
    round_no: int
    amount: int
    pick: int
    variant: int
    # A bet or win in a currency the player holds no account in.
    foreign: bool = False


@dataclass(frozen=True, slots=True)
class Player:
    """A player of a scenario: an account (or none), its block flag and its own limits row."""

    balance_minor: int
    account: bool
    blocked: bool
    limits: str


STEPS = st.builds(
    Step,
    st.sampled_from(ACTIONS),
    st.integers(0, 2),
    st.integers(0, 2),
    AMOUNTS,
    st.integers(0, 99),
    st.integers(0, 7),
    st.sampled_from([False] * 15 + [True]),
)
PLAYERS = st.builds(
    Player,
    st.one_of(st.sampled_from([0, 100, 500, 1_000, 2_500]), st.integers(0, 3_000)),
    st.sampled_from([True] * 6 + [False]),
    st.sampled_from([False] * 6 + [True]),
    st.sampled_from(LIMITS),
)
CAPS = st.builds(
    Capabilities,
    wins_without_bets=st.booleans(),
    rollback_after_win=st.booleans(),
    rollback_of_credit=st.booleans(),
    ids_scoped_by_player=st.booleans(),
    free_rounds=st.just(True),  # noqa: FBT003 -- a strategy's value, not a flag
    rounds_end_when_bets_settled=st.booleans(),
)


# Building operations from steps.


def _op(kind: Kind, caps: Capabilities, player: str, external_id: str, **fields: Any) -> Operation:
    fields.setdefault("game_id", GAME)
    fields.setdefault("currency", CURRENCY)
    return Operation(
        kind,
        PROVIDER,
        OPERATOR,
        player,
        external_id=external_id,
        scope_by_player=caps.ids_scoped_by_player,
        **fields,
    )


def _debit(step: Step, n: int, caps: Capabilities) -> Operation:
    # Some bets take an id that rollbacks may name before the bet arrives (a tombstone).
    external_id = f"u{step.pick % 3}" if step.variant == 7 else f"t{n}"
    session = SessionState.EXPIRED if step.variant == 6 else SessionState.VALID
    return _op(
        Kind.DEBIT,
        caps,
        f"p{step.player}",
        external_id,
        amount_minor=step.amount,
        round_id=f"r{step.round_no}",
        session=session,
        currency="USD" if step.foreign else CURRENCY,
    )


def _credit(step: Step, n: int, earlier: Sequence[Operation], caps: Capabilities) -> Operation:
    kind = {5: CreditKind.FREEROUND, 6: CreditKind.BONUS}.get(step.variant, CreditKind.WIN)
    player, round_id = f"p{step.player}", f"r{step.round_no}"
    bets = [op for op in earlier if op.kind is Kind.DEBIT]
    if bets and step.variant < 3:
        # Most wins pay for a recent bet: its player, its round.
        player, round_id = bets[-1].player_id, bets[-1].round_id
    currency = "USD" if step.foreign else CURRENCY
    return _op(
        Kind.CREDIT,
        caps,
        player,
        f"t{n}",
        amount_minor=step.amount,
        round_id=round_id,
        credit_kind=kind,
        currency=currency,
    )


def _rollback(step: Step, n: int, earlier: Sequence[Operation], caps: Capabilities) -> Operation:
    kinds = (Kind.DEBIT, Kind.CREDIT) if caps.rollback_of_credit else (Kind.DEBIT,)
    targets = [op for op in earlier if op.kind in kinds]
    if not targets or step.pick % 4 == 3:
        # A rollback of a bet never seen, maybe with an amount.
        return _op(
            Kind.ROLLBACK,
            caps,
            f"p{step.player}",
            f"t{n}",
            amount_minor=step.amount if step.variant % 2 else None,
            round_id=f"r{step.round_no}" if step.variant & 4 else None,
            reference_id=f"u{step.pick % 3}",
        )
    # Most rollbacks name a recent bet (or win); some an older one.
    target = targets[-1 - step.pick % (len(targets) if step.pick % 5 == 4 else min(3, len(targets)))]
    amount = (None, target.amount_minor, (target.amount_minor or 0) + 1)[step.variant % 3]
    player = f"p{step.player}" if step.variant == 7 else target.player_id
    return _op(
        Kind.ROLLBACK,
        caps,
        player,
        f"t{n}",
        amount_minor=amount,
        round_id=target.round_id if step.variant & 4 else None,
        reference_id=target.external_id,
        reference_kind=target.kind,
    )


def _mismatch(step: Step, earlier: Operation) -> Operation:
    """Return the earlier operation with one compared field changed."""
    change = step.variant % 3
    if change == 0 and earlier.amount_minor is not None:
        return replace(earlier, amount_minor=earlier.amount_minor + 1)
    if change == 2:
        return replace(earlier, player_id=f"p{(int(earlier.player_id[1:]) + 1) % 3}")
    number = int(earlier.round_id[1:]) if earlier.round_id else 0
    return replace(earlier, round_id=f"r{(number + 1) % 3}")


def build(steps: Sequence[Step], caps: Capabilities, players: int) -> list[Operation]:
    """Turn steps into operations with namespace-free ids (p0, r1, t7, u2) for that many players."""
    ops: list[Operation] = []
    for n, drawn in enumerate(steps):
        step = replace(drawn, player=drawn.player % players)
        action = step.action if ops or step.action in ("debit", "credit", "end_round") else "debit"
        if action == "debit":
            ops.append(_debit(step, n, caps))
        elif action == "credit":
            ops.append(_credit(step, n, ops, caps))
        elif action == "rollback":
            ops.append(_rollback(step, n, ops, caps))
        elif action == "end_round":
            ops.append(_op(Kind.END_ROUND, caps, f"p{step.player}", f"t{n}", round_id=f"r{step.round_no}"))
        elif action == "repeat":
            ops.append(ops[step.pick % len(ops)])
        else:
            ops.append(_mismatch(step, ops[step.pick % len(ops)]))
    return ops


def localize(op: Operation, ns: str) -> Operation:
    """Return the operation with every id of the scenario prefixed by a namespace."""
    return replace(
        op,
        player_id=ns + op.player_id,
        external_id=ns + op.external_id,
        round_id=None if op.round_id is None else ns + op.round_id,
        reference_id=None if op.reference_id is None else ns + op.reference_id,
    )


def namespace() -> str:
    """Return a fresh prefix for one side of one example."""
    return f"x{uuid.uuid4().hex[:12]}-"


# Setting a scenario's players up and reading what the database holds.

_LIMITS_SQL = {
    "blocked": "INSERT INTO croupier.player_limits (operator, player_id, block_state, blocked_since)"
    " VALUES ($1, $2, 'blocked', now())",
    "lapsed": "INSERT INTO croupier.player_limits (operator, player_id, block_state, blocked_since,"
    " blocked_until) VALUES ($1, $2, 'blocked', now() - interval '2 days', now() - interval '1 day')",
    "max_bet": "INSERT INTO croupier.player_limits (operator, player_id, currency, max_bet_minor)"
    " VALUES ($1, $2, 'EUR', 300)",
    "loss": "INSERT INTO croupier.player_limits (operator, player_id, currency, loss_limit_minor,"
    " loss_period) VALUES ($1, $2, 'EUR', 1500, 'day')",
}


async def open_players(gw: Gateway, ns: str, players: Sequence[Player]) -> None:
    """Create the scenario's accounts and limits under the namespace."""
    for n, player in enumerate(players):
        player_id = f"{ns}p{n}"
        if player.account:
            await gw.open_player(player_id, player.balance_minor, blocked=player.blocked)
        if player.limits != "none":
            await gw.pool.execute(_LIMITS_SQL[player.limits], OPERATOR, player_id)


_BOOKS = {
    "operations": "SELECT kind, external_id, scope, player_id, amount_minor, round_id, reference_id,"
    " state, reason, balance_minor, reversed FROM croupier.operations WHERE external_id LIKE $1 ORDER BY id",
    "entries": "SELECT e.player_id, e.amount_minor, o.kind, o.scope, o.external_id FROM croupier.entries e"
    " JOIN croupier.operations o ON o.id = e.operation_id WHERE e.player_id LIKE $1 ORDER BY e.id",
    "rounds": "SELECT player_id, round_id, game_id, state, bets_count, live_bets, bets_minor, wins_count,"
    " wins_minor, refunds_count, refunds_minor, ends_when_settled, closed_at IS NOT NULL AS closed"
    " FROM croupier.rounds WHERE player_id LIKE $1 ORDER BY player_id, round_id",
    "accounts": "SELECT player_id, balance_minor, blocked FROM croupier.accounts WHERE player_id LIKE $1"
    " ORDER BY player_id",
}


async def books(gw: Gateway, ns: str) -> dict[str, list[tuple[Any, ...]]]:
    """Return what the database holds for a namespace, with the namespace stripped."""

    def strip(value: object) -> object:
        return value.replace(ns, "") if isinstance(value, str) else value

    held: dict[str, list[tuple[Any, ...]]] = {}
    for name, sql in _BOOKS.items():
        rows = await gw.pool.fetch(sql, ns + "%")
        held[name] = [tuple(strip(v) for v in row.values()) for row in rows]
    return held


def describe(outcome: object) -> tuple[tuple[object, ...], int | None]:
    """Return what an answer says (without the ids that differ between namespaces) and its balance."""
    if isinstance(outcome, Result):
        return ("ok", outcome.replay, outcome.tombstone, outcome.queued), outcome.balance_minor
    if isinstance(outcome, RejectedError):
        return ("rejected", outcome.reason.value, outcome.replay), outcome.balance_minor
    if isinstance(outcome, MismatchError):
        return ("mismatch", outcome.field), None
    if isinstance(outcome, WalletError):
        return (type(outcome).__name__,), None
    return ("fault", type(outcome).__name__), None


# Applying operations.


async def in_one_go(wallet: Wallet, ops: Sequence[Operation], caps: Capabilities) -> list[object]:
    """Submit the operations together, checking they reach the writer's queue in list order."""
    queue = wallet.engine._queue
    queued: list[Job] = []
    put = queue.put_nowait

    def record(job: Job) -> None:
        queued.append(job)
        put(job)

    queue.put_nowait = record  # type: ignore[method-assign]
    try:
        # Each task runs to its put_nowait before the next one starts: execute awaits nothing before.
        tasks = [asyncio.create_task(wallet.execute(op, caps)) for op in ops]
        outcomes = list(await asyncio.gather(*tasks, return_exceptions=True))
    finally:
        del queue.put_nowait
    assert len(queued) == len(ops)
    assert all(job.op is op for job, op in zip(queued, ops, strict=True)), "submitted out of order"
    return outcomes


async def one_at_a_time(gw: Gateway, ops: Sequence[Operation], caps: Capabilities) -> list[object]:
    """Apply the operations one after the other (the reference) and return their answers."""
    wallet = gw.app[keys.WALLET]
    outcomes: list[object] = []
    for op in ops:
        try:
            outcomes.append(await wallet.execute(op, caps))
        except Exception as exc:  # noqa: BLE001 -- an answer like any other, compared below
            outcomes.append(exc)
    return outcomes


@dataclass(slots=True)
class Sides:
    """One scenario applied twice on one gateway: batched, and one at a time."""

    gw: Gateway
    caps: Capabilities
    ops: list[Operation]
    batched: str = field(default_factory=namespace)
    reference: str = field(default_factory=namespace)
    transactions: list[int] = field(default_factory=list)

    async def run(self, players: Sequence[Player], max_batch: int = 256) -> tuple[list[object], list[object]]:
        """Apply the scenario both ways and compare everything; return both sides' answers."""
        await open_players(self.gw, self.batched, players)
        await open_players(self.gw, self.reference, players)
        engine = self.gw.app[keys.WALLET].engine
        transaction = engine._transaction

        async def counted(jobs: Sequence[Job], *args: Any, **kwargs: Any) -> Any:
            self.transactions.append(len(jobs))
            return await transaction(jobs, *args, **kwargs)

        window_s, batch = engine.window_s, engine.max_batch
        # A window long enough for every operation to join the batch; max_batch may still split it.
        engine.window_s, engine.max_batch = 0.02, max_batch
        engine._transaction = counted  # type: ignore[method-assign]
        batched_ops, reference_ops = self.local(self.batched), self.local(self.reference)
        try:
            got = await in_one_go(self.gw.app[keys.WALLET], batched_ops, self.caps)
        finally:
            engine.window_s, engine.max_batch = window_s, batch
            del engine._transaction
        want = await one_at_a_time(self.gw, reference_ops, self.caps)
        for ops, answers in ((batched_ops, got), (reference_ops, want)):
            for op, answer in zip(ops, answers, strict=True):
                assert not isinstance(answer, Result) or answer.transaction_id == op.transaction_id
        reference = await books(self.gw, self.reference)
        assert unexplained(self.ops, got, want) == []
        ghosts = ghost_rounds(self.ops)
        assert without_ghost_rounds(await books(self.gw, self.batched), reference, ghosts) == reference
        await check_invariants(self.gw, self.reference, players)
        await check_invariants(self.gw, self.batched, players)
        return got, want

    def local(self, ns: str) -> list[Operation]:
        """Return the scenario's operations in a namespace."""
        return [localize(op, ns) for op in self.ops]


# Known discrepancies between a batch and one by one, reproduced by the tests at the end of this
# module. The properties step over exactly these; set a flag to False once fixed. (A first one, an
# answer carrying the balance read after its whole batch, is fixed: one-by-one answers in a batch
# read the balance in the batch, right after their own savepoint.)
# The prefetch opens the round of a bet that turns out to be a copy of an earlier id with another
# round or player (a mismatch, stored nowhere): a round is left that one by one never creates,
# empty, with the attributes of the refused copy (its every-bet-settled rule, game, currency).
TOLERATE_GHOST_ROUNDS = False


def unexplained(ops: Sequence[Operation], got: Sequence[object], want: Sequence[object]) -> list[str]:
    """Return each answer of the batch, with its balance, that differs from the reference's."""
    wrong = []
    for n, (op, mine, theirs) in enumerate(zip(ops, got, want, strict=True)):
        if describe(mine) != describe(theirs):
            wrong.append(f"#{n} {op.kind} {op.external_id}: {describe(mine)} != {describe(theirs)}")
    return wrong


def _empty_round(row: tuple[Any, ...]) -> bool:
    return row[3] == "open" and not any(row[4:11])


def ghost_rounds(ops: Sequence[Operation]) -> set[tuple[str, str]]:
    """Return the rounds named by a copy of an earlier id with other fields: where a ghost may appear."""
    hashes: dict[tuple[str, str, str, str], set[bytes]] = defaultdict(set)
    named = set()
    for op in ops:
        seen = hashes[op_key(op)]
        if seen and op.request_hash() not in seen and op.round_id is not None:
            named.add((op.player_id, op.round_id))
        seen.add(op.request_hash())
    return named


def without_ghost_rounds(
    batched: dict[str, list[tuple[Any, ...]]],
    reference: dict[str, list[tuple[Any, ...]]],
    ghosts: set[tuple[str, str]],
) -> dict[str, list[tuple[Any, ...]]]:
    """Return the batched side's books without the known ghost rounds of mismatched copies.

    A ghost is an empty open round the reference does not have, or a round the reference opened
    later by an end of round, which does not take the protocol's every-bet-settled rule from it.
    """
    if not TOLERATE_GHOST_ROUNDS:
        return batched
    theirs = {row[:2]: row for row in reference["rounds"]}
    rounds = []
    for row in batched["rounds"]:
        key, kept = row[:2], row
        if key in ghosts and key not in theirs and _empty_round(row):
            continue
        if key in ghosts and key in theirs and row[:11] + row[12:] == theirs[key][:11] + theirs[key][12:]:
            kept = theirs[key]
        rounds.append(kept)
    return {**batched, "rounds": rounds}


async def check_invariants(gw: Gateway, ns: str, players: Sequence[Player]) -> None:
    """Check the books of a namespace: balances are their entries, rounds count their operations."""
    for n, player in enumerate(players):
        if player.account:
            assert await gw.assert_books(f"{ns}p{n}") >= 0
    held = await books(gw, ns)
    entries = defaultdict(list)
    for _, amount, kind, scope, external_id in held["entries"]:
        entries[kind, scope, external_id].append(amount)
    expected: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * 7)
    for kind, external_id, scope, player_id, amount, round_id, _, state, _, _, reversed_ in held[
        "operations"
    ]:
        assert state in ("applied", "rejected", "tombstone"), (kind, external_id, state)
        moved = entries.pop((kind, scope, external_id), [])
        if kind == "rollback":
            assert len(moved) <= 1, (kind, external_id, moved)
        if state != "applied" or kind not in ("debit", "credit"):
            assert kind == "rollback" or not moved, (kind, external_id, moved)
            continue
        assert moved == [amount if kind == "credit" else -amount], (kind, external_id, moved)
        _count(expected[player_id, round_id], kind, amount, reversed_)
    assert not entries, f"entries of operations not found: {entries}"
    for player_id, round_id, _, _, *counts, _, _ in held["rounds"]:
        assert counts == expected.pop((player_id, round_id), [0] * 7), (player_id, round_id, counts)
    assert not expected, f"operations counted in rounds that do not exist: {expected}"


def _count(counters: list[int], kind: str, amount: int, reversed_: bool) -> None:
    """Count an applied bet or win as its round's columns should (bets, live, bets_minor, wins, ...)."""
    if kind == "debit":
        counters[0] += 1
        counters[2] += amount
        if reversed_:
            counters[5] += 1
            counters[6] += amount
        else:
            counters[1] += 1
    elif not reversed_:
        counters[3] += 1
        counters[4] += amount


_GATEWAYS: weakref.WeakKeyDictionary[Harness, list[Gateway]] = weakref.WeakKeyDictionary()


async def nodes(harness: Harness, count: int = 1) -> list[Gateway]:
    """Return the test's gateways on its one database, started by its first example."""
    started = _GATEWAYS.setdefault(harness, [])
    while len(started) < count:
        started.append(await harness.gateway("ledger", policy=POLICY))
    return started[:count]


# 1. A batch against the same operations one by one.


@examples(120)
@given(
    caps=CAPS,
    players=st.lists(PLAYERS, min_size=1, max_size=3),
    steps=st.lists(STEPS, min_size=5, max_size=40),
    max_batch=st.sampled_from([256, 256, 7, 3]),
)
async def test_a_batch_comes_out_as_one_by_one(
    harness: Harness, caps: Capabilities, players: list[Player], steps: list[Step], max_batch: int
):
    """The same operations batched and one at a time: the same answers, rows, entries and rounds."""
    (gw,) = await nodes(harness)
    await Sides(gw, caps, build(steps, caps, len(players))).run(players, max_batch)


# 2. The pure decisions against a small model of the semantics table, with no database.

Verdict = tuple[str, str | None, int | None, int | None, int | None]
POLICIES = st.sampled_from(
    [
        OperatorPolicy(name=OPERATOR),
        POLICY,
        POLICY,
        OperatorPolicy(name=OPERATOR, max_bet_minor={CURRENCY: 400}, loss_limit_minor={"USD": 100}),
        # Every bet of this operator is loss-limited: all of them go to the one-by-one path.
        OperatorPolicy(name=OPERATOR, loss_limit_minor={CURRENCY: 10_000}),
    ]
)
PURE_PLAYERS = st.builds(
    Player,
    st.one_of(st.sampled_from([0, 100, 500, 1_000, 2_500]), st.integers(0, 3_000)),
    st.sampled_from([True] * 6 + [False]),
    st.sampled_from([False] * 6 + [True]),
    st.sampled_from((*LIMITS, "usd")),
)
# Rounds stored before the batch: (player, round) -> (state, bets, live bets, wins, ends when settled).
STORED_ROUNDS = st.dictionaries(
    st.tuples(st.integers(0, 2), st.integers(0, 2)),
    st.tuples(
        st.sampled_from(["open", "open", "closed"]),
        st.integers(0, 3),
        st.integers(0, 3),
        st.integers(0, 2),
        st.booleans(),
    ),
    max_size=4,
)


def _limits_row(kind: str) -> dict[str, Any]:
    """Return a player's own limits row as the prefetch returns it."""
    row: dict[str, Any] = dict.fromkeys(ledger.PLAYER_LIMIT_COLUMNS) | {"blocked_now": False}
    if kind in ("blocked", "lapsed"):
        row |= {"block_state": "blocked", "blocked_since": "2025-01-01T00:00:00+00:00"}
        row["blocked_now"] = kind == "blocked"
    elif kind == "max_bet":
        row |= {"currency": CURRENCY, "max_bet_minor": 300}
    elif kind == "loss":
        row |= {"currency": CURRENCY, "loss_limit_minor": 1_500, "loss_period": "day"}
    elif kind == "usd":
        # Own amounts in another currency: they do not apply to bets in euros.
        row |= {"currency": "USD", "max_bet_minor": 1}
    return row


def _round_row(player_id: str, round_id: str, **values: Any) -> dict[str, Any]:
    row = {
        "provider": PROVIDER,
        "operator": OPERATOR,
        "player_id": player_id,
        "round_id": round_id,
        "game_id": GAME,
        "currency": CURRENCY,
        "state": "open",
        "ends_when_settled": False,
    }
    counters = ("bets_count", "live_bets", "bets_minor", "wins_count", "wins_minor")
    return row | dict.fromkeys((*counters, "refunds_count", "refunds_minor"), 0) | values


def prefetched(
    players: Sequence[Player],
    rounds: dict[tuple[int, int], tuple[str, int, int, int, bool]],
    stored: set[int],
    items: Sequence[Item],
) -> Snapshot:
    """Return the snapshot the prefetch would take: stored rows, and the rounds the batch opens."""
    accounts = {
        (OPERATOR, f"p{n}", CURRENCY): {
            "operator": OPERATOR,
            "player_id": f"p{n}",
            "currency": CURRENCY,
            "balance_minor": p.balance_minor,
            "blocked": p.blocked,
        }
        for n, p in enumerate(players)
        if p.account
    }
    rows = {}
    for (player, round_no), (state, bets, drawn_live, wins, ends) in rounds.items():
        live = min(drawn_live, bets)
        rows[PROVIDER, OPERATOR, f"p{player}", f"r{round_no}"] = _round_row(
            f"p{player}",
            f"r{round_no}",
            state=state,
            bets_count=bets,
            live_bets=live,
            bets_minor=100 * bets,
            wins_count=wins,
            wins_minor=50 * wins,
            refunds_count=bets - live,
            refunds_minor=100 * (bets - live),
            ends_when_settled=ends,
        )
    existing = {op_key(items[n].op) for n in stored if n < len(items)}
    for item in items:
        key = round_key(item.op)
        if item.creates_round() and op_key(item.op) not in existing and key not in rows:
            ends = item.caps.rounds_end_when_bets_settled
            rows[key] = _round_row(key[2], key[3], game_id=item.op.game_id, ends_when_settled=ends)
    limits = {(OPERATOR, f"p{n}"): _limits_row(p.limits) for n, p in enumerate(players) if p.limits != "none"}
    return Snapshot(existing, rows, accounts, limits)


def verdict(decision: Decision) -> Verdict:
    """Return what a decision stores and answers."""
    reason = decision.reason.value if decision.reason is not None else None
    return (
        decision.state.value,
        reason,
        decision.stored_balance_minor,
        decision.balance_minor,
        decision.entry_minor,
    )


class Model:
    """The semantics table for bets and wins on our own ledger, written out plainly."""

    def __init__(self, snap: Snapshot) -> None:
        self.balances = {key: int(a["balance_minor"]) for key, a in snap.accounts.items()}
        self.blocked = {key: bool(a["blocked"]) for key, a in snap.accounts.items()}
        self.rounds = copy.deepcopy(snap.rounds)
        self.existing = set(snap.existing)
        self.limits = snap.player_limits

    def run(self, items: Sequence[Item]) -> list[Verdict | None]:
        """Decide items in order; None where the one-by-one path takes over (a repeat, no account...)."""
        verdicts: list[Verdict | None] = []
        for item in items:
            decided = None
            if op_key(item.op) not in self.existing and account_key(item.op) in self.balances:
                decided = self.debit(item) if item.op.kind is Kind.DEBIT else self.credit(item)
            if decided is not None:
                self.existing.add(op_key(item.op))
            verdicts.append(decided)
        return verdicts

    def _refusal(self, item: Item) -> str | None:
        op, policy = item.op, item.policy
        row = self.limits.get((op.operator, op.player_id))
        own = row if row is not None and row["currency"] == op.currency else None
        ceilings = [policy.max_bet_minor.get(op.currency), own["max_bet_minor"] if own else None]
        if row is not None and row["blocked_now"]:
            return "player_blocked"
        if op.session is SessionState.EXPIRED:
            return "session_expired"
        if any(c is not None and (op.amount_minor or 0) > c for c in ceilings):
            return "limit_exceeded"
        if self.rounds[round_key(op)]["state"] == "closed":
            return "round_closed"
        return None

    def _loss_limited(self, item: Item) -> bool:
        op = item.op
        row = self.limits.get((op.operator, op.player_id))
        own = row["loss_limit_minor"] if row is not None and row["currency"] == op.currency else None
        return own is not None or item.policy.loss_limit_minor.get(op.currency) is not None

    def debit(self, item: Item) -> Verdict | None:
        """Decide a bet, or return None for a loss-limited player (the one-by-one path)."""
        op = item.op
        if self._loss_limited(item):
            return None
        key, amount = account_key(op), op.amount_minor or 0
        balance = self.balances[key]
        reason = self._refusal(item)
        if reason is not None:
            return ("rejected", reason, None, balance, None)
        if self.blocked[key]:
            return ("rejected", "player_blocked", balance, balance, None)
        if balance < amount:
            return ("rejected", "insufficient_funds", balance, balance, None)
        self.balances[key] = balance - amount
        round_ = self.rounds[round_key(op)]
        round_["bets_count"] += 1
        round_["live_bets"] += 1
        round_["bets_minor"] += amount
        return ("applied", None, balance - amount, balance - amount, -amount)

    def credit(self, item: Item) -> Verdict:
        """Decide a win: paid unless it needs a bet the round lacks, or the round's bets were refunded."""
        op, key, amount = item.op, account_key(item.op), item.op.amount_minor or 0
        balance = self.balances[key]
        round_ = self.rounds.get(round_key(op))
        has_bet = round_ is not None and round_["bets_count"] > 0
        if not has_bet and op.credit_kind is CreditKind.WIN and not item.caps.wins_without_bets:
            return ("rejected", "bet_not_found", None, balance, None)
        assert round_ is not None
        if has_bet and round_["live_bets"] == 0 and round_["refunds_count"] > 0:
            return ("rejected", "bet_rolled_back", None, balance, None)
        self.balances[key] = balance + amount
        round_["wins_count"] += 1
        round_["wins_minor"] += amount
        settled = round_["wins_count"] + round_["refunds_count"] >= round_["bets_count"] > 0
        if round_["ends_when_settled"] and round_["state"] == "open" and settled:
            round_["state"] = "closed"
        return ("applied", None, balance + amount, balance + amount, amount)


def decide_around(items: Sequence[Item], snap: Snapshot) -> list[Decision | None]:
    """Decide every item, as the engine does: each run up to an item decide leaves (None), then the rest."""
    decisions: list[Decision | None] = []
    rest = list(items)
    while rest:
        decided = decide(rest, snap)
        decisions += decided
        rest = rest[len(decided) :]
        if rest:
            decisions.append(None)
            rest = rest[1:]
    return decisions


def decide_each(items: Sequence[Item], snap: Snapshot) -> list[Decision | None]:
    """Decide items one call each, checking what each single decision may change."""
    decisions: list[Decision | None] = []
    for item in items:
        before = copy.deepcopy(snap)
        got = decide([item], snap)
        if not got:
            assert snap == before, "an operation left to the one-by-one path changed the snapshot"
            decisions.append(None)
            continue
        (decision,) = got
        assert all(a["balance_minor"] >= 0 for a in snap.accounts.values())
        if decision.state is not State.APPLIED:
            # A refusal stores its row and nothing else: no money, no round, nothing to write back.
            assert decision.entry_minor is None
            assert (snap.accounts, snap.rounds) == (before.accounts, before.rounds)
            assert (snap.touched_accounts, snap.touched_rounds) == (
                before.touched_accounts,
                before.touched_rounds,
            )
        decisions.append(decision)
    return decisions


def _check_counts(decisions: Sequence[Decision], opening: Snapshot, snap: Snapshot) -> None:
    """Check every applied bet and win is counted once in its account and its round."""
    for key, account in snap.accounts.items():
        entries = [d.entry_minor or 0 for d in decisions if account_key(d.item.op) == key]
        assert account["balance_minor"] == opening.accounts[key]["balance_minor"] + sum(entries)
    for key, row in snap.rounds.items():
        applied = [d.item.op for d in decisions if d.state is State.APPLIED and round_key(d.item.op) == key]
        bets = [op.amount_minor or 0 for op in applied if op.kind is Kind.DEBIT]
        wins = [op.amount_minor or 0 for op in applied if op.kind is Kind.CREDIT]
        before = opening.rounds[key]
        assert row["bets_count"] - before["bets_count"] == len(bets)
        assert row["live_bets"] - before["live_bets"] == len(bets)
        assert row["bets_minor"] - before["bets_minor"] == sum(bets)
        assert row["wins_count"] - before["wins_count"] == len(wins)
        assert row["wins_minor"] - before["wins_minor"] == sum(wins)
        assert (key in snap.touched_rounds) == bool(applied)


@examples(500)
@given(
    caps=CAPS,
    policy=POLICIES,
    players=st.lists(PURE_PLAYERS, min_size=1, max_size=3),
    rounds=STORED_ROUNDS,
    stored=st.sets(st.integers(0, 50), max_size=3),
    steps=st.lists(STEPS, min_size=3, max_size=40),
)
def test_decisions_follow_the_semantics_table(
    caps: Capabilities,
    policy: OperatorPolicy,
    players: list[Player],
    rounds: dict[tuple[int, int], tuple[str, int, int, int, bool]],
    stored: set[int],
    steps: list[Step],
):
    """decide() over a snapshot: as the model says, as one call per item, and every bet counted once."""
    items = [
        Item(op, caps, policy)
        for op in build(steps, caps, len(players))
        if op.kind in (Kind.DEBIT, Kind.CREDIT)
    ]
    snap = prefetched(players, rounds, stored, items)
    opening = copy.deepcopy(snap)
    model = Model(opening)
    decisions = decide_around(items, snap)
    assert [d if d is None else verdict(d) for d in decisions] == model.run(items)
    assert snap.rounds == model.rounds
    assert {key: a["balance_minor"] for key, a in snap.accounts.items()} == model.balances
    assert all(a["balance_minor"] >= 0 for a in snap.accounts.values())
    each = copy.deepcopy(opening)
    assert decide_each(items, each) == decisions
    assert each == snap
    _check_counts([d for d in decisions if d is not None], opening, snap)


# 3. Two nodes on one database given the same operations at once, as a provider retrying on both.


def _copy_verdict(op: Operation, answer: object, row: dict[str, Any] | None) -> str:
    """Classify one node's answer to one copy against the stored row; fail on an impossible one."""
    if isinstance(answer, InProgressError):
        return "retry"
    if row is None:
        # Only a rollback that names its bet with other fields (a mismatch) is stored nowhere.
        assert op.kind is Kind.ROLLBACK, f"nothing stored for {op.kind} {op.external_id}: {answer!r}"
        assert isinstance(answer, MismatchError), answer
        return "mismatch"
    if row["state"] == "tombstone":
        # A rollback claimed this bet's key first: every copy of the bet is refused for it.
        assert isinstance(answer, RejectedError), answer
        assert answer.reason is Reason.TRANSACTION_ROLLED_BACK
        return "tombstone"
    if bytes(row["request_hash"]) != op.request_hash():
        assert isinstance(answer, MismatchError), answer
        return "mismatch"
    if isinstance(answer, Result):
        assert row["state"] == "applied", (row["state"], answer)
        if not answer.replay and op.kind in (Kind.DEBIT, Kind.CREDIT):
            assert answer.balance_minor == row["balance_minor"]
        return "replay" if answer.replay else "original"
    assert isinstance(answer, RejectedError), answer
    assert (row["state"], row["reason"]) == ("rejected", answer.reason.value), (row, answer)
    return "replay" if answer.replay else "original"


async def check_copies(
    gw: Gateway, ns: str, ops: Sequence[Operation], answers: Sequence[list[object]]
) -> None:
    """Check each key was taken once: one original answer, every other copy a replay of it (or retry)."""
    rows = await gw.pool.fetch("SELECT * FROM croupier.operations WHERE external_id LIKE $1", ns + "%")
    stored = {(r["provider"], r["scope"], r["kind"], r["external_id"]): dict(r) for r in rows}
    originals: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for n, op in enumerate(ops):
        for node in answers:
            if _copy_verdict(op, node[n], stored.get(op_key(op))) == "original":
                originals[op_key(op)] += 1
    for key, row in stored.items():
        assert originals[key] == (0 if row["state"] == "tombstone" else 1), (
            key,
            row["state"],
            originals[key],
        )


@examples(60)
@given(
    caps=CAPS,
    players=st.lists(PLAYERS, min_size=1, max_size=3),
    steps=st.lists(STEPS, min_size=5, max_size=30),
    windows=st.tuples(st.sampled_from([0.0, 0.001, 0.005]), st.sampled_from([0.0, 0.001, 0.005])),
)
async def test_two_nodes_given_the_same_operations_take_each_key_once(
    harness: Harness,
    caps: Capabilities,
    players: list[Player],
    steps: list[Step],
    windows: tuple[float, float],
):
    """The same ids on two nodes at once: every key applied once, the books balance, copies replay it."""
    first, second = await nodes(harness, 2)
    ns = namespace()
    await open_players(first, ns, players)
    ops = [localize(op, ns) for op in build(steps, caps, len(players))]
    engines = [gw.app[keys.WALLET].engine for gw in (first, second)]
    before = [engine.window_s for engine in engines]
    for engine, window_s in zip(engines, windows, strict=True):
        engine.window_s = window_s
    try:
        answers = await asyncio.gather(
            in_one_go(first.app[keys.WALLET], ops, caps), in_one_go(second.app[keys.WALLET], ops, caps)
        )
    finally:
        for engine, window_s in zip(engines, before, strict=True):
            engine.window_s = window_s
    for node in answers:
        faults = [a for a in node if not isinstance(a, Result | WalletError)]
        assert not faults, faults
    await check_copies(first, ns, ops, answers)
    await check_invariants(first, ns, players)


# 4. One operation that fails inside PostgreSQL fails alone; the rest of its batch is applied.

# A trigger in the test's database refuses any operation or round whose ids carry POISON, as a
# constraint or a fault of the server would: the statement fails, on either path of the batch.
POISON = "!poison"
POISON_TRIGGER = f"""
CREATE OR REPLACE FUNCTION croupier.test_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF concat(NEW.external_id, NEW.round_id, NEW.game_id) LIKE '%{POISON}%' THEN
        RAISE EXCEPTION 'poisoned id' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS test_poison ON croupier.operations;
CREATE TRIGGER test_poison BEFORE INSERT ON croupier.operations
    FOR EACH ROW EXECUTE FUNCTION croupier.test_poison();
"""
POISONS = {
    # Bets and wins decided set-based: the batch's statements fail, so it is split and run again.
    "bet": lambda n, caps: _op(Kind.DEBIT, caps, "p0", f"t{n}{POISON}", amount_minor=1, round_id="r0"),
    "bet's game": lambda n, caps: _op(
        Kind.DEBIT, caps, "p0", f"t{n}", amount_minor=1, round_id="r0", game_id=f"g{POISON}"
    ),
    "free round's round": lambda n, caps: _op(
        Kind.CREDIT,
        caps,
        "p0",
        f"t{n}",
        amount_minor=1,
        round_id=f"r{POISON}",
        credit_kind=CreditKind.FREEROUND,
    ),
    # One by one in the batch: its savepoint rolls back, the batch goes on.
    "rollback": lambda n, caps: _op(Kind.ROLLBACK, caps, "p0", f"t{n}{POISON}", reference_id="u0"),
    "end of round": lambda n, caps: _op(Kind.END_ROUND, caps, "p0", f"t{n}", round_id=f"r0{POISON}"),
}


@examples(30)
@given(
    caps=CAPS,
    players=st.lists(PLAYERS, min_size=1, max_size=3),
    steps=st.lists(STEPS, min_size=3, max_size=25),
    poisons=st.lists(st.tuples(st.integers(0, 25), st.sampled_from(sorted(POISONS))), min_size=1, max_size=2),
)
async def test_an_operation_the_database_refuses_fails_alone(
    harness: Harness,
    caps: Capabilities,
    players: list[Player],
    steps: list[Step],
    poisons: list[tuple[int, str]],
):
    """Operations PostgreSQL refuses, among others in one batch: only they fail, as they do one by one."""
    (gw,) = await nodes(harness)
    ops = build(steps, caps, len(players))
    for at, name in poisons:
        ops.insert(min(at, len(ops)), POISONS[name](len(steps) + at, caps))
    poisoned = [POISON in f"{op.external_id}{op.round_id}{op.game_id}" for op in ops]
    await gw.pool.execute(POISON_TRIGGER)
    sides = Sides(gw, caps, ops)
    got, want = await sides.run(players)
    # They were in one transaction together first (a set-based failure then splits the batch).
    assert max(sides.transactions) == len(ops)
    for answers in (got, want):
        faults = [isinstance(a, asyncpg.InvalidParameterValueError) for a in answers]
        assert faults == poisoned


# Discrepancies the properties found between a batch and one by one, reduced to their smallest case
# and kept, now fixed, as regression tests.

GENERIC = GenericAdapter.capabilities


async def batched(gw: Gateway, ops: Sequence[Operation]) -> list[object]:
    """Apply operations in one batch on the gateway."""
    wallet = gw.app[keys.WALLET]
    window_s, wallet.engine.window_s = wallet.engine.window_s, 0.02
    try:
        return await in_one_go(wallet, ops, GENERIC)
    finally:
        wallet.engine.window_s = window_s


async def test_a_copy_naming_another_round_opens_no_round_in_a_batch(harness: Harness):
    """A bet and a copy of its id naming another round in one batch: the copy is refused, opens nothing."""
    (gw,) = await nodes(harness)
    ns = namespace()
    await gw.open_player(f"{ns}p0", 1_000)
    bet = localize(_op(Kind.DEBIT, GENERIC, "p0", "t0", amount_minor=100, round_id="r0"), ns)
    first, copy_ = await batched(gw, [bet, replace(bet, round_id=f"{ns}r1")])
    assert isinstance(first, Result)
    assert isinstance(copy_, MismatchError)
    rounds = await gw.pool.fetch(
        "SELECT round_id FROM croupier.rounds WHERE player_id = $1 ORDER BY round_id", f"{ns}p0"
    )
    # One by one, the copy's savepoint rolls back and round r1 never exists.
    assert [r["round_id"] for r in rounds] == [f"{ns}r0"]


async def test_a_replay_in_a_batch_answers_the_balance_of_its_moment(harness: Harness):
    """A bet, a copy of it and another bet in one batch: the copy answers the balance after the first."""
    (gw,) = await nodes(harness)
    ns = namespace()
    await gw.open_player(f"{ns}p0", 1_000)
    bet = localize(_op(Kind.DEBIT, GENERIC, "p0", "t0", amount_minor=100, round_id="r0"), ns)
    first, copy_, second = await batched(gw, [bet, bet, replace(bet, external_id=f"{ns}t1")])
    assert isinstance(first, Result)
    assert isinstance(copy_, Result)
    assert copy_.replay
    assert isinstance(second, Result)
    # One by one the copy answers 900; in the batch it answers 800, the balance after the second bet.
    assert (first.balance_minor, copy_.balance_minor, second.balance_minor) == (900, 900, 800)


async def test_a_bet_that_fails_on_the_one_by_one_path_leaves_no_round(harness: Harness):
    """A bet on a player with no account goes one by one; when PostgreSQL refuses it, no round is left."""
    (gw,) = await nodes(harness)
    await gw.pool.execute(POISON_TRIGGER)
    poisoned = localize(POISONS["bet's game"](0, GENERIC), namespace())
    (answer,) = await batched(gw, [poisoned])
    assert isinstance(answer, asyncpg.InvalidParameterValueError)
    # The prefetch opened the round before the rules sent the bet one by one; its savepoint undid it.
    assert await gw.pool.fetchval("SELECT count(*) FROM croupier.rounds") == 0
