"""What the gateway lends an adapter while it parses: sessions and the currency table."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from gateway.sessions import Session, SessionStore
from wallet import ledger
from wallet.errors import InvalidRequestError
from wallet.money import AmountError, Currency, CurrencyTable, UnknownCurrencyError, to_minor
from wallet.operations import SessionState


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """The gateway's services an adapter may use, and nothing else."""

    sessions: SessionStore
    currencies: CurrencyTable
    # For adapters with state of their own (schema provider_<name>); never the wallet's tables.
    pool: asyncpg.Pool

    def currency(self, code: object) -> Currency:
        """Return a known currency or raise InvalidRequestError."""
        if not isinstance(code, str):
            raise InvalidRequestError("currency must be a string")
        try:
            return self.currencies.get(code)
        except UnknownCurrencyError as exc:
            raise InvalidRequestError(str(exc)) from None

    def amount(self, value: object, currency: Currency) -> int:
        """Convert a decimal amount in major units exactly, or raise InvalidRequestError."""
        try:
            return to_minor(value, currency)
        except AmountError as exc:
            raise InvalidRequestError(str(exc)) from None

    async def session(self, token: str | None) -> tuple[Session | None, SessionState]:
        """Look a session token up; an unknown or expired token is EXPIRED."""
        if token is None:
            return None, SessionState.NOT_GIVEN
        session = await self.sessions.get(token)
        return session, SessionState.VALID if session else SessionState.EXPIRED

    async def round_currency(
        self, provider: str, operator: str, player_id: str, round_id: str | None
    ) -> str | None:
        """Return the currency the ledger holds for a player's round (or latest round) with a provider."""
        return await ledger.round_currency(self.pool, provider, operator, player_id, round_id)
