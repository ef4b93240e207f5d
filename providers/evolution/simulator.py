"""A client that plays as Evolution: check first, then debits, credits, cancels and promo payouts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
import orjson

from providers.base import ProviderConfig
from providers.evolution import errors, schemas
from providers.evolution.signing import QUERY_PARAMETER, TokenChecker
from providers.identity import user_id
from providers.simulator import Outcome, ProviderSimulator, SimAnswer, SimPlayer, SimulatorOptions
from wallet.errors import InvalidRequestError, Reason
from wallet.money import AmountError, CurrencyTable, UnknownCurrencyError, format_major, to_minor

_REASONS: dict[str, frozenset[Reason]] = {}
for _reason, _native in errors.ERROR_CODES.items():
    _REASONS[_native.code] = _REASONS.get(_native.code, frozenset()) | {_reason}

_OUTCOMES = {
    errors.OK: Outcome.OK,
    errors.TEMPORARY_ERROR.code: Outcome.RETRYABLE,
    errors.OPERATION_IN_PROCESS.code: Outcome.RETRYABLE,
    errors.INVALID_TOKEN_ID.code: Outcome.UNAUTHORIZED,
    errors.INVALID_PARAMETER.code: Outcome.INVALID,
    errors.BET_ALREADY_EXIST.code: Outcome.MISMATCH,
}
# The simulator's names for the kit's operations, and Evolution's own.
_PATHS = {"bet": "debit", "win": "credit", "rollback": "cancel", "balance": "balance"}
_PROMO_TYPES = {"promo": "RtrMonetaryReward", "freeround": "FreeRoundPlayableSpent", "jackpot": "JackpotWin"}
SERVER_ERROR = 500


@dataclass(slots=True)
class Reply:
    """One raw answer: HTTP status and the decoded body (None if it was not a JSON object)."""

    http_status: int
    body: dict[str, Any] | None

    @property
    def status(self) -> str | None:
        """Return Evolution's status field."""
        value = (self.body or {}).get("status")
        return value if isinstance(value, str) else None

    @property
    def definite(self) -> bool:
        """Return whether Evolution would stop retrying on this answer."""
        return (
            self.http_status < SERVER_ERROR
            and self.status is not None
            and (self.status not in errors.RETRYABLE_CODES)
        )


