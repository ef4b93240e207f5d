"""The game catalogue: every adapter's games merged and cached per node, plus each operator's settings."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import asyncpg

from providers.base import Adapter, Game

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GameSettings:
    """One operator's settings for one game; a game without a stored row has the defaults."""

    enabled: bool = True
    rtp_variant: str | None = None


DEFAULT_SETTINGS = GameSettings()


@dataclass(frozen=True, slots=True)
class OperatorGame:
    """A catalogue game as one operator sees it."""

    game: Game
    settings: GameSettings

    @property
    def rtp_variant(self) -> str | None:
        """Return the variant this operator launches, or None for the provider's default."""
        chosen = self.settings.rtp_variant
        # A variant the provider has since withdrawn falls back to its default.
        return chosen if chosen in self.game.rtp_variants else None


class Catalogue:
    """Every configured adapter's games, asked for again once `ttl_s` has passed."""

    def __init__(
        self,
        adapters: Mapping[str, Adapter],
        pool: asyncpg.Pool,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.adapters = adapters
        self.pool = pool
        self.ttl_s = ttl_s
        self.clock = clock
        # Each provider's last good list, so one failing adapter never empties the catalogue.
        self._by_provider: dict[str, tuple[Game, ...]] = {}
        self._games: tuple[Game, ...] = ()
        self._index: dict[tuple[str, str], Game] = {}
        self._fetched_at: float | None = None

    def refresh(self) -> None:
        """Ask every adapter for its games now; an adapter that fails keeps its last good list."""
        for name, adapter in self.adapters.items():
            try:
                found = adapter.catalogue()
            except Exception:  # a plug-in's failure must not take the catalogue down
                log.exception("catalogue of provider %s failed; keeping its last good list", name)
                continue
            games: dict[str, Game] = {}
            for game in found:
                if game.game_id in games:
                    log.warning("provider %s lists game %s twice; keeping the first", name, game.game_id)
                    continue
                games[game.game_id] = game if game.provider == name else replace(game, provider=name)
            self._by_provider[name] = tuple(games.values())
        merged = [g for games in self._by_provider.values() for g in games]
        merged.sort(key=lambda g: (g.provider, g.game_id))
        self._games = tuple(merged)
        self._index = {(g.provider, g.game_id): g for g in merged}
        self._fetched_at = self.clock()

    def _fresh(self) -> None:
        if self._fetched_at is None or self.clock() - self._fetched_at >= self.ttl_s:
            self.refresh()

    def games(self) -> tuple[Game, ...]:
        """Return every game, ordered by provider and game id."""
        self._fresh()
        return self._games

    def find(self, provider: str, game_id: str) -> Game | None:
        """Return one game, or None if no configured provider offers it."""
        self._fresh()
        return self._index.get((provider, game_id))

    async def settings_of(self, operator: str) -> dict[tuple[str, str], GameSettings]:
        """Return an operator's stored settings by (provider, game id)."""
        rows = await self.pool.fetch(
            "SELECT provider, game_id, enabled, rtp_variant FROM croupier.game_settings WHERE operator = $1",
            operator,
        )
        return {(r["provider"], r["game_id"]): GameSettings(r["enabled"], r["rtp_variant"]) for r in rows}

    async def for_operator(self, operator: str) -> list[OperatorGame]:
        """Return every game with an operator's settings applied."""
        stored = await self.settings_of(operator)
        return [OperatorGame(g, stored.get((g.provider, g.game_id), DEFAULT_SETTINGS)) for g in self.games()]

    async def game_for(self, operator: str, provider: str, game_id: str) -> OperatorGame | None:
        """Return one game with an operator's settings, or None if it does not exist."""
        game = self.find(provider, game_id)
        if game is None:
            return None
        row = await self.pool.fetchrow(
            "SELECT enabled, rtp_variant FROM croupier.game_settings"
            " WHERE operator = $1 AND provider = $2 AND game_id = $3",
            operator,
            provider,
            game_id,
        )
        settings = DEFAULT_SETTINGS if row is None else GameSettings(row["enabled"], row["rtp_variant"])
        return OperatorGame(game, settings)

    async def configure(self, operator: str, game: Game, settings: GameSettings) -> OperatorGame:
        """Store an operator's settings for a game (the caller has checked the RTP variant)."""
        await self.pool.execute(
            "INSERT INTO croupier.game_settings (operator, provider, game_id, enabled, rtp_variant)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (operator, provider, game_id)"
            " DO UPDATE SET enabled = EXCLUDED.enabled, rtp_variant = EXCLUDED.rtp_variant,"
            " updated_at = now()",
            operator,
            game.provider,
            game.game_id,
            settings.enabled,
            settings.rtp_variant,
        )
        return OperatorGame(game, settings)
