"""PAR sheets: a game's exact maths as data, rendered to Markdown."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

Z90 = 1.645
BAND_ROUNDS: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)


@dataclass(frozen=True)
class ParTable:
    """A table of a PAR sheet: headers, rows of already-formatted cells, first column left-aligned."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def to_markdown(self) -> str:
        """Render the table as GitHub Markdown."""
        out = ["| " + " | ".join(self.headers) + " |"]
        out.append("|" + "|".join(["---"] + ["---:"] * (len(self.headers) - 1)) + "|")
        out += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(out)


@dataclass(frozen=True)
class ParSection:
    """A titled part of a PAR sheet: paragraphs and tables in order."""

    title: str
    blocks: tuple[str | ParTable, ...]


@dataclass(frozen=True)
class ParSheet:
    """The exact maths of a game: RTP, variance, hit frequency, maximum win, and the details."""

    game: str
    title: str
    rtp: Fraction
    variance: Fraction
    hit_frequency: Fraction
    max_win: Fraction
    max_win_probability: str
    summary: tuple[tuple[str, str], ...]
    sections: tuple[ParSection, ...]

    @property
    def sigma(self) -> float:
        """Standard deviation of one round's return per unit bet."""
        return math.sqrt(self.variance)

    @property
    def volatility_index(self) -> float:
        """Volatility index VI = 1.645·SD (90% two-sided)."""
        return Z90 * self.sigma

    def band(self, rounds: int) -> tuple[float, float]:
        """Return the 90% band of the RTP over ``rounds`` rounds: RTP ± VI/√N."""
        half = self.volatility_index / math.sqrt(rounds)
        return float(self.rtp) - half, float(self.rtp) + half

    def to_markdown(self) -> str:
        """Render the whole sheet as Markdown."""
        head = [
            ("RTP (exact)", f"{pct(self.rtp, 6)} = {frac(self.rtp)}"),
            ("hit frequency", f"{pct(self.hit_frequency, 4)} ({one_in(self.hit_frequency)})"),
            ("standard deviation per round (SD, per unit bet)", f"{self.sigma:.4f}"),
            ("volatility index (VI = 1.645·SD)", f"{self.volatility_index:.4f}"),
            ("maximum win", f"{num(self.max_win)} x bet"),
            ("probability of the maximum win", self.max_win_probability),
        ]
        out = [f"# {self.title}", "", ParTable(("figure", "value"), (*head, *self.summary)).to_markdown()]
        for section in self.sections:
            out += ["", f"## {section.title}"]
            for block in section.blocks:
                out += ["", block.to_markdown() if isinstance(block, ParTable) else block]
        rows = []
        for n in BAND_ROUNDS:
            low, high = self.band(n)
            rows.append(
                (f"{n:,}", f"±{self.volatility_index / math.sqrt(n):.4%}", f"{low:.4%}", f"{high:.4%}")
            )
        out += [
            "",
            "## Volatility",
            "",
            (
                f"SD = {self.sigma:.6f} per unit bet (variance {float(self.variance):.6f}, exact from the "
                "distribution above). The 90% band of the RTP after N rounds is RTP ± VI/√N:"
            ),
            "",
            ParTable(("rounds N", "± VI/√N", "low", "high"), tuple(rows)).to_markdown(),
        ]
        return "\n".join(out) + "\n"


def pct(value: Fraction | float, digits: int = 4) -> str:
    """Format a ratio as a percentage."""
    return f"{float(value):.{digits}%}"


def frac(value: Fraction) -> str:
    """Format an exact fraction, shortening huge numerators and denominators."""
    text = f"{value.numerator}/{value.denominator}" if value.denominator != 1 else str(value.numerator)
    max_len = 60
    return (
        f"`{text}`"
        if len(text) <= max_len
        else f"(exact fraction, {len(str(value.denominator))}-digit denominator)"
    )


def one_in(probability: Fraction | float) -> str:
    """Format a probability as '1 in N'."""
    if probability <= 0:
        return "never"
    return f"1 in {1 / float(probability):,.2f}"


def num(value: Fraction | float) -> str:
    """Format a multiplier: integers plainly, others with up to four decimals."""
    if isinstance(value, int) or (isinstance(value, Fraction) and value.denominator == 1):
        return f"{int(value):,}"
    return f"{float(value):,.4f}".rstrip("0").rstrip(".")


def sci(value: float) -> str:
    """Format a small probability in scientific notation."""
    return f"{value:.3e}"


def prose(text: str) -> str:
    """Collapse a triple-quoted paragraph into one line of Markdown."""
    return " ".join(text.split())
