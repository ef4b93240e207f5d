"""Opening a round: its outcome is drawn and stored before the bet is debited, once per round id."""

from __future__ import annotations

import asyncpg

from gateway.sessions import Session
from providers.context import ProviderContext
from providers.house import schemas, seeds, store
from providers.house.games import GameBook
from providers.house.schemas import RoundRequest
from providers.house.store import NewRound, StoredRound
from rng.fair import FairSource
from rng.source import RecordingSource, SecureSource, Source
from wallet.errors import AuthenticationError, InvalidRequestError, MismatchError, Reason, RejectedError
from wallet.operations import SessionState

PROVIDER = "house"


def owns(stored: StoredRound, token: str, session: Session | None) -> bool:
    """Return whether a caller may act on a stored round: its own token, or the same player's session."""
    if store.token_digest(token) == stored.token_sha256:
        return True
    return session is not None and (session.operator, session.player_id) == (
        stored.operator,
        stored.player_id,
    )


def check_repeat(stored: StoredRound, req: RoundRequest) -> None:
    """Refuse a retry that asks for another game, bet, parameters or mode under the same round id."""
    pairs = (
        ("game", stored.game, req.game),
        ("bet", stored.bet_minor, req.bet_minor),
        ("params", schemas.canonical(stored.params), schemas.canonical(req.params)),
        ("mode", stored.mode, req.mode),
    )
    for field, was, now in pairs:
        if was != now:
            raise MismatchError(field)


def live_session(session: Session | None) -> Session:
    """Return a session that may place a new bet here, or refuse."""
    if session is None:
        # Unknown and expired tokens look alike; without a session there is no player to debit.
        raise RejectedError(Reason.SESSION_EXPIRED, "the session has expired")
    if session.provider != PROVIDER:
        raise AuthenticationError("the session was opened for another provider")
    return session


async def open_round(
    pool: asyncpg.Pool, book: GameBook, ctx: ProviderContext, req: RoundRequest
) -> tuple[StoredRound, SessionState]:
    """Return the round under this id: the stored one on a retry, else one drawn and stored now."""
    async with pool.acquire() as conn, conn.transaction():
        # Copies of one request wait here for each other, so a round is drawn exactly once.
        await store.lock_round_id(conn, req.round_id)
        stored = await store.find_round(conn, req.round_id)
        session, state = await ctx.session(req.token)
        if stored is not None:
            if not owns(stored, req.token, session):
                raise MismatchError("player")
            check_repeat(stored, req)
            return stored, state
        player = live_session(session)
        loaded = book.current(req.game)
        if loaded is None:
            raise InvalidRequestError(f"unknown game {req.game!r}; known: {', '.join(book.names)}")
        try:
            loaded.game.validate(req.bet_minor, req.params)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        await store.store_config(conn, loaded.sha256, req.game, loaded.config)
        seed_id = nonce = client_seed = None
        inner: Source
        if req.mode == "fair":
            pair = await seeds.active_pair(conn, player.operator, player.player_id, lock=True)
            seed_id, client_seed = pair.id, pair.client_seed
            nonce = await store.take_nonce(conn, pair.id)
            inner = FairSource(pair.server_seed, pair.client_seed, nonce)
        else:
            inner = SecureSource()
        # The draws happen now, at the moment of the bet, and are recorded with the round.
        recording = RecordingSource(inner)
        result = loaded.game.play(recording, req.bet_minor, req.params)
        await store.insert_round(
            conn,
            NewRound(
                round_id=req.round_id,
                operator=player.operator,
                player_id=player.player_id,
                currency=player.currency,
                token_sha256=store.token_digest(req.token),
                game=req.game,
                game_sha256=loaded.sha256,
                bet_minor=req.bet_minor,
                params=req.params,
                mode=req.mode,
                seed_id=seed_id,
                nonce=nonce,
                client_seed=client_seed,
                draws=recording.draws,
                state=result.state,
                win_minor=result.win_minor,
            ),
        )
        created = await store.find_round(conn, req.round_id)
        assert created is not None
        return created, state
