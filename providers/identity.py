"""The player as providers know it: operator and player id in one opaque user id."""

from __future__ import annotations

from wallet.errors import InvalidRequestError

SEPARATOR = ":"


def user_id(operator: str, player_id: str) -> str:
    """Return the user id a provider sees for an operator's player."""
    if SEPARATOR in operator:
        raise ValueError(f"operator names may not contain {SEPARATOR!r}")
    return f"{operator}{SEPARATOR}{player_id}"


def split_user_id(value: object) -> tuple[str, str]:
    """Return (operator, player id) from a provider's user id, or raise InvalidRequestError."""
    if not isinstance(value, str) or SEPARATOR not in value:
        raise InvalidRequestError("user id is not one Croupier issued")
    operator, _, player_id = value.partition(SEPARATOR)
    if not operator or not player_id:
        raise InvalidRequestError("user id is not one Croupier issued")
    return operator, player_id
