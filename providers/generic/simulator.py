"""A client that plays as a provider speaking the generic protocol, retries included."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
import orjson

from providers.base import ProviderConfig
from providers.generic.errors import ERROR_CODES
from providers.simulator import (
    Outcome,
    ProviderSimulator,
    SimAnswer,
    SimPlayer,
    SimulatorOptions,
)
from wallet.errors import Reason
from wallet.money import CurrencyTable, format_major, to_minor
from wallet.signing import Signer

RETRYABLE_HTTP = frozenset({500, 502, 503, 504})
_REASONS: dict[str, frozenset[Reason]] = {}
for _reason, _native in ERROR_CODES.items():
    _REASONS[_native.code] = _REASONS.get(_native.code, frozenset()) | {_reason}


@dataclass(slots=True)
class Answer:
    """One answer from the gateway, as the generic protocol gives it."""

    http_status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Return whether the gateway answered OK."""
        return self.body.get("status") == "OK"

    @property
    def code(self) -> str | None:
        """Return the error code, if any."""
        code = self.body.get("code")
        return str(code) if code is not None else None


class GenericSimulator(ProviderSimulator):
    """Speaks the generic protocol to a gateway, signing each call like a real provider."""

    provider: ClassVar[str] = "generic"

    def __init__(
        self,
        base_url: str,
        http: aiohttp.ClientSession,
        config: ProviderConfig,
        options: SimulatorOptions | None = None,
    ) -> None:
        super().__init__(base_url, http, config, options)
        key_id, secret = next(iter(config.secrets.items()))
        self.signer = Signer(key_id, secret)
        self.currencies = CurrencyTable(config.options.get("currencies"))

    async def call(self, operation: str, payload: dict[str, Any]) -> Answer:
        """Send one signed call; a timeout or reset raises."""
        raw = await self._post(operation, orjson.dumps(payload), sign=True)
        return Answer(raw[0], raw[1])

    async def _post(
        self, operation: str, body: bytes, *, sign: bool, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        path = f"/providers/{self.provider}/{operation}"
        sent = self.signer.headers("POST", path, body) if sign else {}
        sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        async with self.http.post(
            self.base_url + path,
            data=body,
            headers=sent,
            timeout=aiohttp.ClientTimeout(total=self.options.timeout_s),
        ) as resp:
            return resp.status, orjson.loads(await resp.read())

    def _read(self, answer: Answer, currency: str) -> SimAnswer:
        body = answer.body
        balance = body.get("balance")
        balance_minor = None
        if isinstance(balance, str):
            balance_minor = to_minor(balance, self.currencies.get(currency))
        if answer.ok:
            outcome = Outcome.OK
        elif answer.http_status in RETRYABLE_HTTP or body.get("retryable"):
            outcome = Outcome.RETRYABLE
        elif answer.http_status == 401:  # noqa: PLR2004 -- HTTP Unauthorized
            outcome = Outcome.UNAUTHORIZED
        elif answer.http_status == 409:  # noqa: PLR2004 -- HTTP Conflict
            outcome = Outcome.MISMATCH
        elif answer.http_status >= 400:  # noqa: PLR2004 -- any other client error
            outcome = Outcome.INVALID
        else:
            outcome = Outcome.REFUSED
        return SimAnswer(
            outcome=outcome,
            native_code=answer.code,
            reasons=_REASONS.get(answer.code or "", frozenset()),
            balance_minor=balance_minor,
            replay=bool(body.get("replay")) if "replay" in body else None,
            http_status=answer.http_status,
            raw=body,
        )

    async def until_definite(self, operation: str, payload: dict[str, Any]) -> Answer:
        """Retry the same call (same ids) until the gateway gives a definite answer."""
        return await self.repeat_until_definite(
            lambda: self.call(operation, payload),
            lambda a: a.http_status not in RETRYABLE_HTTP and not a.body.get("retryable"),
            operation,
        )

    def _base(self, player: SimPlayer, **extra: object) -> dict[str, Any]:
        body: dict[str, Any] = {
            "operator": player.operator,
            "player_id": player.player_id,
            "currency": player.currency,
        }
        body.update({k: v for k, v in extra.items() if v is not None})
        return body

    def _major(self, amount_minor: int, currency: str) -> str:
        return format_major(amount_minor, self.currencies.get(currency))

    async def balance(self, player: SimPlayer) -> SimAnswer:
        """Ask for the balance."""
        answer = await self.call("balance", self._base(player, session_token=player.token))
        return self._read(answer, player.currency)

    async def bet(
        self, player: SimPlayer, amount_minor: int, round_id: str, tx_id: str, *, retry: bool = False
    ) -> SimAnswer:
        """Place a bet; with retry, refund it on a timeout as a provider must."""
        payload = self._base(
            player,
            session_token=player.token,
            amount=self._major(amount_minor, player.currency),
            round_id=round_id,
            transaction_id=tx_id,
            game_id="demo-slot",
        )
        try:
            return self._read(await self.call("debit", payload), player.currency)
        except (aiohttp.ClientError, TimeoutError):
            if not retry:
                raise
            await self.rollback(player, tx_id, round_id, f"rb-{tx_id}", amount_minor)
            return SimAnswer(Outcome.RETRYABLE, "TIMEOUT")

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
        """Pay a win of a kind, for a free-round campaign if one is named, retried until definite."""
        del bet_tx_id  # the generic protocol ties a win to its round, not to a bet
        payload = self._base(
            player,
            amount=self._major(amount_minor, player.currency),
            round_id=round_id,
            transaction_id=tx_id,
            credit_kind=kind,
            game_id="demo-slot",
            campaign_id=campaign_id,
        )
        return self._read(await self.until_definite("credit", payload), player.currency)

    async def rollback(
        self, player: SimPlayer, bet_tx_id: str, round_id: str, tx_id: str, amount_minor: int
    ) -> SimAnswer:
        """Refund a bet, retried until definite."""
        del amount_minor  # the generic protocol refunds what the bet took
        payload = self._base(
            player, transaction_id=tx_id, reference_transaction_id=bet_tx_id, round_id=round_id
        )
        return self._read(await self.until_definite("rollback", payload), player.currency)

    async def end_round(self, player: SimPlayer, round_id: str) -> SimAnswer:
        """Close a round, retried until definite."""
        payload = self._base(player, round_id=round_id, transaction_id=f"end-{round_id}")
        return self._read(await self.until_definite("end_round", payload), player.currency)

    async def send_raw(
        self, operation: str, body: bytes, *, sign: bool = True, headers: dict[str, str] | None = None
    ) -> SimAnswer:
        """Send an arbitrary body, signed or not."""
        names = {"bet": "debit", "win": "credit", "rollback": "rollback", "balance": "balance"}
        status, answer = await self._post(names.get(operation, operation), body, sign=sign, headers=headers)
        return self._read(Answer(status, answer), "EUR")

    def bet_body(self, player: SimPlayer, amount: str, round_id: str, tx_id: str) -> bytes:
        """Return a bet's body with the amount written exactly as given."""
        payload = self._base(
            player, session_token=player.token, round_id=round_id, transaction_id=tx_id, game_id="demo-slot"
        )
        text = orjson.dumps(payload).decode()
        return (text[:-1] + f', "amount": {amount}}}').encode()
