"""A harness that runs the real gateway against either wallet backend, for behaviour tests.

The gateway is built by `create_app` and served on a real port; for the seamless backend the
reference operator wallet (PAM) runs on its own real port, optionally behind a fault proxy.
Both use the test's own empty PostgreSQL database (the gateway in schema `croupier`, the PAM in
schema `pam`) and the session's Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import keys
from gateway.app import create_app
from gateway.settings import OperatorSettings, Settings
from providers.base import ProviderConfig
from providers.generic.simulator import Answer, GenericSimulator
from wallet.backends.ledger import open_account
from wallet.pam import store
from wallet.pam.server import PAM_POOL, create_pam_app
from wallet.pam.settings import PamSettings
from wallet.policy import OperatorPolicy
from wallet.signing import Signer

# What `from helpers import *` brings into a test module: the fixtures, nothing else.
__all__ = ["backend", "gw", "harness"]

BACKENDS = ("ledger", "seamless")
OPERATOR = "op1"
PROVIDER = "generic"
PROVIDER_KEY_ID = "k1"
PROVIDER_SECRET = b"provider secret k1"
OPERATOR_KEY_ID = "gw-2025"
OPERATOR_SECRET = b"operator wallet secret"
OPENING_MINOR = 10_000
SESSION_KEY_ID = "s-test-1"
SESSION_KEY = b"session signing key for tests, 32+ bytes"
# The background outbox worker passes once at start and then sleeps this long, so tests that
# need the worker call OutboxWorker.run_once themselves and nothing races them.
IDLE_WORKER_S = 3600.0


@dataclass(slots=True)
class Pam:
    """The reference operator wallet, served on a real port."""

    server: TestServer

    @property
    def app(self) -> web.Application:
        """Return the PAM's application."""
        return self.server.app

    @property
    def url(self) -> str:
        """Return the base URL the gateway calls."""
        return str(self.server.make_url("/")).rstrip("/")

    @property
    def port(self) -> int:
        """Return the TCP port the PAM listens on."""
        assert self.server.port is not None
        return self.server.port

    @property
    def pool(self) -> asyncpg.Pool:
        """Return the PAM's own connection pool."""
        return self.app[PAM_POOL]

    async def balance(self, player_id: str) -> int:
        """Return a player's balance as the operator holds it."""
        player = await store.get_player(self.pool, player_id)
        assert player is not None, f"no PAM player {player_id}"
        return player.balance_minor

    async def transactions(self) -> list[dict[str, Any]]:
        """Return every transaction row the PAM stored, oldest first."""
        rows = await self.pool.fetch("SELECT * FROM pam.transactions ORDER BY seq")
        return [dict(r) for r in rows]


def payload(player_id: str, currency: str = "EUR", **fields: Any) -> dict[str, Any]:
    """Return a generic-protocol body for operator op1; None fields are left out."""
    body: dict[str, Any] = {"operator": OPERATOR, "player_id": player_id, "currency": currency}
    body.update({k: v for k, v in fields.items() if v is not None})
    return body


