"""The 'seamless' backend: the operator's wallet over HTTP, in Operator Wallet API v1."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import orjson
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)
from yarl import URL

from wallet.db import Connection
from wallet.errors import UnavailableError
from wallet.metrics import Metrics
from wallet.operations import Reply, ReplyStatus, Transfer
from wallet.signing import Signer

_DEFINITE_HTTP = frozenset({200, 400, 401, 413})


# The Operator Wallet API lists at most 1000 transactions a page.
LISTING_PAGE = 1000


@dataclass(frozen=True, slots=True)
class SeamlessConfig:
    """Where an operator's wallet is and how to sign for it."""

    operator: str
    base_url: str
    signer: Signer
    call_timeout_s: float = 2.0


class SeamlessWallet:
    """A client of one operator's wallet; timeouts, resets and 5xx are unknown outcomes."""

    in_database = False

    def __init__(self, config: SeamlessConfig, session: aiohttp.ClientSession, metrics: Metrics) -> None:
        self.config = config
        self.session = session
        self.metrics = metrics

    async def _call(self, method: str, path: str, payload: Mapping[str, object] | None) -> dict[str, object]:
        """Make one signed call; return the decoded answer or raise UnavailableError."""
        body = orjson.dumps(payload) if payload is not None else b""
        headers = self.config.signer.headers(method, path, body)
        headers["Content-Type"] = "application/json"
        call = path.rsplit("/", 1)[-1]
        started = time.perf_counter()
        outcome = "unknown"
        try:
            async with self.session.request(
                method,
                self.config.base_url.rstrip("/") + path,
                data=body or None,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.config.call_timeout_s),
            ) as resp:
                raw = await resp.read()
                if resp.status not in _DEFINITE_HTTP:
                    raise UnavailableError(f"operator answered HTTP {resp.status}")
                answer = orjson.loads(raw)
                if not isinstance(answer, dict) or answer.get("status") not in ReplyStatus.__members__:
                    raise UnavailableError("operator answered with no known status")
                outcome = str(answer["status"])
                return answer
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            raise UnavailableError(f"no definite answer from the operator: {exc!r}") from exc
        finally:
            if outcome == "unknown":
                self.metrics.unknown_outcomes.labels(self.config.operator, call).inc()
            self.metrics.operator_calls.labels(self.config.operator, call, outcome).observe(
                time.perf_counter() - started
            )

    @staticmethod
    def _reply(answer: dict[str, object]) -> Reply:
        status = ReplyStatus(str(answer["status"]))
        if status is ReplyStatus.INTERNAL_ERROR:
            raise UnavailableError("operator reported an internal error")
        balance = answer.get("balance_minor")
        return Reply(status, balance if isinstance(balance, int) and not isinstance(balance, bool) else None)

    async def balance(self, conn: Connection, operator: str, player_id: str, currency: str) -> Reply:
        """Ask the operator for the player's balance."""
        del conn  # the operator holds the money
        payload = {"request_id": str(uuid.uuid4()), "player_id": player_id, "currency": currency}
        return self._reply(await self._call("POST", "/v1/balance", payload))

    async def transfer(self, conn: Connection | None, transfer: Transfer, deadline_s: float) -> Reply:
        """Send a transfer, retrying unknown outcomes with the same id until the deadline."""
        del conn
        payload: dict[str, object] = {
            "request_id": str(uuid.uuid4()),
            "transaction_id": transfer.transaction_id,
            "player_id": transfer.player_id,
            "currency": transfer.currency,
            "amount_minor": transfer.amount_minor,
            "round_id": transfer.round_id,
            "game_id": transfer.game_id,
            "provider": transfer.provider,
        }
        if transfer.credit_kind is not None:
            payload["kind"] = transfer.credit_kind.value
        if transfer.reference_transaction_id is not None:
            payload["reference_transaction_id"] = transfer.reference_transaction_id
        path = f"/v1/{transfer.type.value}"
        attempt = 0
        async for try_ in AsyncRetrying(
            retry=retry_if_exception_type(UnavailableError),
            stop=stop_after_delay(max(deadline_s, 0.0)),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            reraise=True,
        ):
            with try_:
                attempt += 1
                if attempt > 1:
                    self.metrics.operator_retries.labels(self.config.operator, transfer.type.value).inc()
                return self._reply(await self._call("POST", path, payload))
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def transactions(
        self, since: datetime, until: datetime, after: int, limit: int = LISTING_PAGE
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Read one page of the operator's transactions listing (for reconciliation)."""
        # Built by yarl, as aiohttp sends it: the signature covers the path exactly as it travels.
        query: dict[str, str | int] = {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "after": after,
            "limit": limit,
        }
        path = str(URL("/v1/transactions").with_query(query))
        answer = await self._call("GET", path, None)
        entries, cursor = answer.get("transactions"), answer.get("next_cursor")
        if answer.get("status") != ReplyStatus.OK.value or not isinstance(entries, list):
            raise UnavailableError(f"the operator's listing answered {answer.get('status')}")
        if cursor is not None and (isinstance(cursor, bool) or not isinstance(cursor, int)):
            raise UnavailableError(f"the operator's listing gave the cursor {cursor!r}")
        return entries, cursor

    async def ping(self) -> None:
        """Raise UnavailableError unless the operator's wallet answers its liveness check."""
        try:
            async with self.session.get(
                self.config.base_url.rstrip("/") + "/livez",
                timeout=aiohttp.ClientTimeout(total=self.config.call_timeout_s),
            ) as resp:
                if resp.status != 200:  # noqa: PLR2004 -- HTTP OK
                    raise UnavailableError(f"operator wallet answered HTTP {resp.status}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UnavailableError(f"operator wallet unreachable: {exc!r}") from exc
