"""The conformance battery: the semantics table and the protocol's hard cases, through a simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from providers.conformance.harness import BET_LIMIT_MINOR, OTHER_OPERATOR, Kit
from providers.simulator import Outcome, SimAnswer, SimPlayer
from wallet.errors import Reason

NOT_APPLIED = frozenset({Outcome.REFUSED, Outcome.MISMATCH, Outcome.INVALID, Outcome.UNAUTHORIZED})
CONCURRENT_COPIES = 20


class ScenarioFailed(AssertionError):  # noqa: N818 -- reads as the outcome it reports
    """A scenario saw behaviour the semantics table forbids."""


class ScenarioSkipped(Exception):  # noqa: N818 -- reads as the outcome it reports
    """The protocol cannot express what the scenario needs."""


Check = Callable[[Kit], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    """One named check of the battery."""

    name: str
    check: Check


def expect(condition: bool, message: str) -> None:
    """Fail the scenario with a message unless the condition holds."""
    if not condition:
        raise ScenarioFailed(message)


def expect_ok(answer: SimAnswer, what: str) -> None:
    """Fail unless the answer applied (or replayed) the operation."""
    expect(answer.ok, f"{what}: expected success, got {_show(answer)}")


def expect_not_applied(answer: SimAnswer, what: str, reason: Reason | None = None) -> None:
    """Fail unless the answer is a definite refusal, and names the reason where the code can."""
    expect(answer.outcome in NOT_APPLIED, f"{what}: expected a refusal, got {_show(answer)}")
    if reason is not None and answer.reasons:
        expect(reason in answer.reasons, f"{what}: expected {reason.value}, got {_show(answer)}")


async def expect_money(kit: Kit, player: SimPlayer, expected_minor: int, what: str) -> None:
    """Fail unless the backend holds exactly the expected balance."""
    held = await kit.money(player)
    expect(held == expected_minor, f"{what}: balance {held}, expected {expected_minor}")


def _show(answer: SimAnswer) -> str:
    code = f" {answer.native_code}" if answer.native_code else ""
    return f"{answer.outcome.value}{code} (HTTP {answer.http_status})"


async def _bet(
    kit: Kit, player: SimPlayer, amount_minor: int, round_id: str | None = None
) -> tuple[str, str]:
    round_id = round_id or kit.new_id("round")
    tx = kit.new_id("bet")
    expect_ok(await kit.sim.bet(player, amount_minor, round_id, tx), "bet")
    return round_id, tx


async def balance_is_reported(kit: Kit) -> None:
    """A balance request answers the backend's balance."""
    player = await kit.player()
    answer = await kit.sim.balance(player)
    expect_ok(answer, "balance")
    if answer.balance_minor is not None:
        expect(answer.balance_minor == await kit.money(player), f"balance answered {answer.balance_minor}")


async def bet_is_applied(kit: Kit) -> None:
    """A new bet with funds enough is applied once and answers the balance after it."""
    player = await kit.player()
    round_id, tx = kit.new_id("round"), kit.new_id("bet")
    answer = await kit.sim.bet(player, 1_25, round_id, tx)
    expect_ok(answer, "bet")
    await expect_money(kit, player, 100_00 - 1_25, "after the bet")
    if answer.balance_minor is not None:
        expect(answer.balance_minor == 100_00 - 1_25, f"bet answered balance {answer.balance_minor}")


async def win_is_applied(kit: Kit) -> None:
    """A win for a round with a bet is applied, and a win of zero is accepted."""
    player = await kit.player()
    round_id, tx = await _bet(kit, player, 1_00)
    expect_ok(await kit.sim.win(player, 2_50, round_id, kit.new_id("win"), tx), "win")
    await expect_money(kit, player, 100_00 - 1_00 + 2_50, "after the win")
    round2, tx2 = await _bet(kit, player, 1_00)
    expect_ok(await kit.sim.win(player, 0, round2, kit.new_id("win"), tx2), "zero win")
    await expect_money(kit, player, 100_00 - 2_00 + 2_50, "after a zero win")


async def several_bets_in_one_round(kit: Kit) -> None:
    """A round may hold several bets before its win."""
    player = await kit.player()
    round_id, tx = await _bet(kit, player, 1_00)
    await _bet(kit, player, 2_00, round_id)
    expect_ok(await kit.sim.win(player, 5_00, round_id, kit.new_id("win"), tx), "win")
    await expect_money(kit, player, 100_00 - 3_00 + 5_00, "after two bets and a win")


