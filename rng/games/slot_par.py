"""The slot's PAR sheet: configuration, strips, every combination's probability and RTP, feature and cap."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from rng.games.par import ParSection, ParSheet, ParTable, frac, num, one_in, pct, prose, sci
from rng.games.slot import MIN_RUN, SlotConfig
from rng.games.slot_exact import SlotMaths, slot_maths


def slot_par_sheet(config: SlotConfig) -> ParSheet:
    """Build the slot's PAR sheet from its exact maths."""
    maths = slot_maths(config)
    boost = 1 + config.multiplier * maths.spins_per_round
    base_pay: dict[int, int] = {}
    for (line_pay, scatters), count in maths.histogram.items():
        units = line_pay + config.scatter_pay(scatters) * config.lines
        base_pay[units] = base_pay.get(units, 0) + count
    largest = max(base_pay)
    largest_p = Fraction(base_pay[largest], maths.combinations)
    summary = (
        ("RTP: base-game lines", pct(maths.line_rtp, 4)),
        ("RTP: base-game scatter pays", pct(maths.scatter_rtp, 4)),
        ("RTP: free spins (feature)", pct(maths.feature_rtp, 4)),
        ("free-spin trigger rate", f"{pct(maths.trigger, 4)} ({one_in(maths.trigger)})"),
        ("average feature pay per trigger (x bet)", f"{float(maths.feature_mean):.4f}"),
        ("average free spins per trigger", f"{float(maths.spins_per_round / maths.trigger):.4f}"),
        ("free spins awarded per free spin (retrigger)", f"{float(maths.mean_awards):.6f}"),
        ("largest base-spin win", f"{num(Fraction(largest, config.lines))} x bet ({one_in(largest_p)})"),
        ("effect of the cap on the RTP", f"lowers it by at most {sci(maths.cap_mean_bound)} (bound below)"),
        ("stop combinations enumerated", f"{maths.combinations:,}"),
    )
    return ParSheet(
        game="slot",
        title=f"PAR sheet: {config.title} (video slot)",
        rtp=maths.rtp,
        variance=maths.variance,
        hit_frequency=maths.hit_frequency,
        max_win=Fraction(config.max_win),
        max_win_probability=prose(f"""> 0 and at most {sci(maths.cap_probability_bound)} per round (only
            free spins that retrigger can reach it; bound below)"""),
        summary=summary,
        sections=(
            _configuration(config),
            _strips(config),
            _combinations(config, maths, boost),
            _scatters(config, maths, boost),
            _feature(config, maths),
            _cap(config, maths),
        ),
    )


def _configuration(config: SlotConfig) -> ParSection:
    names = config.names
    paytable = tuple(
        (names[s], *(str(config.pays[s][k]) for k in range(MIN_RUN, config.reels + 1)))
        for s in range(config.paying)
    )
    scatter_rows = tuple(
        (str(k), str(config.scatter_pay(k)), str(config.award(k)))
        for k in range(1, len(config.scatter_pays))
        if config.scatter_pay(k) or config.award(k)
    )
    lines = tuple((str(i + 1), " ".join(str(r) for r in line)) for i, line in enumerate(config.paylines))
    counts = [np.bincount(np.asarray(strip), minlength=config.symbols) for strip in config.strips]
    by_symbol = tuple((names[s], *(str(int(c[s])) for c in counts)) for s in range(config.symbols))
    reels = tuple(f"reel {i + 1}" for i in range(config.reels))
    return ParSection(
        "Configuration",
        (
            prose(f"""{config.reels} reels x {config.rows} rows, {config.lines} paylines, paying left to right
                for {MIN_RUN} or more of a kind on a line. The total bet is split evenly over the lines (one
                line bet each); line pays are in line bets, scatter pays in total bets. The window shows, on
                each reel, the drawn stop and the next positions of the strip (wrapping round), exactly as
                drawn: no symbol is ever substituted."""),
            prose(f"""**Wild ({names[config.wild]})** substitutes for every paying symbol except the scatter.
                Wilds have no pays of their own: a line starting with wilds pays as the symbol that gives it
                the highest pay (five wilds pay as five of the top symbol). Each line pays only its highest
                win; equal pays go to the higher-ranked symbol."""),
            prose(f"""**Scatter ({names[config.scatter]})** pays anywhere in the window, times the total bet,
                and awards free spins; it never counts on a line. Free spins play on the same strips with
                every win x {config.multiplier}, and scatters during free spins award more (retrigger, no
                limit). The **maximum win** of a round (base spin plus all its free spins) is
                {config.max_win:,} x the total bet; once it is reached the round ends."""),
            ParTable(("symbol", *(f"{k} of a kind" for k in range(MIN_RUN, config.reels + 1))), paytable),
            ParTable(("scatters", "pays (x total bet)", "free spins"), scatter_rows),
            ParTable(("payline", "row on reels 1..5 (0 = top)"), lines),
            ParTable(("symbol", *reels), (*by_symbol, ("stops", *(str(len(s)) for s in config.strips)))),
        ),
    )


def _strips(config: SlotConfig) -> ParSection:
    longest = max(len(s) for s in config.strips)
    rows = tuple(
        (str(pos), *(config.names[s[pos]] if pos < len(s) else "" for s in config.strips))
        for pos in range(longest)
    )
    return ParSection(
        "Reel strips",
        (
            "Stop positions from 0; each stop is drawn with probability 1 / strip length.",
            ParTable(("stop", *(f"reel {i + 1}" for i in range(config.reels))), rows),
        ),
    )


