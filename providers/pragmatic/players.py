"""Who a Pragmatic call is for: its userId, its token, and the currency fixed at authentication."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from providers.identity import split_user_id
from providers.pragmatic import schemas
from wallet.errors import InvalidRequestError, Reason, RejectedError
from wallet.money import Currency
from wallet.operations import SessionState

if TYPE_CHECKING:
    from providers.context import ProviderContext

# Pragmatic finalises open rounds after about 30 days and retries a call for about a day more.
CURRENCY_TTL_S = 40 * 24 * 3600
MAX_TOKEN = 256


@dataclass(frozen=True, slots=True)
class Player:
    """The caller's player: who, in which currency (if known), and what its token said."""

    user_id: str
    operator: str
    player_id: str
    currency: str | None
    session: SessionState

    def currency_in(self, ctx: ProviderContext, *, bet: bool = False) -> Currency:
        """Return the player's currency, or refuse the call when none is known."""
        if self.currency is not None:
            return ctx.currency(self.currency)
        if bet and self.session is SessionState.EXPIRED:
            raise RejectedError(Reason.SESSION_EXPIRED, "the token is unknown or expired")
        raise RejectedError(Reason.PLAYER_NOT_FOUND, "no currency is known for this user: authenticate first")


def currency_key(ctx: ProviderContext, uid: str) -> str:
    """Return the Redis key of a user's currency; the hash tag keeps one player on one shard."""
    return f"{ctx.sessions.prefix}:pragmatic:currency:{{{uid}}}"


async def remember(ctx: ProviderContext, uid: str, currency: str, ttl_s: int) -> None:
    """Remember the currency a user authenticated with, for later calls that carry no token."""
    await ctx.sessions.redis.set(currency_key(ctx, uid), currency, ex=ttl_s)


async def resolve(
    provider: str,
    p: schemas.Params,
    ctx: ProviderContext,
    *,
    round_id: str | None = None,
    ttl_s: int = CURRENCY_TTL_S,
) -> Player:
    """Return the caller's player, with the currency of its token, its authentication or its round."""
    uid = p.text("userId", max_len=schemas.MAX_USER_ID)
    try:
        operator, player_id = split_user_id(uid)
    except InvalidRequestError:
        raise RejectedError(Reason.PLAYER_NOT_FOUND, "userId is not one Croupier issued") from None
    session, state = await ctx.session(p.optional("token", max_len=MAX_TOKEN))
    if session is not None and (session.provider, session.operator, session.player_id) != (
        provider,
        operator,
        player_id,
    ):
        # Another player's (or provider's) token is no token for this player.
        session, state = None, SessionState.EXPIRED
    if session is not None:
        return Player(uid, operator, player_id, session.currency, state)
    remembered = await ctx.sessions.redis.get(currency_key(ctx, uid))
    if isinstance(remembered, bytes):
        return Player(uid, operator, player_id, remembered.decode(), state)
    # Redis is a cache: a win owed after a flush is still paid, in the currency the round was bet in.
    currency = await ctx.round_currency(provider, operator, player_id, round_id)
    if currency is not None:
        await remember(ctx, uid, currency, ttl_s)
    return Player(uid, operator, player_id, currency, state)