async def duplicate_bet_replays(kit: Kit) -> None:
    """The same bet sent twice is applied once; the second answer replays the first."""
    player = await kit.player()
    round_id, tx = await _bet(kit, player, 1_00)
    again = await kit.sim.bet(player, 1_00, round_id, tx)
    expect_ok(again, "repeated bet")
    expect(again.replay is not False, "repeated bet was not marked as a replay")
    await expect_money(kit, player, 100_00 - 1_00, "after a repeated bet")


async def duplicate_win_replays(kit: Kit) -> None:
    """The same win sent twice pays once."""
    player = await kit.player()
    round_id, tx = await _bet(kit, player, 1_00)
    win_tx = kit.new_id("win")
    expect_ok(await kit.sim.win(player, 3_00, round_id, win_tx, tx), "win")
    expect_ok(await kit.sim.win(player, 3_00, round_id, win_tx, tx), "repeated win")
    await expect_money(kit, player, 100_00 - 1_00 + 3_00, "after a repeated win")


async def concurrent_duplicates_apply_once(kit: Kit) -> None:
    """Many copies of one bet at the same moment apply once; the rest replay or ask for a retry."""
    player = await kit.player()
    round_id, tx = kit.new_id("round"), kit.new_id("bet")
    answers = await asyncio.gather(
        *(kit.sim.bet(player, 2_00, round_id, tx) for _ in range(CONCURRENT_COPIES))
    )
    expect(any(a.ok for a in answers), "no copy of the bet succeeded")
    odd = [a for a in answers if a.outcome not in (Outcome.OK, Outcome.RETRYABLE)]
    expect(not odd, f"copies answered {sorted({_show(a) for a in odd})}")
    await expect_money(kit, player, 100_00 - 2_00, f"after {CONCURRENT_COPIES} concurrent copies")


async def changed_repeat_is_refused(kit: Kit) -> None:
    """A bet id reused with another amount is refused and moves nothing."""
    player = await kit.player()
    round_id, tx = await _bet(kit, player, 1_00)
    expect_not_applied(await kit.sim.bet(player, 7_00, round_id, tx), "bet id reused with another amount")
    await expect_money(kit, player, 100_00 - 1_00, "after a changed repeat")


async def insufficient_funds_is_refused(kit: Kit) -> None:
    """A bet above the balance is refused, the refusal replays, and nothing moves."""
    player = await kit.player(50)
    round_id, tx = kit.new_id("round"), kit.new_id("bet")
    first = await kit.sim.bet(player, 1_00, round_id, tx)
    expect_not_applied(first, "bet above the balance", Reason.INSUFFICIENT_FUNDS)
    expect_not_applied(await kit.sim.bet(player, 1_00, round_id, tx), "repeated refused bet")
    await expect_money(kit, player, 50, "after a refused bet")


async def bet_limit_is_refused(kit: Kit) -> None:
    """A bet above the operator's limit is refused and moves nothing."""
    player = await kit.player(BET_LIMIT_MINOR * 2)
    answer = await kit.sim.bet(player, BET_LIMIT_MINOR + 1_00, kit.new_id("round"), kit.new_id("bet"))
    expect_not_applied(answer, "bet above the limit", Reason.LIMIT_EXCEEDED)
    await expect_money(kit, player, BET_LIMIT_MINOR * 2, "after a bet above the limit")


async def blocked_player_bets_refused_wins_paid(kit: Kit) -> None:
    """A blocked player's new bet is refused, but the win of a bet placed before is paid."""
    player = await kit.player()
    round_id, tx = await _bet(kit, player, 1_00)
    await kit.set_blocked(player, blocked=True)
    expect_not_applied(
        await kit.sim.bet(player, 1_00, kit.new_id("round"), kit.new_id("bet")),
        "bet of a blocked player",
        Reason.PLAYER_BLOCKED,
    )
    expect_ok(await kit.sim.win(player, 4_00, round_id, kit.new_id("win"), tx), "win of a blocked player")
    await expect_money(kit, player, 100_00 - 1_00 + 4_00, "blocked player after the win")


async def _owed_money_paid_after(
    kit: Kit, lose: Callable[[SimPlayer], Awaitable[None]], what: str
) -> SimPlayer:
    """Bet twice, lose what `lose` takes away, then expect the win and the refund still paid."""
    player = await kit.player()
    round_id, tx = await _bet(kit, player, 1_00)
    round2, tx2 = await _bet(kit, player, 2_00)
    await lose(player)
    expect_ok(await kit.sim.win(player, 3_00, round_id, kit.new_id("win"), tx), f"win after {what}")
    expect_ok(await kit.sim.rollback(player, tx2, round2, kit.new_id("rb"), 2_00), f"refund after {what}")
    await expect_money(kit, player, 100_00 - 1_00 + 3_00, f"after {what}")
    return player