class EvolutionSimulator(ProviderSimulator):
    """Speaks One Wallet to a gateway with the authToken, retrying as Evolution does."""

    provider: ClassVar[str] = "evolution"

    def __init__(
        self,
        base_url: str,
        http: aiohttp.ClientSession,
        config: ProviderConfig,
        options: SimulatorOptions | None = None,
    ) -> None:
        super().__init__(base_url, http, config, options)
        self.auth_token = TokenChecker(config).token
        self.currencies = CurrencyTable(config.options.get("currencies"))
        self.table_id = str(config.options.get("table_id", "vctlz20yfnmp1ylr"))
        # Launch token -> the sid Evolution uses after its check (the launch token unless refreshed).
        self._sids: dict[str, str] = {}
        self._requests = 0

    # Transport.

    def _uuid(self) -> str:
        self._requests += 1
        return f"sim-{id(self):x}-{self._requests}"

    async def post(
        self, path: str, body: bytes, *, sign: bool = True, headers: dict[str, str] | None = None
    ) -> Reply:
        """Send one callback; a timeout or a reset raises."""
        url = f"{self.base_url}/providers/{self.provider}/{path}"
        if sign:
            url += f"?{QUERY_PARAMETER}={quote(self.auth_token, safe='')}"
        sent = {"Content-Type": "application/json"} | (headers or {})
        async with self.http.post(
            url, data=body, headers=sent, timeout=aiohttp.ClientTimeout(total=self.options.timeout_s)
        ) as resp:
            raw = await resp.read()
        try:
            decoded: dict[str, Any] | None = schemas.decode(raw)
        except InvalidRequestError:
            decoded = None
        return Reply(resp.status, decoded)

    async def call(self, path: str, payload: dict[str, Any]) -> Reply:
        """Send one JSON callback (amounts given as orjson fragments stay exact)."""
        return await self.post(path, orjson.dumps(payload))

    async def until_definite(self, path: str, payload: dict[str, Any]) -> Reply:
        """Repeat one callback (same uuid, same ids) until a definite answer, as Evolution does."""
        return await self.repeat_until_definite(lambda: self.call(path, payload), lambda r: r.definite, path)

    def read(self, reply: Reply, currency: str) -> SimAnswer:
        """Read a native answer into canonical terms, the balance converted exactly."""
        body = reply.body or {}
        code = reply.status
        if code is None:
            outcome = Outcome.RETRYABLE if reply.http_status >= SERVER_ERROR else Outcome.INVALID
        else:
            outcome = _OUTCOMES.get(code, Outcome.REFUSED)
        balance_minor = None
        balance = body.get("balance")
        if balance is not None and not isinstance(balance, bool):
            try:
                balance_minor = to_minor(balance, self.currencies.get(currency))
            except (AmountError, UnknownCurrencyError):
                balance_minor = None
        return SimAnswer(
            outcome=outcome,
            native_code=code,
            reasons=_REASONS.get(code or "", frozenset()),
            balance_minor=balance_minor,
            replay=body.get("retransmission") is True,
            http_status=reply.http_status,
            raw=reply.body,
        )

    # Bodies.

    def _money(self, amount_minor: int, currency: str) -> orjson.Fragment:
        return orjson.Fragment(format_major(amount_minor, self.currencies.get(currency)).encode())

    def _base(self, player: SimPlayer) -> dict[str, Any]:
        return {
            "sid": self._sids.get(player.token, player.token),
            "userId": user_id(player.operator, player.player_id),
        }

    def _game(self, round_id: str) -> dict[str, Any]:
        return {
            "id": round_id,
            "type": "roulette",
            "details": {"table": {"id": self.table_id, "vid": None}},
        }

    def transaction_body(
        self, player: SimPlayer, round_id: str, tx_id: str, ref_id: str, amount: orjson.Fragment
    ) -> dict[str, Any]:
        """Return a debit, credit or cancel body."""
        return self._base(player) | {
            "currency": player.currency,
            "game": self._game(round_id),
            "transaction": {"id": tx_id, "refId": ref_id, "amount": amount},
            "uuid": self._uuid(),
        }

    # Session calls.

    async def check(self, player: SimPlayer) -> SimAnswer:
        """Validate the player's sid as Evolution does when the game opens; keep a refreshed sid."""
        payload = self._base(player) | {"channel": {"type": "P"}, "uuid": self._uuid()}
        answer = self.read(await self.call("check", payload), player.currency)
        sid = (answer.raw or {}).get("sid")
        if answer.ok:
            self._sids[player.token] = sid if isinstance(sid, str) else player.token
        return answer

    async def new_sid(self, player: SimPlayer) -> SimAnswer:
        """Ask for a new sid for the player (the `sid` callback); the answer's raw body carries it."""
        payload = self._base(player) | {"channel": {"type": "M"}, "uuid": self._uuid()}
        return self.read(await self.call("sid", payload), player.currency)

    async def _checked(self, player: SimPlayer) -> SimAnswer | None:
        """Check a sid the first time it is used; return the refusal if the game may not open."""
        if player.token in self._sids:
            return None
        answer = await self.check(player)
        return None if answer.ok else answer

    # The interface the conformance kit drives.

    async def balance(self, player: SimPlayer) -> SimAnswer:
        """Ask for the balance."""
        payload = self._base(player) | {"currency": player.currency, "game": None, "uuid": self._uuid()}
        return self.read(await self.call("balance", payload), player.currency)

    async def bet(
        self, player: SimPlayer, amount_minor: int, round_id: str, tx_id: str, *, retry: bool = False
    ) -> SimAnswer:
        """Place a bet (refId = transaction id = tx_id); with retry, cancel it if no definite answer."""
        refused = await self._checked(player)
        if refused is not None:
            return refused
        money = self._money(amount_minor, player.currency)
        payload = self.transaction_body(player, round_id, tx_id, tx_id, money)
        try:
            answer = self.read(await self.call("debit", payload), player.currency)
        except (aiohttp.ClientError, TimeoutError):
            if not retry:
                raise
            await self.rollback(player, tx_id, round_id, tx_id, amount_minor)
            return SimAnswer(Outcome.RETRYABLE, "TIMEOUT")
        if retry and answer.outcome is Outcome.RETRYABLE:
            # Evolution does not repeat a debit: one without a definite answer is cancelled.
            await self.rollback(player, tx_id, round_id, tx_id, amount_minor)
        return answer

    async def win(
        self,
        player: SimPlayer,
        amount_minor: int,
        round_id: str,
        tx_id: str,
        bet_tx_id: str,
        *,
        kind: str = "win",
        campaign_id: str | None = None,
    ) -> SimAnswer:
        """Settle a bet (credit with its refId) or pay a promo payout, retried until definite."""
        money = self._money(amount_minor, player.currency)
        if kind == "win":
            payload = self.transaction_body(player, round_id, tx_id, bet_tx_id, money)
            return self.read(await self.until_definite("credit", payload), player.currency)
        promo_type = _PROMO_TYPES.get(kind)
        if promo_type is None:
            raise NotImplementedError(
                f"Evolution has no {kind!r} credit: a win settles a bet, else a promo payout"
            )
        promo: dict[str, Any] = {"type": promo_type, "id": tx_id, "amount": money}
        if kind == "freeround":
            promo |= {"voucherId": campaign_id or f"voucher-{round_id}", "remainingRounds": 0}
        elif campaign_id is not None:
            promo["voucherId"] = campaign_id
        payload = self._base(player) | {
            "currency": player.currency,
            "game": self._game(round_id) if kind == "jackpot" else None,
            "promoTransaction": promo,
            "uuid": self._uuid(),
        }
        return self.read(await self.until_definite("promo_payout", payload), player.currency)

    async def rollback(
        self, player: SimPlayer, bet_tx_id: str, round_id: str, tx_id: str, amount_minor: int
    ) -> SimAnswer:
        """Cancel a bet, retried until definite; a cancel repeats the debit's own transaction."""
        del tx_id  # Evolution's cancel carries the debit's transaction, not an id of its own
        money = self._money(amount_minor, player.currency)
        payload = self.transaction_body(player, round_id, bet_tx_id, bet_tx_id, money)
        answer = self.read(await self.until_definite("cancel", payload), player.currency)
        if answer.native_code == errors.BET_DOES_NOT_EXIST.code:
            # Evolution's convention for a cancel of a debit never seen: final, nothing to refund,
            # and the gateway keeps that debit from ever taking money. The cancel is done.
            answer.outcome, answer.reasons = Outcome.OK, frozenset()
        return answer

    async def end_round(self, player: SimPlayer, round_id: str) -> SimAnswer:
        """Evolution has no end-of-round call: each bet is settled by its credit or cancel."""
        del player, round_id
        return SimAnswer(Outcome.OK, None)

    async def send_raw(
        self, operation: str, body: bytes, *, sign: bool = True, headers: dict[str, str] | None = None
    ) -> SimAnswer:
        """Send exact bytes to an operation's endpoint, with the authToken or without it."""
        reply = await self.post(_PATHS.get(operation, operation), body, sign=sign, headers=headers)
        currency = "EUR"
        try:
            sent = schemas.decode(body).get("currency")
        except InvalidRequestError:
            sent = None
        if isinstance(sent, str) and sent in self.currencies:
            currency = sent
        return self.read(reply, currency)

    def bet_body(self, player: SimPlayer, amount: str, round_id: str, tx_id: str) -> bytes:
        """Return a debit body with the amount written exactly as given."""
        payload = self.transaction_body(player, round_id, tx_id, tx_id, orjson.Fragment(amount.encode()))
        return orjson.dumps(payload)
