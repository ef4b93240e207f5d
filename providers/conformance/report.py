"""Running the battery against one adapter and printing what passed and what failed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum

from providers.base import Adapter
from providers.conformance.harness import running_kit
from providers.conformance.scenarios import BATTERY, Scenario, ScenarioFailed, ScenarioSkipped
from providers.simulator import ProviderSimulator

SCENARIO_TIMEOUT_S = 60.0


class Verdict(StrEnum):
    """How one scenario ended."""

    PASS = "pass"  # noqa: S105 -- a verdict, not a password
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class Finding:
    """One scenario's verdict and what it saw."""

    scenario: str
    verdict: Verdict
    detail: str = ""


@dataclass(frozen=True)
class Report:
    """The battery's findings for one provider."""

    provider: str
    findings: tuple[Finding, ...]

    @property
    def passed(self) -> bool:
        """Return whether no scenario failed."""
        return all(f.verdict is not Verdict.FAIL for f in self.findings)

    def failures(self) -> list[Finding]:
        """Return the failed scenarios."""
        return [f for f in self.findings if f.verdict is Verdict.FAIL]

    def table(self) -> str:
        """Return the findings as a plain-text table."""
        width = max(len(f.scenario) for f in self.findings)
        lines = [f"conformance of provider {self.provider!r}", ""]
        lines += [f"{f.scenario:<{width}}  {f.verdict.value:<4}  {f.detail}".rstrip() for f in self.findings]
        counts = {v: sum(f.verdict is v for f in self.findings) for v in Verdict}
        lines += [
            "",
            f"{counts[Verdict.PASS]} passed, {counts[Verdict.FAIL]} failed, {counts[Verdict.SKIP]} skipped",
        ]
        return "\n".join(lines)


async def _run_one(scenario: Scenario, kit: object) -> Finding:
    try:
        await asyncio.wait_for(scenario.check(kit), SCENARIO_TIMEOUT_S)  # type: ignore[arg-type]
    except ScenarioFailed as exc:
        return Finding(scenario.name, Verdict.FAIL, str(exc))
    except ScenarioSkipped as exc:
        return Finding(scenario.name, Verdict.SKIP, str(exc))
    except NotImplementedError as exc:
        # A simulator raises this for what its protocol cannot express (a win apart from its bet).
        return Finding(scenario.name, Verdict.SKIP, f"not expressible in this protocol: {exc}")
    except TimeoutError:
        return Finding(scenario.name, Verdict.FAIL, f"no answer within {SCENARIO_TIMEOUT_S:.0f} s")
    except Exception as exc:  # noqa: BLE001 -- a studio's adapter may fail in any way; report it
        return Finding(scenario.name, Verdict.FAIL, f"{type(exc).__name__}: {exc}")
    return Finding(scenario.name, Verdict.PASS)


async def run_battery(
    adapter_class: type[Adapter],
    database_url: str,
    redis_url: str,
    simulator_class: type[ProviderSimulator] | None = None,
) -> Report:
    """Run every scenario against the adapter through its simulator and return the report."""
    async with running_kit(adapter_class, database_url, redis_url, simulator_class) as kit:
        findings = [await _run_one(scenario, kit) for scenario in BATTERY]
    return Report(adapter_class.name, tuple(findings))