async def expired_session_bets_refused_wins_paid(kit: Kit) -> None:
    """After the session ends, owed money (win, refund) is still paid; a new bet is refused."""
    player = await _owed_money_paid_after(kit, kit.expire, "expiry")
    expected = 100_00 - 1_00 + 3_00
    if kit.sim.checks_session_on_bet:
        answer = await kit.sim.bet(player, 1_00, kit.new_id("round"), kit.new_id("bet"))
        expect_not_applied(answer, "bet on an expired session")
        await expect_money(kit, player, expected, "after a bet on an expired session")


async def redis_loss_loses_no_money(kit: Kit) -> None:
    """With everything the gateway keeps in Redis lost (a flush, a failed primary), owed money is paid."""

    async def forget(player: SimPlayer) -> None:
        del player  # everything goes, not one player's keys
        await kit.forget_redis()

    await _owed_money_paid_after(kit, forget, "losing Redis")


async def rollback_refunds_and_replays(kit: Kit) -> None:
    """A rollback refunds its bet once; the same rollback again replays."""
    player = await kit.player()
    round_id, tx = await _bet(kit, player, 6_00)
    rb = kit.new_id("rb")
    expect_ok(await kit.sim.rollback(player, tx, round_id, rb, 6_00), "rollback")
    expect_ok(await kit.sim.rollback(player, tx, round_id, rb, 6_00), "repeated rollback")
    await expect_money(kit, player, 100_00, "after a rollback and its repeat")


async def rollback_before_bet_tombstones(kit: Kit) -> None:
    """A rollback of a bet never seen is accepted, and that bet arriving later takes nothing."""
    player = await kit.player()
    round_id, tx = kit.new_id("round"), kit.new_id("bet")
    expect_ok(
        await kit.sim.rollback(player, tx, round_id, kit.new_id("rb"), 1_00), "rollback of an unseen bet"
    )
    late = await kit.sim.bet(player, 1_00, round_id, tx)
    expect(not late.ok, f"the rolled-back bet arriving late was applied: {_show(late)}")
    await expect_money(kit, player, 100_00, "after a late bet that was rolled back")


async def rollback_after_win_refused(kit: Kit) -> None:
    """A rollback of a bet whose round already paid a win is refused (unless the protocol allows)."""
    player = await kit.player()
    round_id, tx = await _bet(kit, player, 1_00)
    expect_ok(await kit.sim.win(player, 2_00, round_id, kit.new_id("win"), tx), "win")
    answer = await kit.sim.rollback(player, tx, round_id, kit.new_id("rb"), 1_00)
    if kit.caps.rollback_after_win:
        expect_ok(answer, "rollback after a win (the protocol allows it)")
        await expect_money(kit, player, 100_00 + 2_00, "after a rollback after the win")
    else:
        expect_not_applied(answer, "rollback after the round paid", Reason.ALREADY_SETTLED)
        await expect_money(kit, player, 100_00 + 1_00, "after a refused rollback")


async def win_after_rollback_refused(kit: Kit) -> None:
    """A win for a round whose bet was rolled back is refused."""
    player = await kit.player()
    round_id, tx = await _bet(kit, player, 1_00)
    expect_ok(await kit.sim.rollback(player, tx, round_id, kit.new_id("rb"), 1_00), "rollback")
    answer = await kit.sim.win(player, 5_00, round_id, kit.new_id("win"), tx)
    expect_not_applied(answer, "win after the bet was rolled back")
    await expect_money(kit, player, 100_00, "after a refused win")


async def win_without_bet(kit: Kit) -> None:
    """A plain win with no bet is refused, unless the protocol sends wins without bets."""
    player = await kit.player()
    answer = await kit.sim.win(player, 1_00, kit.new_id("round"), kit.new_id("win"), kit.new_id("bet"))
    if kit.caps.wins_without_bets:
        expect_ok(answer, "win without a bet (the protocol sends them)")
        await expect_money(kit, player, 100_00 + 1_00, "after a win without a bet")
    else:
        expect_not_applied(answer, "win without a bet", Reason.BET_NOT_FOUND)
        await expect_money(kit, player, 100_00, "after a refused win without a bet")


async def payouts_without_bet(kit: Kit) -> None:
    """Bonus, jackpot, promo and free-round payouts are paid without a bet, where the protocol has them."""
    player = await kit.player()
    paid = 0
    expressed = []
    for kind in ("bonus", "jackpot", "promo", "freeround"):
        try:
            answer = await kit.sim.win(
                player, 2_00, kit.new_id("round"), kit.new_id(kind), kit.new_id("bet"), kind=kind
            )
        except NotImplementedError:
            continue
        expressed.append(kind)
        expect_ok(answer, f"{kind} payout without a bet")
        paid += 2_00
    if not expressed:
        raise ScenarioSkipped("the protocol has no payouts without a bet")
    await expect_money(kit, player, 100_00 + paid, f"after {', '.join(expressed)} payouts")