@dataclass(slots=True)
class Gateway:
    """One running gateway with its backend, a provider simulator and the books to check."""

    backend: str
    app: web.Application
    client: TestClient
    sim: GenericSimulator
    pam: Pam | None = None
    openings: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def pool(self) -> asyncpg.Pool:
        """Return the gateway's connection pool."""
        return self.app[keys.PG_POOL]

    # Players, sessions and balances at the backend.

    async def open_player(
        self,
        player_id: str = "p1",
        balance_minor: int = OPENING_MINOR,
        currency: str = "EUR",
        *,
        blocked: bool = False,
    ) -> None:
        """Create a player's account where this backend keeps the money."""
        if self.backend == "ledger":
            async with self.pool.acquire() as conn:
                await open_account(conn, OPERATOR, player_id, currency, balance_minor, blocked=blocked)
        else:
            assert self.pam is not None
            await store.set_player(self.pam.pool, player_id, currency, balance_minor, blocked)
        self.openings[(player_id, currency)] = balance_minor

    async def set_blocked(self, player_id: str, blocked: bool, currency: str = "EUR") -> None:
        """Block or unblock a player without touching the balance."""
        current = await self.balance(player_id, currency)
        if self.backend == "ledger":
            async with self.pool.acquire() as conn:
                await open_account(conn, OPERATOR, player_id, currency, current, blocked=blocked)
        else:
            assert self.pam is not None
            await store.set_player(self.pam.pool, player_id, currency, current, blocked)

    async def balance(self, player_id: str = "p1", currency: str = "EUR") -> int:
        """Return the player's balance where the money really is."""
        if self.backend == "ledger":
            value = await self.pool.fetchval(
                "SELECT balance_minor FROM croupier.accounts"
                " WHERE operator = $1 AND player_id = $2 AND currency = $3",
                OPERATOR,
                player_id,
                currency,
            )
            assert value is not None, f"no ledger account for {player_id}"
            return int(value)
        assert self.pam is not None
        return await self.pam.balance(player_id)

    async def session(self, player_id: str = "p1", currency: str = "EUR", game_id: str = "g1") -> str:
        """Open a player session in Redis and return its token."""
        created = await self.app[keys.SESSIONS].create(OPERATOR, player_id, currency, PROVIDER, game_id)
        return created.token

    async def end_session(self, token: str) -> None:
        """End a session at once."""
        await self.app[keys.SESSIONS].end(token)

    # Stored rows.

    async def entries(self, player_id: str = "p1") -> list[int]:
        """Return the signed ledger entries of a player, oldest first."""
        rows = await self.pool.fetch(
            "SELECT amount_minor FROM croupier.entries WHERE kind = 'operation' AND operator = $1"
            " AND player_id = $2 ORDER BY id",
            OPERATOR,
            player_id,
        )
        return [int(r["amount_minor"]) for r in rows]

    async def operation(self, kind: str, external_id: str) -> asyncpg.Record:
        """Return the stored operation under a generic key."""
        row = await self.pool.fetchrow(
            "SELECT * FROM croupier.operations WHERE provider = $1 AND kind = $2 AND external_id = $3",
            PROVIDER,
            kind,
            external_id,
        )
        assert row is not None, f"no stored {kind} {external_id}"
        return row

    async def counts(self) -> tuple[int, int]:
        """Return how many operations and entries are stored."""
        ops = await self.pool.fetchval("SELECT count(*) FROM croupier.operations")
        entries = await self.pool.fetchval("SELECT count(*) FROM croupier.entries WHERE kind = 'operation'")
        return int(ops), int(entries)

    async def outbox(self) -> list[dict[str, Any]]:
        """Return every outbox row, oldest first."""
        rows = await self.pool.fetch("SELECT * FROM croupier.outbox ORDER BY id")
        return [dict(r) for r in rows]

    async def assert_books(self, player_id: str = "p1", currency: str = "EUR") -> int:
        """Assert the backend's balance is the opening balance plus the ledger's entries; return it."""
        opening = self.openings[(player_id, currency)]
        entries = await self.entries(player_id)
        balance = await self.balance(player_id, currency)
        assert balance == opening + sum(entries), (balance, opening, entries)
        if self.backend == "ledger":
            # Croupier's own balances: every change is an entry, the opening one included.
            booked = await self.pool.fetchval(
                "SELECT coalesce(sum(amount_minor), 0) FROM croupier.entries"
                " WHERE operator = $1 AND player_id = $2 AND currency = $3",
                OPERATOR,
                player_id,
                currency,
            )
            assert balance == booked, (balance, booked)
        return balance

    # Provider calls in the generic protocol (one call each, no retries).

    async def debit(
        self,
        tx: str,
        amount: Any,
        *,
        token: str | None,
        round_id: str = "r1",
        player_id: str = "p1",
        currency: str = "EUR",
        game_id: str | None = "g1",
    ) -> Answer:
        """Place a bet."""
        body = payload(
            player_id,
            currency,
            session_token=token,
            transaction_id=tx,
            amount=amount,
            round_id=round_id,
            game_id=game_id,
        )
        return await self.sim.call("debit", body)

    async def credit(
        self,
        tx: str,
        amount: Any,
        *,
        round_id: str = "r1",
        kind: str | None = None,
        token: str | None = None,
        player_id: str = "p1",
        currency: str = "EUR",
        game_id: str | None = "g1",
    ) -> Answer:
        """Pay a credit of a kind (a win unless told)."""
        body = payload(
            player_id,
            currency,
            session_token=token,
            transaction_id=tx,
            amount=amount,
            round_id=round_id,
            game_id=game_id,
            credit_kind=kind,
        )
        return await self.sim.call("credit", body)

    async def rollback(
        self,
        tx: str,
        reference: str,
        *,
        amount: Any = None,
        round_id: str | None = None,
        token: str | None = None,
        player_id: str = "p1",
        currency: str = "EUR",
        game_id: str | None = "g1",
    ) -> Answer:
        """Refund a bet (the generic protocol makes game_id optional; None leaves it out)."""
        body = payload(
            player_id,
            currency,
            session_token=token,
            transaction_id=tx,
            reference_transaction_id=reference,
            amount=amount,
            round_id=round_id,
            game_id=game_id,
        )
        return await self.sim.call("rollback", body)

    async def end_round(self, round_id: str, *, tx: str | None = None, player_id: str = "p1") -> Answer:
        """Close a round."""
        body = payload(player_id, transaction_id=tx or f"end-{round_id}", round_id=round_id)
        return await self.sim.call("end_round", body)

    async def post_raw(
        self,
        operation: str,
        body: bytes,
        *,
        signer: Signer | None = None,
        now_s: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Send exact bytes, signed (or not), and return the HTTP status and decoded answer."""
        path = f"/providers/{PROVIDER}/{operation}"
        sent = {"Content-Type": "application/json"}
        if signer is not None:
            sent |= signer.headers("POST", path, body, now_s)
        sent |= headers or {}
        async with self.client.post(path, data=body, headers=sent) as resp:
            return resp.status, orjson.loads(await resp.read())

    async def run_outbox(self, passes: int = 1) -> int:
        """Run the outbox worker's pass a few times; return how many rows it finished."""
        worker = self.app[keys.OUTBOX]
        return sum([await worker.run_once() for _ in range(passes)])

    async def metrics_text(self) -> str:
        """Return the gateway's /metrics page."""
        async with self.client.get("/metrics") as resp:
            assert resp.status == 200
            return await resp.text()


async def definite(call: Callable[[], Awaitable[Answer]], attempts: int = 100) -> Answer:
    """Repeat a call (same ids) while the gateway answers retryable, as a provider does."""
    for _ in range(attempts):
        answer = await call()
        if not answer.body.get("retryable"):
            return answer
        await asyncio.sleep(0.02)
    raise AssertionError(f"still retryable after {attempts} tries: {answer}")


def provider_signer() -> Signer:
    """Return the signer the provider uses."""
    return Signer(PROVIDER_KEY_ID, PROVIDER_SECRET)


def gateway_settings(
    database_url: str,
    redis_url: str,
    backend: str,
    *,
    wallet_url: str = "",
    policy: OperatorPolicy | None = None,
) -> Settings:
    """Return settings for one operator on the given backend and the generic provider."""
    policy = policy or OperatorPolicy(name=OPERATOR)
    if backend == "ledger":
        operator = OperatorSettings(policy=policy)
    else:
        operator = OperatorSettings(
            policy=policy,
            backend="seamless",
            wallet_url=wallet_url,
            key_id=OPERATOR_KEY_ID,
            secret=OPERATOR_SECRET,
        )
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        operators={OPERATOR: operator},
        providers={PROVIDER: ProviderConfig(PROVIDER, secrets={PROVIDER_KEY_ID: PROVIDER_SECRET})},
        outbox_interval_s=IDLE_WORKER_S,
        pool_size=20,
        # Every node of a deployment verifies the same session keys.
        session_keys={SESSION_KEY_ID: SESSION_KEY},
        session_active_key=SESSION_KEY_ID,
    )


