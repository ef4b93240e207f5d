"""Provably fair seed pairs: committed before play, the client seed the player's, revealed on rotation."""

from __future__ import annotations

from providers.house import store
from providers.house.store import SeedPair
from rng.fair import commitment, new_client_seed, new_server_seed, validate_client_seed
from wallet.db import Connection
from wallet.errors import InvalidRequestError


def checked_client_seed(value: str) -> str:
    """Return a client seed the fair source accepts, or refuse the request."""
    try:
        return validate_client_seed(value)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None


async def active_pair(conn: Connection, operator: str, player_id: str, *, lock: bool = False) -> SeedPair:
    """Return the player's active pair, committing a fresh one first if there is none."""
    pair = await store.active_seed(conn, operator, player_id, lock=lock)
    if pair is None:
        server_seed = new_server_seed()
        await store.create_seed(
            conn, operator, player_id, server_seed, commitment(server_seed), new_client_seed()
        )
        pair = await store.active_seed(conn, operator, player_id, lock=lock)
    assert pair is not None
    return pair


async def set_client_seed(conn: Connection, operator: str, player_id: str, client_seed: str) -> SeedPair:
    """Change the active pair's client seed; the server seed stays committed and the nonce runs on."""
    seed = checked_client_seed(client_seed)
    pair = await active_pair(conn, operator, player_id, lock=True)
    await store.set_client_seed(conn, pair.id, seed)
    fresh = await store.seed_by_id(conn, pair.id)
    assert fresh is not None
    return fresh


async def rotate(
    conn: Connection, operator: str, player_id: str, client_seed: str | None
) -> tuple[SeedPair, SeedPair]:
    """Reveal the active pair's server seed and commit a new one; return (revealed, new)."""
    seed = None if client_seed is None else checked_client_seed(client_seed)
    pair = await active_pair(conn, operator, player_id, lock=True)
    revealed = await store.reveal(conn, pair.id)
    server_seed = new_server_seed()
    await store.create_seed(
        conn, operator, player_id, server_seed, commitment(server_seed), seed or pair.client_seed
    )
    fresh = await store.active_seed(conn, operator, player_id)
    assert fresh is not None
    return revealed, fresh
