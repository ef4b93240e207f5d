"""Wire types of the house API, read strictly: a float is not minor units, a bool not a number."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from providers import wire
from wallet.errors import AuthenticationError, InvalidRequestError
from wallet.money import AmountError, minor_from_wire

MODES = ("standard", "fair")
MAX_TOKEN_CHARS = 256


def token(data: dict[str, Any]) -> str:
    """Return the session token of a body, or refuse the request as unauthenticated."""
    value = data.get("token")
    if not isinstance(value, str) or not value or len(value) > MAX_TOKEN_CHARS:
        raise AuthenticationError("a session token is required")
    return value


def bearer(header: str | None) -> str:
    """Return the token of an `Authorization: Bearer <token>` header, or refuse the request."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip() or len(value.strip()) > MAX_TOKEN_CHARS:
        raise AuthenticationError("an Authorization: Bearer <session token> header is required")
    return value.strip()


def round_id(value: object) -> uuid.UUID:
    """Return a round id: a UUID the client made, so a retry names the same round."""
    if not isinstance(value, str):
        raise InvalidRequestError("round_id must be a UUID string")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidRequestError("round_id must be a UUID string") from None


def canonical(params: dict[str, Any]) -> bytes:
    """Return the parameters as canonical JSON, so a retry compares equal whatever its key order."""
    return orjson.dumps(params, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class RoundRequest:
    """POST /rounds: play one round of a game for a bet, under a client-made round id."""

    token: str
    round_id: uuid.UUID
    game: str
    bet_minor: int
    params: dict[str, Any]
    mode: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoundRequest:
        """Read and check the fields; the game's own rules are checked by the game."""
        try:
            bet_minor = minor_from_wire(data.get("bet_minor"))
        except AmountError as exc:
            raise InvalidRequestError(f"bet_minor: {exc}") from None
        if bet_minor == 0:
            raise InvalidRequestError("bet_minor must be positive")
        params = data.get("params", {})
        if not isinstance(params, dict):
            raise InvalidRequestError("params must be a JSON object")
        mode = data.get("mode", "standard")
        if mode not in MODES:
            raise InvalidRequestError(f"mode must be one of {', '.join(MODES)}")
        return cls(
            token=token(data),
            round_id=round_id(data.get("round_id")),
            game=wire.required_text(data, "game"),
            bet_minor=bet_minor,
            params=params,
            mode=str(mode),
        )


def client_seed(data: dict[str, Any], *, required: bool) -> str | None:
    """Return the client seed of a fair-mode request (checked again by rng.fair)."""
    value = data.get("client_seed")
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError("client_seed must be a string")
    return value
