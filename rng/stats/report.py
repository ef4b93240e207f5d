"""Render the certification report (the JSON form from ``certify``) as Markdown."""

from __future__ import annotations

from typing import Any

SMALL_P = 1e-4

INTRO = """\
The production generator is `SecureSource`: every draw reads the operating system's CSPRNG
(`os.urandom`, the kernel's `getrandom`) afresh, with no buffer or state in user space, so there is
nothing to reseed or to duplicate across `fork`: the kernel reseeds its own generator. The provably
fair generator is `FairSource` (HMAC-SHA256 over `client_seed:nonce:cursor` keyed with the server
seed). Scaling is by rejection sampling in both: never modulo, never floats."""

METHOD = """\
## Method

- Significance level alpha = {alpha} for every test.
- **NIST SP 800-22 rev. 1a** on raw bits. A line (a test or sub-test) passes when the proportion of
  sequences with p >= alpha is at least (1 - alpha) - 3 sqrt(alpha (1 - alpha) / m) for the m
  sequences it applies to (0.9602 for m = 100), and when its p-values are uniform: ten bins,
  chi-square with 9 dof, P-value_T >= {uniformity_alpha} (judged from 55 sequences up).
- Random excursions (variant) apply only to sequences with at least 500 cycles, so their m is
  smaller and their proportion bound lower.
- With some 40 lines at alpha = 0.01, one line landing just under its bound happens by chance. As
  SP 800-22 advises, a failed line's test is run again on fresh data before it is called a failure;
  both runs are recorded below. The same rule applies to the outcome tests.
- Single-p-value tests run NIST's reference C code (`sp80022suite`). Serial, cumulative sums and
  the random excursions tests are computed with numpy exactly as the reference code does, so that
  each sub-test has its own p-value (the extension returns only their minimum; the test suite
  checks that the minimum of ours equals it).
- Not run: {excluded}.
- **Outcome tests** on `randbelow(n)` as the games call it: chi-square uniformity over the n
  outcomes; serial correlation at lags 1..10 (Ljung-Box Q, with each lag's r in the JSON);
  chi-square over non-overlapping consecutive pairs (n x n cells, or equal bins of n when n^2 >
  10,000); Wald-Wolfowitz runs above and below the median; Knuth's gap test; when a round draws
  several values (a slot spin), chi-square over the pairs of adjacent draws; for the shuffle,
  chi-square of the card-by-position table."""


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f}" if value >= SMALL_P else f"{value:.2e}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.3f}"


def _nist(generator: dict[str, Any]) -> list[str]:
    battery = generator["nist"]
    title = f"{battery['sequences']} sequences x {battery['bits']:,} bits ({generator['nist_elapsed_s']} s)"
    lines = [
        f"### NIST SP 800-22: {title}",
        "",
        "| test | sub-test | passed / m | min | P-value_T | histogram C1..C10 | re-run | verdict |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for line in battery["lines"]:
        rerun = line["rerun"]
        rerun_text = f"{rerun['passed']}/{rerun['sequences']}, {_p(rerun['uniformity_p'])}" if rerun else ""
        minimum = f"{line['proportion_min']:.4f}" if line["sequences"] else "n/a"
        histogram = " ".join(str(c) for c in line["histogram"])
        lines.append(
            f"| {line['test']} | {line['subtest']} | {line['passed']}/{line['sequences']} | {minimum} | "
            f"{_p(line['uniformity_p'])} | {histogram} | {rerun_text} | {line['verdict']} |"
        )
    return lines


def _outcomes(generator: dict[str, Any]) -> list[str]:
    lines = [
        f"### Outcome tests ({generator['outcomes_elapsed_s']} s)",
        "",
        "| scenario | draw | test | N | statistic | dof | p-value | re-run p | verdict |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for scenario in generator["outcomes"]:
        for test in scenario["tests"]:
            rerun = _p(test["rerun"]["p_value"]) if test["rerun"] else ""
            dof = test["dof"] if test["dof"] is not None else ""
            lines.append(
                f"| {scenario['scenario']} | {test['draw']} | {test['name']} | {test['sample_size']:,} | "
                f"{_num(test['statistic'])} | {dof} | {_p(test['p_value'])} | {rerun} | {test['verdict']} |"
            )
    lines += ["", "Scenarios:", ""]
    lines += [
        f"- **{s['scenario']}**: {s['description']}; ranges {s['ranges']}, {s['rounds']:,} rounds."
        for s in generator["outcomes"]
    ]
    return lines


def _header(report: dict[str, Any]) -> list[str]:
    env = report["environment"]
    where = f"{env['cpus']} CPUs ({env['workers']} workers), {env['platform']}"
    versions = f"Python {env['python']}, numpy {env['numpy']}, sp80022suite {env['sp80022suite']}"
    return [
        f"# {report['title']}",
        "",
        f"**Verdict: {report['verdict']}.** Generated {report['generated_at']} by `{report['command']}`.",
        f"It took {report['elapsed_s']} s on {where}; {versions}.",
        "",
        INTRO,
        "",
        "## Change control",
        "",
        f"SHA-256 over {' then '.join(report['core_modules'])} (the code that produces outcomes):",
        f"`{report['core_sha256']}`.",
        "",
        "| module | SHA-256 |",
        "|---|---|",
        *(f"| `{name}` | `{digest}` |" for name, digest in report["modules"].items()),
    ]


def render_markdown(report: dict[str, Any]) -> str:
    """Return the report as a Markdown document."""
    excluded = "; ".join(f"`{name}`: {why}" for name, why in report["excluded_nist_tests"].items())
    method = METHOD.format(
        alpha=report["alpha"], uniformity_alpha=report["uniformity_alpha"], excluded=excluded
    )
    out = [*_header(report), "", method, ""]
    for kind, generator in report["generators"].items():
        out += [
            f"## Generator `{kind}`: {'PASS' if generator['ok'] else 'FAIL'}",
            "",
            f"{generator['generator']}.",
        ]
        if kind == "fair":
            seeds = f"server seed `{generator['server_seed']}`, commitment `{generator['commitment']}`"
            out += [
                "",
                f"Seeds: {seeds}, client seed `{generator['client_seed']}`; each round has its own nonce.",
            ]
        out += ["", *_nist(generator), "", *_outcomes(generator), ""]
    return "\n".join(out)
