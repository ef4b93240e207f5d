"""The in-house games: rules, play on recorded draws, exact maths, simulators and the CLI."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import itertools
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rng.games import GAME_NAMES, Game, ParSheet, load_game
from rng.games.cli import register
from rng.games.dice import DiceGame
from rng.games.roulette import RouletteGame
from rng.games.simulate import SlotTables, slot_evaluate
from rng.games.slot import SlotConfig, SlotGame, evaluate_line, evaluate_spin, line_table, window_at
from rng.games.slot_exact import scatter_distribution, slot_maths, spin_histogram
from rng.source import RecordingSource, ReplaySource, SecureSource

ROOT = Path(__file__).resolve().parents[1]
Bet = tuple[int, dict[str, Any]]
SIM_ROUNDS = 10_000_000


@pytest.fixture(scope="module")
def slot() -> SlotGame:
    game = load_game("slot")
    assert isinstance(game, SlotGame)
    return game


@pytest.fixture(scope="module")
def roulette() -> RouletteGame:
    game = load_game("roulette")
    assert isinstance(game, RouletteGame)
    return game


@pytest.fixture(scope="module")
def dice() -> DiceGame:
    game = load_game("dice")
    assert isinstance(game, DiceGame)
    return game


@pytest.fixture(scope="module")
def slot_sheet(slot: SlotGame) -> ParSheet:
    return slot.par_sheet()


def _code(config: SlotConfig, *names: str) -> list[int]:
    return [config.names.index(name) for name in names]


# --- shape and the RNG rule -------------------------------------------------------------------


def test_every_game_loads_from_config_with_its_name() -> None:
    assert GAME_NAMES == ("slot", "roulette", "dice")
    assert [load_game(name).name for name in GAME_NAMES] == list(GAME_NAMES)
    with pytest.raises(ValueError, match="unknown game"):
        load_game("poker")


def test_game_code_never_draws_from_random_or_numpy_random() -> None:
    """Only the simulators may use numpy.random, and they say they are exempt."""
    package = ROOT / "rng" / "games"
    offenders = []
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if path.name == "simulate.py":
            assert "EXEMPT FROM THE RNG RULE" in (ast.get_docstring(tree) or "")
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{alias.name}" for alias in node.names] + [str(node.module)]
            elif isinstance(node, ast.Attribute) and node.attr == "random":
                names = ["numpy.random"]
            else:
                continue
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n == "random" or n.startswith(("random.", "numpy.random"))
            ]
    assert offenders == []


# --- slot: rules ------------------------------------------------------------------------------


def test_line_rules_wild_substitutes_and_pays_as_the_best_symbol(slot: SlotGame) -> None:
    config = slot.config
    seven, lemon, cherry = (config.names.index(n) for n in ("SEVEN", "LEMON", "CHERRY"))

    def line(*names: str) -> tuple[str, int, int]:
        symbol, count, pay = evaluate_line(config, _code(config, *names))
        return (config.names[symbol] if symbol >= 0 else "", count, pay)

    assert line("SEVEN", "SEVEN", "SEVEN", "BAR", "BAR") == ("SEVEN", 3, config.pays[seven][3])
    assert line("SEVEN", "WILD", "SEVEN", "WILD", "BAR") == ("SEVEN", 4, config.pays[seven][4])
    assert line("WILD", "WILD", "WILD", "WILD", "WILD") == ("SEVEN", 5, config.pays[seven][5])
    assert line("WILD", "WILD", "LEMON", "LEMON", "LEMON") == ("LEMON", 5, config.pays[lemon][5])
    # Three wilds pay as three sevens (50) rather than five cherries (30).
    assert line("WILD", "WILD", "WILD", "CHERRY", "CHERRY") == ("SEVEN", 3, config.pays[seven][3])
    assert config.pays[seven][3] > config.pays[cherry][5]
    assert line("SEVEN", "SEVEN", "BAR", "SEVEN", "SEVEN") == ("", 0, 0)
    assert line("SEVEN", "SCATTER", "SEVEN", "SEVEN", "SEVEN") == ("", 0, 0)
    assert line("BAR", "SEVEN", "SEVEN", "SEVEN", "SEVEN") == ("", 0, 0)


def test_vectorised_line_table_equals_the_line_rule_on_every_line(slot: SlotGame) -> None:
    config = slot.config
    pay, symbol, count = line_table(config)
    assert pay.size == config.symbols**config.reels
    for code in range(pay.size):
        digits = [(code // config.symbols**i) % config.symbols for i in range(config.reels)]
        assert evaluate_line(config, digits) == (int(symbol[code]), int(count[code]), int(pay[code]))


def test_window_is_exactly_the_strip_positions_drawn_and_every_stop_is_reachable(slot: SlotGame) -> None:
    config = slot.config
    for reel, strip in enumerate(config.strips):
        for stop in range(len(strip)):
            draws = [(len(s), stop if i == reel else 0) for i, s in enumerate(config.strips)]
            spin = slot.spin(ReplaySource(draws))
            assert spin.stops[reel] == stop
            assert [spin.window[row][reel] for row in range(config.rows)] == [
                strip[(stop + row) % len(strip)] for row in range(config.rows)
            ]


def test_slot_round_shows_and_pays_what_was_drawn(slot: SlotGame) -> None:
    config = slot.config
    bet = 40 * config.lines
    for _ in range(300):
        recorder = RecordingSource(SecureSource())
        result = slot.play(recorder, bet, {})
        state = json.loads(json.dumps(result.state))
        spins = [state["base"], *state["free_spins"]]
        assert len(recorder.draws) == config.reels * len(spins)
        assert [n for n, _ in recorder.draws] == [len(s) for s in config.strips] * len(spins)
        total = 0
        for index, spin in enumerate(spins):
            stops = spin["stops"]
            assert stops == [v for _, v in recorder.draws[index * config.reels : (index + 1) * config.reels]]
            shown = window_at(config, stops)
            assert spin["window"] == [[config.names[s] for s in row] for row in shown]
            multiplier = 1 if index == 0 else config.multiplier
            line_sum = sum(w["win_minor"] for w in spin["line_wins"])
            assert spin["win_minor"] == line_sum + spin["scatter_win_minor"]
            assert spin["win_minor"] == evaluate_spin(config, stops).pay_units(config) * 40 * multiplier
            total += spin["win_minor"]
        assert state["win_uncapped_minor"] == total
        assert result.win_minor == min(total, config.max_win * bet)


def _stops_showing(config: SlotConfig, reel: int, *, scatter: bool) -> int:
    """Return the first stop of a reel whose window does (or does not) show a scatter."""
    strip = config.strips[reel]
    return next(
        stop
        for stop in range(len(strip))
        if (config.scatter in [strip[(stop + row) % len(strip)] for row in range(config.rows)]) == scatter
    )


def _trigger_draws(config: SlotConfig, free_spins: int) -> list[tuple[int, int]]:
    """Draws for a base spin showing exactly three scatters, then free spins that show none."""
    base = [_stops_showing(config, reel, scatter=reel < 3) for reel in range(config.reels)]
    quiet = [_stops_showing(config, reel, scatter=False) for reel in range(config.reels)]
    stops = base + quiet * free_spins
    return [(len(config.strips[i % config.reels]), s) for i, s in enumerate(stops)]


def test_three_scatters_award_free_spins_paid_with_the_multiplier(slot: SlotGame) -> None:
    config = slot.config
    awarded = config.award(3)
    assert awarded > 0
    draws = _trigger_draws(config, awarded)
    source = ReplaySource(draws)
    result = slot.play(source, config.lines, {})
    assert source.exhausted
    state = result.state
    assert state["base"]["scatters"] == 3
    assert state["free_spins_awarded"] == awarded == state["free_spins_played"]
    quiet = evaluate_spin(config, [v for _, v in draws[config.reels : 2 * config.reels]]).pay_units(config)
    base = evaluate_spin(config, [v for _, v in draws[: config.reels]]).pay_units(config)
    assert result.win_minor == base + awarded * quiet * config.multiplier


def test_cap_limits_the_round_and_ends_the_feature(slot: SlotGame) -> None:
    capped = SlotGame(dataclasses.replace(slot.config, max_win=1))
    config = capped.config
    draws = _trigger_draws(config, config.award(3))
    source = ReplaySource(draws)
    bet = 5 * config.lines
    result = capped.play(source, bet, {})
    # Three scatters pay more than one bet, so the cap is reached on the base spin: no free spin is drawn.
    assert config.scatter_pay(3) > 1
    assert result.win_minor == bet
    assert result.state["capped"] is True
    assert result.state["free_spins_played"] == 0
    assert source.position == config.reels


def _without_money(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_money(v) for k, v in value.items() if not k.endswith("_minor")}
    if isinstance(value, list):
        return [_without_money(v) for v in value]
    return value


def _replay_with_other_bet(game: Game, draws: list[tuple[int, int]] | None, small: Bet, big: Bet) -> None:
    """Play the same draws at two stakes: same outcome, and (but for dice's rounding) proportional wins."""
    recorder = RecordingSource(SecureSource())
    first = game.play(ReplaySource(draws) if draws else recorder, *small)
    second = game.play(ReplaySource(draws or recorder.draws), *big)
    assert _without_money(first.state) == _without_money(second.state)
    if game.name != "dice":  # dice pays each win down to the minor unit, so ratios may differ slightly
        assert Fraction(first.win_minor, small[0]) == Fraction(second.win_minor, big[0])


def test_same_draws_with_different_bets_give_the_same_outcome(
    slot: SlotGame, roulette: RouletteGame, dice: DiceGame
) -> None:
    _replay_with_other_bet(slot, _trigger_draws(slot.config, slot.config.award(3)), (20, {}), (2000, {}))
    for _ in range(50):
        _replay_with_other_bet(slot, None, (20, {}), (2000, {}))
        small: list[dict[str, Any]] = [
            {"type": "red", "amount_minor": 10},
            {"type": "straight", "numbers": [7], "amount_minor": 1},
        ]
        big = [bet | {"amount_minor": 100 * bet["amount_minor"]} for bet in small]
        _replay_with_other_bet(roulette, None, (11, {"bets": small}), (1100, {"bets": big}))
        over = {"target": 37, "direction": "over"}
        _replay_with_other_bet(dice, None, (100, over), (12345, over))


def test_slot_validation(slot: SlotGame) -> None:
    slot.validate(20, {})
    for bet, params, message in [
        (21, {}, "divisible by the 20 lines"),
        (0, {}, "positive"),
        (True, {}, "integer"),
        (20, {"lines": 10}, "no parameters"),
    ]:
        with pytest.raises(ValueError, match=message):
            slot.validate(bet, params)


# --- slot: exact maths ------------------------------------------------------------------------


def _tiny_config() -> SlotConfig:
    return SlotConfig(
        title="tiny",
        names=("A", "B", "W", "S"),
        pays=((0, 0, 0, 5, 10, 20), (0, 0, 0, 2, 4, 8)),
        scatter_pays=(0, 0, 0, 1, 3),
        awards=(0, 0, 0, 1, 2),
        multiplier=2,
        strips=((0, 1, 2, 1, 0), (1, 0, 0, 3, 1), (2, 0, 1, 1), (0, 3, 1, 2, 1, 0), (1, 0, 2, 1)),
        paylines=((1, 1, 1, 1, 1), (0, 0, 0, 0, 0), (2, 2, 2, 2, 2), (0, 1, 2, 1, 0), (2, 1, 0, 1, 2)),
        rows=3,
        max_win=1000,
    )


def test_joint_histogram_equals_brute_force_over_every_stop_combination() -> None:
    config = _tiny_config()
    brute: dict[tuple[int, int], int] = {}
    for stops in itertools.product(*(range(len(s)) for s in config.strips)):
        spin = evaluate_spin(config, stops)
        key = (sum(w.pay for w in spin.line_wins), spin.scatters)
        brute[key] = brute.get(key, 0) + 1
    assert spin_histogram(config) == brute
    by_count: dict[int, int] = {}
    for (_, scatters), n in brute.items():
        by_count[scatters] = by_count.get(scatters, 0) + n
    assert scatter_distribution(config) == by_count


def test_tiny_slot_moments_match_a_direct_computation() -> None:
    """E[W] and E[W^2] from the feature equations equal a truncated expansion of the retrigger tree."""
    config = _tiny_config()
    maths = slot_maths(config)
    total = maths.combinations
    spins = [
        (
            Fraction(lp + config.scatter_pay(c) * config.lines, config.lines),
            config.award(c),
            Fraction(n, total),
        )
        for (lp, c), n in maths.histogram.items()
    ]
    # Distribution of the pay of n free spins (with retriggers), expanded generation by generation.
    e_t = Fraction(0)
    for _ in range(200):
        e_t = sum((p * (config.multiplier * b + a * e_t) for b, a, p in spins), Fraction(0))
    e_w = sum((p * (b + a * e_t) for b, a, p in spins), Fraction(0))
    assert abs(float(e_w - maths.rtp)) < 1e-12
    assert maths.rtp == maths.line_rtp + maths.scatter_rtp + maths.feature_rtp
    assert maths.variance > 0


def test_slot_exact_rtp_and_sheet(slot: SlotGame, slot_sheet: ParSheet) -> None:
    maths = slot_maths(slot.config)
    assert Fraction(95, 100) < maths.rtp < Fraction(97, 100)
    assert slot_sheet.rtp == maths.rtp
    assert maths.combinations == math.prod(len(s) for s in slot.config.strips)
    boost = 1 + slot.config.multiplier * maths.spins_per_round
    assert maths.rtp == (maths.line_rtp + maths.scatter_rtp) * boost
    assert 0 < maths.cap_probability_bound < 1e-12
    assert 0 < maths.cap_mean_bound < 1e-12
    assert math.isclose(slot_sheet.volatility_index, 1.645 * slot_sheet.sigma)
    low, high = slot_sheet.band(10_000)
    assert math.isclose(float(slot_sheet.rtp) - low, high - float(slot_sheet.rtp))
    text = slot_sheet.to_markdown()
    for needle in ("Reel strips", "Line wins", "Scatter", "Free-spin feature", "Maximum win", "Volatility"):
        assert needle in text


def test_vectorised_evaluator_equals_play_on_the_same_stops(slot: SlotGame) -> None:
    config = slot.config
    generator = np.random.default_rng(11)
    stops = [generator.integers(0, len(s), 3000, dtype=np.int64) for s in config.strips]
    pay, scatters = slot_evaluate(config, SlotTables.build(config), stops)
    for i in range(3000):
        spin = evaluate_spin(config, [int(s[i]) for s in stops])
        assert (int(pay[i]), int(scatters[i])) == (spin.pay_units(config), spin.scatters)


# --- roulette ---------------------------------------------------------------------------------


def test_roulette_has_every_standard_bet(roulette: RouletteGame) -> None:
    sizes = {kind: len(sets) for kind, sets in roulette.legal.items()}
    assert sizes == {
        "straight": 37, "split": 60, "street": 14, "corner": 23, "six_line": 11, "dozen": 3, "column": 3,
        "red": 1, "black": 1, "odd": 1, "even": 1, "low": 1, "high": 1,
    }  # fmt: skip
    assert roulette.legal["red"][0] | roulette.legal["black"][0] == frozenset(range(1, 37))


@pytest.mark.parametrize(
    ("bet", "message"),
    [
        ({"type": "split", "numbers": [1, 3], "amount_minor": 1}, "not a legal split"),
        ({"type": "split", "numbers": [3, 4], "amount_minor": 1}, "not a legal split"),
        ({"type": "street", "numbers": [2, 3, 4], "amount_minor": 1}, "not a legal street"),
        ({"type": "corner", "numbers": [3, 4, 6, 7], "amount_minor": 1}, "not a legal corner"),
        ({"type": "six_line", "numbers": [2, 3, 4, 5, 6, 7], "amount_minor": 1}, "not a legal six_line"),
        ({"type": "straight", "numbers": [37], "amount_minor": 1}, "not a legal straight"),
        ({"type": "straight", "numbers": [5, 5], "amount_minor": 1}, "not a legal straight"),
        ({"type": "dozen", "amount_minor": 1}, "list of integers"),
        ({"type": "basket", "numbers": [0, 1, 2], "amount_minor": 1}, "unknown type"),
        ({"type": "red", "amount_minor": 0}, "positive integer"),
        ({"type": "red", "amount_minor": 1, "colour": "red"}, "unknown fields"),
    ],
)
def test_roulette_rejects_illegal_bets(roulette: RouletteGame, bet: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        roulette.validate(1, {"bets": [bet]})


def test_roulette_stake_must_equal_the_bets(roulette: RouletteGame) -> None:
    with pytest.raises(ValueError, match="sum of the bets"):
        roulette.validate(5, {"bets": [{"type": "red", "amount_minor": 4}]})
    with pytest.raises(ValueError, match="non-empty"):
        roulette.validate(5, {"bets": []})


def test_roulette_rtp_by_playing_all_37_pockets(roulette: RouletteGame) -> None:
    """One bet of every legal set: each returns exactly 36/37 over the 37 pockets, through play()."""
    bets: list[dict[str, Any]] = [
        {"type": kind, "numbers": sorted(numbers), "amount_minor": 10 + i}
        for i, (kind, sets) in enumerate(roulette.legal.items())
        for numbers in sets
    ]
    stake = sum(b["amount_minor"] for b in bets)
    returned = 0
    for pocket in range(37):
        result = roulette.play(ReplaySource([(37, pocket)]), stake, {"bets": bets})
        assert result.state["pocket"] == pocket
        for settled in result.state["bets"]:
            won = pocket in settled["numbers"]
            payout = roulette.payouts[settled["type"]] + 1
            assert settled["win_minor"] == (settled["amount_minor"] * payout if won else 0)
        returned += result.win_minor
    assert Fraction(returned, 37 * stake) == Fraction(36, 37)
    assert roulette.par_sheet().rtp == Fraction(36, 37)
    assert roulette.colour(0) == "green"


# --- dice -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "direction"), [(50, "under"), (50, "over"), (7, "over"), (98, "under"), (2, "under")]
)
def test_dice_rtp_by_playing_every_roll(dice: DiceGame, target: int, direction: str) -> None:
    bet = dice.reference_bet
    params = {"target": target, "direction": direction}
    wins = returned = 0
    for roll in range(dice.outcomes):
        result = dice.play(ReplaySource([(dice.outcomes, roll)]), bet, params)
        assert result.state["won"] == dice.wins(roll, target, direction)
        wins += result.state["won"]
        returned += result.win_minor
    expected_wins = 100 * target if direction == "under" else 10_000 - 100 * target
    assert wins == expected_wins == dice.winning_outcomes(target, direction)
    assert dice.multiplier(target, direction) == Fraction(99, 100) * Fraction(10_000, expected_wins)
    assert Fraction(returned, dice.outcomes * bet) == dice.rtp(bet, target, direction)
    assert dice.rtp(bet, target, direction) <= Fraction(99, 100)
    assert dice.rtp(bet, target, direction) > Fraction(99, 100) - Fraction(expected_wins, dice.outcomes * bet)


def test_dice_payout_is_floor_of_the_exact_multiplier(dice: DiceGame) -> None:
    assert dice.payout(100, 50, "under") == 198
    assert dice.payout(100, 7, "under") == 1414  # 100 x 99/7 = 1414.28...
    assert dice.payout(7, 7, "under") == 99
    assert dice.par_sheet().rtp == Fraction(99, 100)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"target": 1, "direction": "under"}, "within 2..98"),
        ({"target": 99, "direction": "over"}, "within 2..98"),
        ({"target": "50", "direction": "under"}, "whole percent"),
        ({"target": True, "direction": "under"}, "whole percent"),
        ({"target": 50, "direction": "sideways"}, "'under' or 'over'"),
        ({"target": 50, "direction": "under", "edge": 0}, "unknown dice parameters"),
    ],
)
def test_dice_rejects_bad_targets(dice: DiceGame, params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dice.validate(100, params)


# --- simulators -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GAME_NAMES)
def test_simulated_rtp_is_within_the_99_percent_interval(name: str) -> None:
    """10^7 rounds per game, fixed seed: |simulated - exact| <= 2.576·SD/√N with the exact SD."""
    report = load_game(name).simulate(SIM_ROUNDS, seed=20261122)
    assert report.rounds == SIM_ROUNDS
    assert report.within_99, report.to_markdown()
    assert report.half_width_99 == pytest.approx(2.576 * report.sigma / math.sqrt(SIM_ROUNDS))
    for row in report.breakdown:
        assert row[-1] == "yes", report.to_markdown()


# --- docs and CLI -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", GAME_NAMES)
def test_par_sheets_in_docs_are_current(name: str, slot_sheet: ParSheet) -> None:
    sheet = slot_sheet if name == "slot" else load_game(name).par_sheet()
    document = (ROOT / "docs" / "games" / f"{name}-par.md").read_text(encoding="utf-8")
    assert document.startswith(sheet.to_markdown())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="croupier")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_par_prints_the_sheet(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["games", "par", "roulette"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "# PAR sheet: European Roulette" in out
    assert "`36/37`" in out


def test_cli_simulate_prints_simulated_beside_exact(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = _parser().parse_args(["games", "simulate", "dice", "--rounds", "200000", "--seed", "3"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "| RTP |" in out
    assert "within" in out
    assert "--seed 3" in out
    target = tmp_path / "dice.md"
    args = _parser().parse_args(
        ["games", "par", "dice", "--simulate", "100000", "--seed", "4", "--out", str(target)]
    )
    assert args.func(args) == 0
    written = target.read_text(encoding="utf-8")
    assert "## Simulation" in written
    assert "# PAR sheet: Dice" in written
    with pytest.raises(SystemExit):
        _parser().parse_args(["games", "par", "poker"])
