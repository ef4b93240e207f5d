"""Money as integer minor units plus a currency; exact conversion from providers' amounts."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING

from iso4217 import Currency as IsoCurrency

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

# PostgreSQL bigint, where balances and amounts are stored; 10**15 would not fit 18-decimal tokens.
MAX_AMOUNT_MINOR = 2**63 - 1
MAX_EXPONENT = 18

_EXTRA_CODE_RE = re.compile(r"[A-Za-z0-9]{2,10}")
# JSON-number shape only: Decimal itself also takes "1_000", " 1", "+1", ".5" and non-ASCII digits,
# none of which a provider means as an amount.
_AMOUNT_TEXT_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SHOWN_CHARS = 40


class AmountError(ValueError):
    """An amount is not a valid, exactly representable value for its currency."""


class UnknownCurrencyError(ValueError):
    """A currency code is not in the currency table."""


@dataclass(frozen=True, slots=True)
class Currency:
    """A currency code and its number of minor-unit decimal places."""

    code: str
    exponent: int

    def __post_init__(self) -> None:
        # The exponent bounds every power of ten computed from it, so it is checked once here.
        if isinstance(self.exponent, bool) or not isinstance(self.exponent, int):
            raise TypeError(f"currency exponent must be an int, got {self.exponent!r}")
        if not 0 <= self.exponent <= MAX_EXPONENT:
            raise ValueError(
                f"currency exponent for {self.code!r} must be 0..{MAX_EXPONENT}, got {self.exponent}"
            )
        if not isinstance(self.code, str) or not self.code:
            raise ValueError(f"currency code must be a non-empty string, got {self.code!r}")


@cache
def _iso_exponents() -> Mapping[str, int]:
    """Return the ISO 4217 codes that have minor units, with their exponents."""
    table: dict[str, int] = {}
    for iso in IsoCurrency:
        exponent: int | None = iso.exponent
        # Codes without an exponent (XAU, XDR, ...) are not tradable money.
        if exponent is not None:
            code: str = iso.code
            table[code] = exponent
    return MappingProxyType(table)


class CurrencyTable:
    """The ISO 4217 currencies plus operator-configured extra ones (for example crypto)."""

    def __init__(self, extra: Mapping[str, int] | None = None) -> None:
        iso = _iso_exponents()
        iso_upper = {code.upper(): code for code in iso}
        table = dict(iso)
        for code, exponent in (extra or {}).items():
            if not isinstance(code, str) or not _EXTRA_CODE_RE.fullmatch(code):
                raise ValueError(f"extra currency code {code!r} must match [A-Za-z0-9]{{2,10}}")
            if isinstance(exponent, bool) or not isinstance(exponent, int):
                raise TypeError(f"extra currency {code}: exponent must be an int, got {exponent!r}")
            if not 0 <= exponent <= MAX_EXPONENT:
                raise ValueError(f"extra currency {code}: exponent must be 0..{MAX_EXPONENT}, got {exponent}")
            iso_code = iso_upper.get(code.upper())
            if iso_code is not None and iso_code != code:
                # "eur" next to "EUR" would be a second, different balance that looks the same.
                raise ValueError(f"extra currency {code} differs only in case from ISO {iso_code}")
            if iso_code is not None and iso[iso_code] != exponent:
                raise ValueError(
                    f"extra currency {code}: exponent {exponent} conflicts with ISO 4217 "
                    f"exponent {iso[iso_code]}"
                )
            table[code] = exponent
        self._currencies = {code: Currency(code, exp) for code, exp in table.items()}

    def get(self, code: str) -> Currency:
        """Return the currency for a code, or raise UnknownCurrencyError."""
        try:
            return self._currencies[code]
        except (KeyError, TypeError):
            raise UnknownCurrencyError(f"unknown currency {code!r}") from None

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self._currencies

    def __iter__(self) -> Iterator[str]:
        return iter(self._currencies)

    def __len__(self) -> int:
        return len(self._currencies)


def _shown(value: object) -> str:
    """Return a short repr of a rejected value for an error message."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _to_decimal(value: object) -> Decimal:
    """Return the exact Decimal a provider's amount denotes, or raise AmountError."""
    # bool first: it is a subclass of int, and True is never an amount.
    if isinstance(value, bool):
        raise AmountError(f"amount must be a number, got boolean {value!r}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise AmountError(f"amount must be finite, got {value!r}")
        # repr is the shortest string that round-trips, so 0.1 means 0.1, not its binary neighbour.
        number = Decimal(repr(value))
    elif isinstance(value, str):
        if not _AMOUNT_TEXT_RE.fullmatch(value):
            raise AmountError(f"amount is not a number: {_shown(value)}")
        try:
            number = Decimal(value)
        except InvalidOperation:
            # Only an exponent beyond what decimal can hold gets here.
            raise AmountError(f"amount is out of range: {_shown(value)}") from None
    else:
        raise AmountError(f"amount must be a decimal string or number, got {type(value).__name__}")
    if not number.is_finite():
        raise AmountError(f"amount must be finite, got {_shown(value)}")
    return number


def to_minor(
    value: object,
    currency: Currency,
    *,
    max_minor: int = MAX_AMOUNT_MINOR,
    allow_negative: bool = False,
) -> int:
    """Convert an amount in major units (str, int, float, Decimal) to exact integer minor units."""
    number = _to_decimal(value)
    if number.is_zero():
        return 0
    if number < 0 and not allow_negative:
        raise AmountError(f"amount must not be negative, got {_shown(value)}")
    sign, digits, exp = number.as_tuple()
    assert isinstance(exp, int)  # finite, checked above
    # The magnitude is checked before any power of ten is built, so "1e999999999" costs nothing.
    if number.adjusted() + currency.exponent >= len(str(max_minor)):
        raise AmountError(f"amount is too large for {currency.code}: {_shown(value)}")
    # Trailing zeros are not precision: "10.500" EUR is 1050.
    significant = len(digits)
    while significant > 1 and digits[significant - 1] == 0:
        significant -= 1
    shift = exp + (len(digits) - significant) + currency.exponent
    if shift < 0:
        raise AmountError(
            f"amount has too many decimal places for {currency.code} "
            f"(exponent {currency.exponent}): {_shown(value)}"
        )
    scale: int = 10**shift  # typeshed types int ** int as Any (a negative power is a float)
    magnitude = int("".join(map(str, digits[:significant]))) * scale
    if magnitude > max_minor:
        raise AmountError(f"amount is too large for {currency.code}: {_shown(value)}")
    return -magnitude if sign else magnitude


def minor_from_wire(value: object, *, max_minor: int = MAX_AMOUNT_MINOR) -> int:
    """Accept an integer minor-unit amount from the wire (a JSON integer), or raise AmountError."""
    if isinstance(value, bool):
        raise AmountError(f"minor amount must be an integer, got boolean {value!r}")
    # A float here means the sender wrote a dot or an exponent: not a minor-unit integer.
    if not isinstance(value, int):
        raise AmountError(f"minor amount must be an integer, got {type(value).__name__}")
    if value < 0:
        raise AmountError(f"minor amount must not be negative, got {value}")
    if value > max_minor:
        raise AmountError(f"minor amount is too large: {_shown(value)}")
    return value


def _check_minor(amount_minor: int) -> None:
    """Reject a non-integer minor amount (bool passes mypy, so it is checked at run time)."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise AmountError(f"minor amount must be an integer, got {type(amount_minor).__name__}")


def minor_to_decimal(amount_minor: int, currency: Currency) -> Decimal:
    """Return integer minor units as an exact Decimal in major units with the currency's places."""
    _check_minor(amount_minor)
    sign, digits, _ = Decimal(amount_minor).as_tuple()
    # Built from the tuple, not with scaleb or division, which would round at the context precision.
    return Decimal((sign, digits, -currency.exponent))


def format_major(amount_minor: int, currency: Currency) -> str:
    """Return integer minor units as a major-unit string with exactly the currency's places."""
    _check_minor(amount_minor)
    sign = "-" if amount_minor < 0 else ""
    if currency.exponent == 0:
        return f"{sign}{abs(amount_minor)}"
    whole, fraction = divmod(abs(amount_minor), 10**currency.exponent)
    return f"{sign}{whole}.{fraction:0{currency.exponent}d}"