async def end_round_replays(kit: Kit) -> None:
    """Ending a round twice answers success both times."""
    player = await kit.player()
    round_id, tx = await _bet(kit, player, 1_00)
    expect_ok(await kit.sim.win(player, 1_00, round_id, kit.new_id("win"), tx), "win")
    expect_ok(await kit.sim.end_round(player, round_id), "end of round")
    expect_ok(await kit.sim.end_round(player, round_id), "end of round again")


async def players_are_isolated(kit: Kit) -> None:
    """A rollback sent for another operator's player cannot touch this player's bet."""
    player = await kit.player()
    stranger = await kit.player(operator=OTHER_OPERATOR)
    round_id, tx = await _bet(kit, player, 3_00)
    await kit.sim.rollback(stranger, tx, round_id, kit.new_id("rb"), 3_00)
    await expect_money(kit, player, 100_00 - 3_00, "the player's money after a stranger's rollback")
    await expect_money(kit, stranger, 100_00, "the stranger's money")


async def bad_signature_is_refused(kit: Kit) -> None:
    """A bet without a valid signature is refused and nothing is written."""
    player = await kit.player()
    before = await kit.written()
    body = kit.sim.bet_body(player, "1.00", kit.new_id("round"), kit.new_id("bet"))
    answer = await kit.sim.send_raw("bet", body, sign=False)
    expect(answer.outcome is Outcome.UNAUTHORIZED, f"unsigned bet answered {_show(answer)}")
    expect(await kit.written() == before, "an unsigned bet wrote an operation")
    await expect_money(kit, player, 100_00, "after an unsigned bet")


async def malformed_input_is_refused(kit: Kit) -> None:
    """Malformed bodies, bad amounts and ids with a NUL get a clear error and write nothing."""
    player = await kit.player()
    before = await kit.written()
    bodies = [b"{not a body", b"\xff\xfe\x00"]
    bodies += [
        kit.sim.bet_body(player, amount, kit.new_id("round"), kit.new_id("bet"))
        for amount in ("1.001", "-1.00", "true", '"ten"', "1e400", "[]")
    ]
    # A round id with a NUL, which PostgreSQL text cannot hold: the caller's mistake, not a fault.
    bodies.append(kit.sim.bet_body(player, "1.00", kit.new_id("round") + "\x00", kit.new_id("bet")))
    for body in bodies:
        answer = await kit.sim.send_raw("bet", body, sign=True)
        expect(
            answer.outcome in (Outcome.INVALID, Outcome.REFUSED),
            f"body {body[:60]!r} answered {_show(answer)}",
        )
    expect(await kit.written() == before, "a malformed request wrote an operation")
    await expect_money(kit, player, 100_00, "after malformed bets")


async def oversized_body_is_refused(kit: Kit) -> None:
    """A body above the callback size limit is refused unread and writes nothing."""
    player = await kit.player()
    before = await kit.written()
    body = kit.sim.bet_body(player, "1.00", kit.new_id("round"), kit.new_id("bet"))
    padded = body + b" " * (kit.adapter.max_body_bytes + 1)
    answer = await kit.sim.send_raw("bet", padded, sign=True)
    expect(answer.outcome in (Outcome.INVALID, Outcome.REFUSED), f"oversized body answered {_show(answer)}")
    expect(await kit.written() == before, "an oversized request wrote an operation")


BATTERY: tuple[Scenario, ...] = tuple(
    Scenario(check.__name__.replace("_", " "), check)
    for check in (
        balance_is_reported,
        bet_is_applied,
        win_is_applied,
        several_bets_in_one_round,
        duplicate_bet_replays,
        duplicate_win_replays,
        concurrent_duplicates_apply_once,
        changed_repeat_is_refused,
        insufficient_funds_is_refused,
        bet_limit_is_refused,
        blocked_player_bets_refused_wins_paid,
        expired_session_bets_refused_wins_paid,
        redis_loss_loses_no_money,
        rollback_refunds_and_replays,
        rollback_before_bet_tombstones,
        rollback_after_win_refused,
        win_after_rollback_refused,
        win_without_bet,
        payouts_without_bet,
        end_round_replays,
        players_are_isolated,
        bad_signature_is_refused,
        malformed_input_is_refused,
        oversized_body_is_refused,
    )
)
