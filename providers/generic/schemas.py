"""Wire types of the generic protocol, checked strictly: a bool is not a number, a float not a string."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from wallet.errors import InvalidRequestError

MAX_TEXT = 128


def decode(body: bytes) -> dict[str, Any]:
    """Parse a JSON object body or raise InvalidRequestError."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("the body must be a JSON object")
    return data


def text(data: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    """Return a string field, checked for type and length."""
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidRequestError(f"{name} is required")
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise InvalidRequestError(f"{name} must be a string of 1 to {MAX_TEXT} characters")
    return value


def amount(data: dict[str, Any], name: str = "amount") -> object:
    """Return a raw decimal amount (string or JSON number) for exact conversion later."""
    value = data.get(name)
    if value is None:
        raise InvalidRequestError(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidRequestError(f"{name} must be a decimal string or a number")
    return value


@dataclass(frozen=True, slots=True)
class Request:
    """The fields common to every generic callback."""

    operator: str
    player_id: str
    currency: str
    session_token: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Request:
        """Read the common fields."""
        return cls(
            operator=text(data, "operator") or "",
            player_id=text(data, "player_id") or "",
            currency=text(data, "currency") or "",
            session_token=text(data, "session_token", required=False),
        )
