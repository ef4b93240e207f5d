"""Wire types of Evolution's One Wallet, read strictly and with exact amounts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from providers.identity import split_user_id
from providers.wire import MAX_TEXT, MAX_TOKEN, required_text, text
from wallet.errors import InvalidRequestError
from wallet.operations import CreditKind, Operation

# A promo payout's key and round carry this prefix, so they never meet a bet's refId.
PROMO_PREFIX = "promo:"
PROMO_KINDS = {
    "FreeRoundPlayableSpent": CreditKind.FREEROUND,
    "JackpotWin": CreditKind.JACKPOT,
}


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def decode(body: bytes) -> dict[str, Any]:
    """Parse a JSON object with every fractional number as an exact Decimal, or raise InvalidRequestError."""
    try:
        # The stdlib parser, not orjson: a float would already have rounded 0.1000000000000000055 to 0.1.
        data = json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # bad UTF-8, bad JSON, NaN, absurd nesting or digits
        raise InvalidRequestError(f"malformed JSON: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("the body must be a JSON object")
    return data


def uuid_of(data: dict[str, Any]) -> str | None:
    """Return the request's uuid if it is usable, so even a refusal can echo it."""
    value = data.get("uuid")
    return value if isinstance(value, str) and 0 < len(value) <= MAX_TEXT else None


def obj(data: dict[str, Any], name: str, *, required: bool = True) -> dict[str, Any] | None:
    """Return a nested JSON object field."""
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidRequestError(f"{name} is required")
        return None
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{name} must be an object")
    return value


def number(data: dict[str, Any], name: str) -> Decimal | int:
    """Return a JSON number exactly as written; a string or a boolean is not a number here."""
    value = data.get(name)
    if value is None:
        raise InvalidRequestError(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise InvalidRequestError(f"{name} must be a JSON number")
    return value


def bet_round(game_id: str, ref_id: str) -> str:
    """Return the core's round for one Evolution bet: settlement is per refId, not per game."""
    # Escaped so that no two (game, refId) pairs can spell the same round.
    return f"{quote(game_id, safe='')}/{quote(ref_id, safe='')}"


def promo_kind(promo_type: str) -> CreditKind:
    """Return the credit kind of a promo payout type; unknown types are promotional money."""
    return PROMO_KINDS.get(promo_type, CreditKind.PROMO)


@dataclass(frozen=True, slots=True)
class Common:
    """The fields of every callback: the session, the player and the request id."""

    sid: str
    operator: str
    player_id: str
    uuid: str

    @classmethod
    def read(cls, data: dict[str, Any]) -> Common:
        """Read the common fields; the user id must be one Croupier issued."""
        uuid = required_text(data, "uuid")
        sid = required_text(data, "sid", MAX_TOKEN)
        operator, player_id = split_user_id(required_text(data, "userId"))
        return cls(sid=sid, operator=operator, player_id=player_id, uuid=uuid)


@dataclass(frozen=True, slots=True)
class Game:
    """The `game` object: the round id, its type and the table it is played at."""

    id: str | None
    type: str | None
    table_id: str | None

    @classmethod
    def read(cls, data: dict[str, Any], *, required: bool) -> Game | None:
        """Read `game`; a bet names its round, a balance or promo payout may send null."""
        raw = obj(data, "game", required=required)
        if raw is None:
            return None
        details = obj(raw, "details", required=False) or {}
        table = obj(details, "table", required=False) or {}
        text(table, "vid", required=False)
        return cls(
            id=text(raw, "id", required=required),
            type=text(raw, "type", required=False),
            table_id=text(table, "id", required=False),
        )


@dataclass(frozen=True, slots=True)
class Transaction:
    """The `transaction` of a debit, credit or cancel."""

    id: str
    ref_id: str
    amount: Decimal | int

    @classmethod
    def read(cls, data: dict[str, Any]) -> Transaction:
        """Read `transaction`: its own id, the refId of the bet and the amount."""
        raw = obj(data, "transaction")
        assert raw is not None
        return cls(
            id=required_text(raw, "id"),
            ref_id=required_text(raw, "refId"),
            amount=number(raw, "amount"),
        )


@dataclass(frozen=True, slots=True)
class PromoTransaction:
    """The `promoTransaction` of a promo payout."""

    type: str
    id: str
    amount: Decimal | int
    voucher_id: str | None
    remaining_rounds: int | None

    @classmethod
    def read(cls, data: dict[str, Any]) -> PromoTransaction:
        """Read `promoTransaction`."""
        raw = obj(data, "promoTransaction")
        assert raw is not None
        remaining = raw.get("remainingRounds")
        if remaining is not None and (isinstance(remaining, bool) or not isinstance(remaining, int)):
            raise InvalidRequestError("remainingRounds must be an integer")
        if remaining is not None and remaining < 0:
            raise InvalidRequestError("remainingRounds must not be negative")
        return cls(
            type=required_text(raw, "type"),
            id=required_text(raw, "id"),
            amount=number(raw, "amount"),
            voucher_id=text(raw, "voucherId", required=False),
            remaining_rounds=remaining,
        )


def channel(data: dict[str, Any]) -> str | None:
    """Return the channel type of a check or sid request (P for PC, M for mobile), if sent."""
    raw = obj(data, "channel", required=False)
    return None if raw is None else text(raw, "type", required=False)


@dataclass(frozen=True, slots=True)
class EvolutionOperation(Operation):
    """A canonical operation plus what Evolution's answer echoes: the uuid and, for check and sid, a sid."""

    uuid: str | None = None
    answer_sid: str | None = None
