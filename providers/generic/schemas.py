"""Wire types of the generic protocol, checked strictly: a bool is not a number, a float not a string."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from providers.wire import MAX_TOKEN, text
from wallet.errors import InvalidRequestError


def amount(data: dict[str, Any], name: str = "amount") -> object:
    """Return a raw decimal amount (string or JSON number) for exact conversion later."""
    value = data.get(name)
    if value is None:
        raise InvalidRequestError(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidRequestError(f"{name} must be a decimal string or a number")
    return value


def campaign_id(data: dict[str, Any]) -> str | None:
    """Return the free-round campaign a credit pays for, if it names one (optional)."""
    return text(data, "campaign_id", required=False)


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
            session_token=text(data, "session_token", required=False, max_length=MAX_TOKEN),
        )
