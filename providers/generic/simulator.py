"""A client that plays as a provider speaking the generic protocol, retries included."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from wallet.signing import Signer

RETRYABLE_HTTP = frozenset({500, 502, 503, 504})


@dataclass(slots=True)
class Answer:
    """One answer from the gateway."""

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


@dataclass(slots=True)
class GenericSimulator:
    """Speaks the generic protocol to a gateway, signing each call like a real provider."""

    base_url: str
    signer: Signer
    http: aiohttp.ClientSession
    operator: str
    timeout_s: float = 5.0
    retry_delay_s: float = 0.05
    max_retries: int = 50
    log: list[tuple[str, dict[str, Any], Answer]] = field(default_factory=list)

    async def call(self, operation: str, payload: dict[str, Any]) -> Answer:
        """Send one signed call; a timeout or reset raises."""
        path = f"/providers/generic/{operation}"
        body = orjson.dumps(payload)
        headers = self.signer.headers("POST", path, body)
        headers["Content-Type"] = "application/json"
        async with self.http.post(
            self.base_url.rstrip("/") + path,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
        ) as resp:
            answer = Answer(resp.status, orjson.loads(await resp.read()))
        self.log.append((operation, payload, answer))
        return answer

    async def until_definite(self, operation: str, payload: dict[str, Any]) -> Answer:
        """Retry the same call (same ids) until the gateway gives a definite answer."""
        for _ in range(self.max_retries):
            try:
                answer = await self.call(operation, payload)
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(self.retry_delay_s)
                continue
            if answer.http_status not in RETRYABLE_HTTP and not answer.body.get("retryable"):
                return answer
            await asyncio.sleep(self.retry_delay_s)
        raise TimeoutError(f"no definite answer to {operation} after {self.max_retries} tries")

    def _base(self, player_id: str, currency: str, **extra: object) -> dict[str, Any]:
        return {"operator": self.operator, "player_id": player_id, "currency": currency, **extra}

    async def balance(self, player_id: str, currency: str, token: str | None = None) -> Answer:
        """Ask for the balance."""
        return await self.call("balance", self._base(player_id, currency, session_token=token))

    async def bet(
        self,
        token: str,
        player_id: str,
        currency: str,
        amount: str,
        round_id: str,
        tx_id: str | None = None,
        game_id: str = "demo-slot",
    ) -> tuple[str, Answer]:
        """Place a bet; if it times out, refund it as a provider must, and return the refund."""
        tx_id = tx_id or uuid.uuid4().hex
        payload = self._base(
            player_id,
            currency,
            session_token=token,
            amount=amount,
            round_id=round_id,
            transaction_id=tx_id,
            game_id=game_id,
        )
        try:
            return tx_id, await self.call("debit", payload)
        except (aiohttp.ClientError, TimeoutError):
            return tx_id, await self.rollback(player_id, currency, tx_id, round_id)

    async def win(
        self,
        player_id: str,
        currency: str,
        amount: str,
        round_id: str,
        tx_id: str | None = None,
        credit_kind: str = "win",
        game_id: str = "demo-slot",
    ) -> Answer:
        """Pay a win, retried until definite."""
        payload = self._base(
            player_id,
            currency,
            amount=amount,
            round_id=round_id,
            transaction_id=tx_id or uuid.uuid4().hex,
            credit_kind=credit_kind,
            game_id=game_id,
        )
        return await self.until_definite("credit", payload)

    async def rollback(
        self, player_id: str, currency: str, bet_tx_id: str, round_id: str | None = None
    ) -> Answer:
        """Refund a bet, retried until definite."""
        payload = self._base(
            player_id,
            currency,
            transaction_id=f"rb-{bet_tx_id}",
            reference_transaction_id=bet_tx_id,
        )
        if round_id is not None:
            payload["round_id"] = round_id
        return await self.until_definite("rollback", payload)

    async def end_round(self, player_id: str, currency: str, round_id: str) -> Answer:
        """Close a round, retried until definite."""
        payload = self._base(player_id, currency, round_id=round_id, transaction_id=f"end-{round_id}")
        return await self.until_definite("end_round", payload)
