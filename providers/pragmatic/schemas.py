"""Pragmatic's wire types: strict form-encoded parameters in, JSON with exact decimal numbers out."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from wallet.errors import InvalidRequestError
from wallet.money import AmountError, Currency, format_major, to_minor

# Pragmatic sends a dozen parameters at most; anything far beyond is not one of its calls.
MAX_FIELDS = 64
MAX_TEXT = 128
# Pragmatic's own limits: userId String(100), roundDetails String(4000).
MAX_USER_ID = 100
MAX_DETAILS = 4000
_TIMESTAMP_RE = re.compile(r"[0-9]{1,19}")
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Params:
    """One call's parameters by name, each given once; every read checks type and length."""

    values: Mapping[str, str]

    def get(self, name: str) -> str | None:
        """Return a parameter as sent, or None."""
        return self.values.get(name)

    def text(self, name: str, *, max_len: int = MAX_TEXT) -> str:
        """Return a required identifier: 1 to max_len printable characters."""
        value = self.optional(name, max_len=max_len)
        if value is None:
            raise InvalidRequestError(f"{name} is required")
        return value

    def optional(self, name: str, *, max_len: int = MAX_TEXT) -> str | None:
        """Return an optional identifier; an empty one counts as absent."""
        value = self.values.get(name)
        if not value:
            return None
        if len(value) > max_len or not value.isprintable():
            raise InvalidRequestError(f"{name} must be 1 to {max_len} printable characters")
        return value

    def present(self, name: str, *, max_len: int = MAX_DETAILS) -> str:
        """Return a required free-text parameter, which may be empty (roundDetails)."""
        value = self.values.get(name)
        if value is None:
            raise InvalidRequestError(f"{name} is required")
        if len(value) > max_len:
            raise InvalidRequestError(f"{name} is longer than {max_len} characters")
        return value

    def timestamp(self, name: str = "timestamp") -> int:
        """Return a required Unix time in milliseconds."""
        value = self.values.get(name)
        if value is None or not _TIMESTAMP_RE.fullmatch(value):
            raise InvalidRequestError(f"{name} must be a Unix time in milliseconds")
        return int(value)

    def amount(self, name: str, currency: Currency, *, signed: bool = False) -> int:
        """Return a required decimal amount in major units, converted exactly to minor units."""
        value = self.values.get(name)
        if value is None:
            raise InvalidRequestError(f"{name} is required")
        try:
            return to_minor(value, currency, allow_negative=signed)
        except AmountError as exc:
            raise InvalidRequestError(f"{name}: {exc}") from None

    def optional_amount(self, name: str, currency: Currency) -> int | None:
        """Return an optional amount; an empty one counts as absent."""
        return self.amount(name, currency) if self.values.get(name) else None


def decode(body: bytes) -> Params:
    """Parse an `application/x-www-form-urlencoded` body strictly, or raise InvalidRequestError."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise InvalidRequestError(f"the body is not form data: {str(exc)[:80]}") from None
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise InvalidRequestError(f"parameter {name[:40]!r} is given more than once")
        values[name] = value
    return Params(values)


@dataclass(frozen=True, slots=True)
class Number:
    """A JSON number written exactly as its decimal text (never through a binary float)."""

    text: str

    def __post_init__(self) -> None:
        if not _NUMBER_RE.fullmatch(self.text):
            raise ValueError(f"not a plain decimal number: {self.text!r}")


def major(amount_minor: int, currency: Currency) -> Number:
    """Return minor units as a JSON number with exactly the currency's decimal places."""
    return Number(format_major(amount_minor, currency))


Field = tuple[str, str | int | Number]


def encode(fields: Iterable[Field]) -> bytes:
    """Return a flat JSON object; Numbers go out as their exact text, everything else via orjson."""
    parts = [
        orjson.dumps(name)
        + b":"
        + (value.text.encode() if isinstance(value, Number) else orjson.dumps(value))
        for name, value in fields
    ]
    return b"{" + b",".join(parts) + b"}"


def answer(fields: Iterable[Field], status: int = 200) -> web.Response:
    """Return a JSON answer built from the fields in order."""
    return web.Response(body=encode(fields), status=status, content_type="application/json")