class Harness:
    """Starts PAMs and gateways for one test and stops them in reverse order afterwards."""

    def __init__(self, database_url: str, redis_url: str, stack: contextlib.AsyncExitStack) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.stack = stack

    async def serve(self, app: web.Application) -> TestServer:
        """Serve an application on a real port on 127.0.0.1 until the test ends."""
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        self.stack.push_async_callback(server.close)
        return server

    async def pam(self) -> Pam:
        """Start the reference operator wallet, which accepts the gateway's key."""
        settings = PamSettings(self.database_url, {OPERATOR_KEY_ID: OPERATOR_SECRET})
        return Pam(await self.serve(create_pam_app(settings)))

    async def gateway(
        self,
        backend: str,
        *,
        pam: Pam | None = None,
        wallet_url: str | None = None,
        policy: OperatorPolicy | None = None,
    ) -> Gateway:
        """Start a gateway; a seamless one calls `wallet_url`, or a PAM started here if not given."""
        if backend == "seamless" and pam is None:
            pam = await self.pam()
        url = wallet_url or (pam.url if pam is not None else "")
        app = create_app(
            gateway_settings(self.database_url, self.redis_url, backend, wallet_url=url, policy=policy)
        )
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        self.stack.push_async_callback(client.close)
        sim = GenericSimulator(
            str(client.make_url("/")),
            client.session,
            ProviderConfig(PROVIDER, {PROVIDER_KEY_ID: PROVIDER_SECRET}),
        )
        return Gateway(backend, app, client, sim, pam)


@pytest.fixture
async def harness(fresh_db: str, fresh_redis: str) -> AsyncIterator[Harness]:
    """Yield a harness on the test's own database; everything it started stops at the end."""
    # fresh_db is set up first, so it is dropped after every server here has stopped.
    async with contextlib.AsyncExitStack() as stack:
        yield Harness(fresh_db, fresh_redis, stack)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Return each backend in turn, so one test runs against both."""
    return str(request.param)


# The semantics fixture's bet limit: 50.00 EUR.
MAX_BET_MINOR = 5_000


@pytest.fixture
async def gw(harness: Harness, backend: str) -> Gateway:
    """Return a gateway on the backend under test, bets limited to 50.00 EUR, p1 holding 100.00."""
    policy = OperatorPolicy(name=OPERATOR, max_bet_minor={"EUR": MAX_BET_MINOR})
    gateway = await harness.gateway(backend, policy=policy)
    await gateway.open_player("p1")
    return gateway
