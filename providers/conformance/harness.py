"""A running gateway for one adapter, on the ledger backend, with the books open to the battery."""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from gateway import keys
from gateway.app import create_app
from gateway.runtime import serve_app
from gateway.settings import OperatorSettings, Settings
from providers.base import Adapter, ProviderConfig
from providers.simulator import ProviderSimulator, SimPlayer, SimulatorOptions
from wallet.backends.ledger import open_account
from wallet.policy import Capabilities, OperatorPolicy

OPERATOR = "kit-casino"
OTHER_OPERATOR = "kit-other"
CURRENCY = "EUR"
OPENING_MINOR = 100_00
BET_LIMIT_MINOR = 500_00


@dataclass
class Kit:
    """What a scenario gets: the provider's simulator and a view of the money behind it."""

    adapter: Adapter
    sim: ProviderSimulator
    app: web.Application
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def caps(self) -> Capabilities:
        """Return the adapter's declared capabilities."""
        return self.adapter.capabilities

    def new_id(self, prefix: str) -> str:
        """Return an id no other scenario uses."""
        return f"{prefix}-{next(self._ids)}-{uuid.uuid4().hex[:8]}"

    async def player(
        self, balance_minor: int = OPENING_MINOR, *, blocked: bool = False, operator: str = OPERATOR
    ) -> SimPlayer:
        """Open a funded account on the ledger backend and a game session for it."""
        player_id = self.new_id("player")
        async with self.app[keys.PG_POOL].acquire() as conn:
            await open_account(conn, operator, player_id, CURRENCY, balance_minor, blocked=blocked)
        session = await self.app[keys.SESSIONS].create(
            operator, player_id, CURRENCY, self.adapter.name, "kit-game"
        )
        return SimPlayer(operator, player_id, CURRENCY, session.token)

    async def money(self, player: SimPlayer) -> int:
        """Return the player's balance as the backend holds it."""
        balance = await self.app[keys.PG_POOL].fetchval(
            "SELECT balance_minor FROM croupier.accounts WHERE operator = $1 AND player_id = $2",
            player.operator,
            player.player_id,
        )
        return int(balance)

    async def set_blocked(self, player: SimPlayer, *, blocked: bool) -> None:
        """Block or unblock a player at the backend."""
        await self.app[keys.PG_POOL].execute(
            "UPDATE croupier.accounts SET blocked = $3 WHERE operator = $1 AND player_id = $2",
            player.operator,
            player.player_id,
            blocked,
        )

    async def expire(self, player: SimPlayer) -> None:
        """End the player's session at once."""
        await self.app[keys.SESSIONS].end(player.token)

    async def forget_redis(self) -> None:
        """Delete every key the gateway keeps in Redis, as a flush or a lost primary would."""
        sessions = self.app[keys.SESSIONS]
        async for key in sessions.redis.scan_iter(match=f"{sessions.prefix}:*"):
            await sessions.redis.unlink(key)

    async def written(self) -> int:
        """Return how many operations the ledger holds, to show that nothing was written."""
        return int(await self.app[keys.PG_POOL].fetchval("SELECT count(*) FROM croupier.operations"))


def kit_settings(database_url: str, redis_url: str, config: ProviderConfig) -> Settings:
    """Return gateway settings with two ledger operators and the adapter under test."""
    limits = {CURRENCY: BET_LIMIT_MINOR}
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        operators={
            OPERATOR: OperatorSettings(OperatorPolicy(OPERATOR, max_bet_minor=limits)),
            OTHER_OPERATOR: OperatorSettings(OperatorPolicy(OTHER_OPERATOR, max_bet_minor=limits)),
        },
        providers={config.name: config},
        outbox_interval_s=3600.0,
    )


@contextlib.asynccontextmanager
async def running_kit(
    adapter_class: type[Adapter],
    database_url: str,
    redis_url: str,
    simulator_class: type[ProviderSimulator] | None = None,
) -> AsyncIterator[Kit]:
    """Start a gateway with the adapter on a real port and yield the kit around it."""
    config = adapter_class.sample_config()
    app = create_app(kit_settings(database_url, redis_url, config), {config.name: adapter_class})
    options = SimulatorOptions(timeout_s=10.0, retry_delay_s=0.02, max_retries=100)
    sim_class = simulator_class or adapter_class.simulator()
    async with serve_app(app) as url, aiohttp.ClientSession() as http:
        sim = sim_class(url, http, config, options)
        yield Kit(app[keys.ADAPTERS][config.name], sim, app)
