"""The full-path phases' client side: players, signed generic-protocol calls, and the checks after."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import orjson
import redis.asyncio as aioredis
from measure import Phase, Step

from gateway.sessions import SessionStore
from gateway.settings import Settings
from gateway.tokens import SessionTokens
from wallet.backends.ledger import open_account
from wallet.pam import store as pam_store
from wallet.signing import Signer

CURRENCY = "EUR"
OPENING_MINOR = 1_000_000_000  # 10 million EUR: no bet in a run of minutes is ever refused
BET, WIN = "1.00", "0.50"
GAME = "bench-slot"


@dataclass
class Player:
    """One worker's player on one operator."""

    operator: str
    player_id: str
    token: str


Body = Callable[[], tuple[str, dict[str, Any]]]  # the next call: operation and JSON body


def rounds(player: Player) -> Body:
    """Return the player's calls in turn: a bet (debit) in a fresh round, then its win (credit)."""
    state = {"round": "", "bet_next": True}

    def body() -> tuple[str, dict[str, Any]]:
        base = {
            "operator": player.operator,
            "player_id": player.player_id,
            "currency": CURRENCY,
            "transaction_id": uuid.uuid4().hex,
            "game_id": GAME,
        }
        if state["bet_next"]:
            state["round"] = uuid.uuid4().hex
            state["bet_next"] = False
            return "debit", {**base, "session_token": player.token, "amount": BET, "round_id": state["round"]}
        state["bet_next"] = True
        return "credit", {**base, "amount": WIN, "round_id": state["round"], "credit_kind": "win"}

    return body


def _outcome(answer: dict[str, Any], status: int) -> str | None:
    """Return None if the call was answered OK, else the refusal code."""
    if answer.get("status") == "OK":
        return None
    return str(answer.get("code") or f"HTTP {status}")


class Provider:
    """Signed generic-protocol calls, like GenericSimulator but without its call log or retries."""

    def __init__(self, base_url: str, signer: Signer, http: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.signer = signer
        self.http = http
        self.timeout = aiohttp.ClientTimeout(total=10.0)

    async def call(self, operation: str, payload: dict[str, Any]) -> str | None:
        """Send one signed call; return None if answered OK, else the refusal code."""
        path = f"/providers/generic/{operation}"
        body = orjson.dumps(payload)
        headers = self.signer.headers("POST", path, body)
        headers["Content-Type"] = "application/json"
        async with self.http.post(
            self.base_url + path, data=body, headers=headers, timeout=self.timeout
        ) as resp:
            return _outcome(orjson.loads(await resp.read()), resp.status)

    def rounds(self, player: Player) -> Step:
        """Return a step that alternates a bet and its win, each round fresh."""
        next_call = rounds(player)

        async def step() -> str | None:
            return await self.call(*next_call())

        return step


def unsigned_rounds(base_url: str, http: aiohttp.ClientSession, player: Player) -> Step:
    """Return a step posting the same bodies, unsigned, to `base_url`/debit and /credit."""
    next_call = rounds(player)
    timeout = aiohttp.ClientTimeout(total=10.0)
    headers = {"Content-Type": "application/json"}

    async def step() -> str | None:
        operation, payload = next_call()
        async with http.post(
            f"{base_url}/{operation}", data=orjson.dumps(payload), headers=headers, timeout=timeout
        ) as resp:
            return _outcome(orjson.loads(await resp.read()), resp.status)

    return step


async def open_players(
    ready: Settings, gw_db: str, pam_db: str | None, operator: str, count: int
) -> list[Player]:
    """Open `count` players with sessions on an operator: at the PAM if given, else in the ledger."""
    assert ready.redis_url is not None
    client = aioredis.from_url(ready.redis_url)
    sessions = SessionStore(client, SessionTokens(ready.session_keys, ready.session_active_key))
    players = []
    try:
        async with asyncpg.create_pool(pam_db or gw_db, min_size=1, max_size=2) as pool:
            for n in range(count):
                pid = f"bench-{n:04d}"
                if pam_db is not None:
                    await pam_store.set_player(pool, pid, CURRENCY, OPENING_MINOR)
                else:
                    async with pool.acquire() as conn:
                        await open_account(conn, operator, pid, CURRENCY, OPENING_MINOR)
                s = await sessions.create(operator, pid, CURRENCY, "generic", GAME)
                players.append(Player(operator, pid, s.token))
    finally:
        await client.aclose()
    return players


def _pairs(rows: list[asyncpg.Record]) -> dict[str, int]:
    """Return two-column rows as a dict of text to integer."""
    return {str(r[0]): int(r[1]) for r in rows}


async def verify(
    phase: Phase, gateway_db: str, pam_db: str | None, operator: str, players: list[Player]
) -> None:
    """Check every operation applied and every balance equals opening plus ledger entries."""
    conn = await asyncpg.connect(gateway_db)
    try:
        states = _pairs(
            await conn.fetch(
                "SELECT state, count(*) FROM croupier.operations WHERE operator = $1 GROUP BY state",
                operator,
            )
        )
        sums = _pairs(
            await conn.fetch(
                "SELECT player_id, sum(amount_minor) FROM croupier.entries"
                " WHERE kind = 'operation' AND operator = $1"
                " GROUP BY player_id",
                operator,
            )
        )
        reasons = _pairs(
            await conn.fetch(
                "SELECT coalesce(reason, state), count(*) FROM croupier.operations"
                " WHERE operator = $1 AND state <> 'applied' GROUP BY 1",
                operator,
            )
        )
        outbox = await conn.fetchval(
            "SELECT count(*) FROM croupier.outbox WHERE operator = $1 AND state <> 'cancelled'",
            operator,
        )
        held_sql = "SELECT player_id, balance_minor FROM croupier.accounts WHERE operator = $1"
        held = _pairs(await conn.fetch(held_sql, operator)) if pam_db is None else {}
    finally:
        await conn.close()
    if pam_db is not None:
        pam = await asyncpg.connect(pam_db)
        try:
            held = _pairs(await pam.fetch("SELECT player_id, balance_minor FROM pam.players"))
        finally:
            await pam.close()
    agree = sum(OPENING_MINOR + int(sums.get(p.player_id, 0)) == held.get(p.player_id) for p in players)
    not_applied = sum(n for state, n in states.items() if state != "applied")
    phase.notes.append(
        f"gateway operations by state: {states}"
        + (f" (not applied, by reason: {reasons})" if reasons else "")
        + f"; outbox rows not cancelled: {outbox};"
        f" balances equal to opening + ledger entries: {agree}/{len(players)}"
    )
    if not_applied or agree != len(players) or phase.refused or phase.errors:
        phase.notes.append("CHECK FAILED: something was refused, failed or disagrees")
