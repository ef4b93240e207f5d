"""The interface every provider simulator offers, so one conformance battery drives them all."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

import aiohttp

from providers.base import ProviderConfig
from wallet.errors import Reason

T = TypeVar("T")


class Outcome(StrEnum):
    """What a native answer means, in the terms the conformance battery checks."""

    OK = "ok"
    REFUSED = "refused"  # a definite business refusal (funds, limits, rolled back, ...)
    RETRYABLE = "retryable"  # the provider must try again with the same ids
    INVALID = "invalid"  # the request was malformed; nothing was written
    UNAUTHORIZED = "unauthorized"  # signature, token or address refused; nothing was written
    MISMATCH = "mismatch"  # the id was used before with other data


@dataclass(slots=True)
class SimAnswer:
    """A native answer read back into canonical terms by the provider's own simulator."""

    outcome: Outcome
    native_code: str | None = None
    # The canonical reason of a refusal, mapped back through the adapter's own error table;
    # None where the protocol folds several reasons into one code.
    reasons: frozenset[Reason] = frozenset()
    balance_minor: int | None = None
    replay: bool | None = None  # None where the protocol does not say
    http_status: int = 200
    raw: Any = None

    @property
    def ok(self) -> bool:
        """Return whether the operation was applied (or replayed)."""
        return self.outcome is Outcome.OK


@dataclass(frozen=True, slots=True)
class SimPlayer:
    """A player as a provider knows it: its id in the protocol, currency and session token."""

    operator: str
    player_id: str
    currency: str
    token: str


@dataclass(slots=True)
class SimulatorOptions:
    """How a simulator behaves: timeouts and retry delays (small in tests)."""

    timeout_s: float = 5.0
    retry_delay_s: float = 0.05
    max_retries: int = 50
    extra: dict[str, Any] = field(default_factory=dict)


class ProviderSimulator(ABC):
    """Plays as one provider: speaks its exact protocol and signing, with its retry behaviour."""

    provider: ClassVar[str]
    # False where the protocol sends no session token with a bet, so an expired session cannot
    # refuse one (the conformance kit then skips that check).
    checks_session_on_bet: ClassVar[bool] = True
    # How many conformance scenarios the protocol can express; one whose rounds are a single call
    # (bet, outcome and win together, as in-house games) cannot express most of the battery.
    kit_minimum_passes: ClassVar[int] = 18
    # True where one call plays a whole round and the game decides the win (in-house games).
    plays_whole_rounds: ClassVar[bool] = False

    async def whole_round(self, player: SimPlayer, stake_minor: int, round_id: str) -> SimAnswer:
        """Play a whole round in one call, for protocols that have no separate bet and win."""
        raise NotImplementedError(f"{self.provider} plays bets and wins as separate calls")

    def __init__(
        self,
        base_url: str,
        http: aiohttp.ClientSession,
        config: ProviderConfig,
        options: SimulatorOptions | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.config = config
        self.options = options or SimulatorOptions()

    async def repeat_until_definite(
        self, send: Callable[[], Awaitable[T]], definite: Callable[[T], bool], what: str
    ) -> T:
        """Send the same call (same ids) until its answer is definite, as providers do for owed money."""
        for _ in range(self.options.max_retries):
            try:
                answer = await send()
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(self.options.retry_delay_s)
                continue
            if definite(answer):
                return answer
            await asyncio.sleep(self.options.retry_delay_s)
        raise TimeoutError(f"no definite answer to {what} after {self.options.max_retries} tries")

    @abstractmethod
    async def balance(self, player: SimPlayer) -> SimAnswer:
        """Ask for the player's balance."""

    @abstractmethod
    async def bet(
        self, player: SimPlayer, amount_minor: int, round_id: str, tx_id: str, *, retry: bool = False
    ) -> SimAnswer:
        """Place a bet once (retry=False) or as the provider would, refunding it on a timeout."""

    @abstractmethod
    async def win(
        self,
        player: SimPlayer,
        amount_minor: int,
        round_id: str,
        tx_id: str,
        bet_tx_id: str,
        *,
        kind: str = "win",
    ) -> SimAnswer:
        """Pay a win (kind: win, bonus, jackpot, promo, freeround), retried until definite."""

    @abstractmethod
    async def rollback(
        self, player: SimPlayer, bet_tx_id: str, round_id: str, tx_id: str, amount_minor: int
    ) -> SimAnswer:
        """Refund a bet, retried until definite."""

    @abstractmethod
    async def end_round(self, player: SimPlayer, round_id: str) -> SimAnswer:
        """Close a round, retried until definite (a no-op answer where the protocol has none)."""

    @abstractmethod
    async def send_raw(
        self, operation: str, body: bytes, *, sign: bool = True, headers: dict[str, str] | None = None
    ) -> SimAnswer:
        """Send an arbitrary body to one operation's endpoint, signed or not, for negative tests."""

    @abstractmethod
    def bet_body(self, player: SimPlayer, amount: str, round_id: str, tx_id: str) -> bytes:
        """Return the raw body of a bet with the amount written as given (for malformed amounts)."""