def _combinations(config: SlotConfig, maths: SlotMaths, boost: Fraction) -> ParSection:
    rows = []
    per_symbol = []
    for s in range(config.paying):
        symbol_rtp = Fraction(0)
        for k in range(MIN_RUN, config.reels + 1):
            p = Fraction(maths.combos.get((s, k), 0), maths.combinations)
            contribution = p * config.pays[s][k]
            symbol_rtp += contribution
            rows.append(
                (config.names[s], str(k), str(config.pays[s][k]), f"{float(p):.6e}", one_in(p),
                 pct(contribution, 4), pct(contribution * boost, 4))
            )  # fmt: skip
        per_symbol.append((config.names[s], pct(symbol_rtp, 4), pct(symbol_rtp * boost, 4)))
    return ParSection(
        "Line wins: probability and RTP contribution",
        (
            prose(f"""Probability that a given line pays the combination (as its highest win), from the
                symbol counts per strip: the same on every line. A combination's base RTP contribution is
                probability x pay (each line carries 1/lines of the bet, and there are lines of them).
                'With feature' adds the same combination during free spins: x (1 + {config.multiplier} x
                {float(maths.spins_per_round):.6f} free spins per base spin)."""),
            ParTable(
                ("symbol", "count", "pay", "probability per line", "odds", "base RTP", "with feature"),
                tuple(rows),
            ),
            ParTable(("symbol", "base RTP", "with feature"), tuple(per_symbol)),
            prose(f"""Line RTP of the base game: {pct(maths.line_rtp, 6)} = {frac(maths.line_rtp)}. The sum
                per line above and the joint enumeration over every stop combination give the same
                fraction (checked each time the sheet is built)."""),
        ),
    )


def _scatters(config: SlotConfig, maths: SlotMaths, boost: Fraction) -> ParSection:
    rows = []
    for k, weight in sorted(maths.scatter_counts.items()):
        p = Fraction(weight, maths.combinations)
        pay = config.scatter_pay(k)
        rows.append(
            (str(k), str(pay), str(config.award(k)), f"{float(p):.6e}", one_in(p),
             pct(p * pay, 4), pct(p * pay * boost, 4))
        )  # fmt: skip
    return ParSection(
        "Scatter: probability and RTP contribution",
        (
            ParTable(
                ("scatters", "pay (x bet)", "free spins", "probability", "odds", "base RTP", "with feature"),
                tuple(rows),
            ),
        ),
    )


def _feature(config: SlotConfig, maths: SlotMaths) -> ParSection:
    figures = (
        ("multiplier m", str(config.multiplier)),
        ("E[N]: free spins awarded per spin", f"{float(maths.mean_awards):.6f} = {frac(maths.mean_awards)}"),
        ("free spins per base spin, E[N] / (1 - E[N])", f"{float(maths.spins_per_round):.6f}"),
        ("E[T]: one free spin with its retriggers (x bet)", f"{float(maths.feature_spin_mean):.6f}"),
        ("trigger rate", f"{pct(maths.trigger, 4)} ({one_in(maths.trigger)})"),
        ("average feature pay per trigger (x bet)", f"{float(maths.feature_mean):.4f}"),
        ("feature RTP", pct(maths.feature_rtp, 6)),
        ("base-game RTP (lines + scatters)", pct(maths.line_rtp + maths.scatter_rtp, 6)),
    )
    return ParSection(
        "Free-spin feature",
        (
            prose("""One free spin pays Y = m·B and awards N more free spins, where (B, N) are the pay and
                the award of a spin on the base strips. The pay T of a free spin with all the spins it leads
                to satisfies T = Y + (N independent copies of T), so E[T] = m·E[B] / (1 - E[N]) and
                E[T²] = (E[Y²] + 2·E[YN]·E[T] + E[N(N-1)]·E[T]²) / (1 - E[N]): linear equations for the
                retriggers, solved exactly with fractions. The round W = B + (N0 copies of T) then has exact
                mean and variance."""),
            ParTable(("figure", "value"), figures),
        ),
    )


def _cap(config: SlotConfig, maths: SlotMaths) -> ParSection:
    return ParSection(
        "Maximum win and the cap",
        (
            prose(f"""The round's win is capped at C = {config.max_win:,} x the total bet. A base spin alone
                cannot reach it, but free spins retrigger without limit, so the uncapped win W is unbounded
                and the cap binds with a tiny, positive probability. The RTP above is E[W], exact; the capped
                game returns E[min(W, C)] = E[W] - E[(W - C)+]. Let φ(θ) = E[exp(θT)], the least fixed
                point of φ = E[exp(θY)·φ^N]; a value φ_u with g(φ_u) ≤ φ_u bounds it from above because g is
                increasing (checked numerically with a margin). Then E[exp(θW)] ≤ E[exp(θB)·φ_u^N0] and, for
                every θ > 0, P(W ≥ C) ≤ E[exp(θW)]·exp(-θC) and E[(W - C)+] ≤ E[exp(θW)]·exp(-θC)/(e·θ).
                Minimised over θ:"""),
            ParTable(
                ("bound", "value"),
                (
                    ("P(round win reaches the cap)", f"≤ {sci(maths.cap_probability_bound)}"),
                    ("RTP lost to the cap, E[(W - C)+] / bet", f"≤ {sci(maths.cap_mean_bound)}"),
                    (
                        "second moment lost to the cap, E[W²; W ≥ C] / bet²",
                        f"≤ {sci(maths.cap_second_bound)}",
                    ),
                    (
                        "capped RTP",
                        f"in [E[W] - {sci(maths.cap_mean_bound)}, E[W]], E[W] = {pct(maths.rtp, 8)}",
                    ),
                ),
            ),
        ),
    )
