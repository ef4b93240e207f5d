"""Tests for wallet.money: exact amount conversion, currency table, formatting."""

from __future__ import annotations

import random
from decimal import Decimal

import orjson
import pytest

from wallet.money import (
    MAX_AMOUNT_MINOR,
    AmountError,
    Currency,
    CurrencyTable,
    UnknownCurrencyError,
    format_major,
    minor_from_wire,
    minor_to_decimal,
    to_minor,
)

CRYPTO = {"BTC": 8, "ETH": 18, "USDT": 6, "mBTC": 5}
EUR = Currency("EUR", 2)
JPY = Currency("JPY", 0)
KWD = Currency("KWD", 3)
BTC = Currency("BTC", 8)
ETH = Currency("ETH", 18)


# --- Currency and CurrencyTable ---


def test_iso_table_has_exponents() -> None:
    table = CurrencyTable()
    assert table.get("EUR") == EUR
    assert table.get("JPY") == JPY
    assert table.get("KWD") == KWD
    assert "USD" in table
    assert len(table) > 100


def test_iso_codes_without_exponent_are_excluded() -> None:
    table = CurrencyTable()
    for code in ("XAU", "XDR", "XXX"):
        assert code not in table
        with pytest.raises(UnknownCurrencyError):
            table.get(code)


def test_unknown_currency() -> None:
    table = CurrencyTable()
    with pytest.raises(UnknownCurrencyError, match="'BTC'"):
        table.get("BTC")
    assert "BTC" not in table
    assert "eur" not in table  # codes are exact
    assert 42 not in table
    assert issubclass(UnknownCurrencyError, ValueError)


def test_extra_currencies() -> None:
    table = CurrencyTable(CRYPTO)
    assert table.get("BTC") == BTC
    assert table.get("ETH") == ETH
    assert table.get("USDT").exponent == 6
    assert table.get("mBTC").exponent == 5
    assert "EUR" in table
    assert set(CRYPTO) <= set(table)


def test_extra_may_repeat_iso_with_same_exponent() -> None:
    assert CurrencyTable({"EUR": 2}).get("EUR") == EUR


@pytest.mark.parametrize(
    "extra",
    [
        {"EUR": 3},  # silently overriding ISO
        {"JPY": 2},
        {"eur": 2},  # differs only in case from an ISO code
        {"B": 8},  # too short
        {"ABCDEFGHIJK": 8},  # too long
        {"BT-C": 8},
        {"BTC\n": 8},
        {"": 8},
        {"BTC": -1},
        {"BTC": 19},
        {"BTC": True},
        {"BTC": 8.0},
    ],
)
def test_bad_extra_currencies(extra: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):  # the message varies by case
        CurrencyTable(extra)  # type: ignore[arg-type]


def test_currency_validates_exponent() -> None:
    with pytest.raises(ValueError, match=r"0\.\.18"):
        Currency("XYZ", 19)
    with pytest.raises(TypeError):
        Currency("XYZ", exponent=True)
    with pytest.raises(ValueError, match="non-empty"):
        Currency("", 2)


# --- to_minor: accepted values ---


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("10.50", EUR, 1050),
        ("10.5", EUR, 1050),
        ("10.500", EUR, 1050),  # trailing zeros beyond the exponent are fine
        ("10", EUR, 1000),
        ("0", EUR, 0),
        ("0.00", EUR, 0),
        ("-0", EUR, 0),
        ("0.01", EUR, 1),
        ("1e2", EUR, 10000),
        ("1.5E1", EUR, 1500),
        ("1050e-2", EUR, 1050),
        ("007.10", EUR, 710),
        ("1", JPY, 1),
        ("1.0", JPY, 1),
        ("1000", JPY, 1000),
        ("1.005", KWD, 1005),
        ("0.00000001", BTC, 1),
        ("21000000", BTC, 2_100_000_000_000_000),
        ("0.000000000000000001", ETH, 1),
        ("1.5", ETH, 1_500_000_000_000_000_000),
        (10, EUR, 1000),
        (0, EUR, 0),
        (10.5, EUR, 1050),
        (0.1, EUR, 10),
        (0.07, EUR, 7),
        (1e2, EUR, 10000),
        (-0.0, EUR, 0),
        (Decimal("10.50"), EUR, 1050),
        (Decimal("1E+2"), EUR, 10000),
        (Decimal("10.5000000000000000000000000000000000"), EUR, 1050),
    ],
)
def test_to_minor_exact(value: object, currency: Currency, expected: int) -> None:
    assert to_minor(value, currency) == expected


def test_orjson_float_is_read_by_its_shortest_repr() -> None:
    value = orjson.loads(b'{"a": 0.1}')["a"]
    assert isinstance(value, float)
    assert to_minor(value, EUR) == 10
    assert to_minor(orjson.loads(b'{"a": 19.99}')["a"], EUR) == 1999
    assert to_minor(orjson.loads(b'{"a": 10}')["a"], EUR) == 1000
    assert to_minor(orjson.loads(b'{"a": 1.0}')["a"], JPY) == 1


def test_orjson_rejects_infinite_number_before_money_sees_it() -> None:
    with pytest.raises(orjson.JSONDecodeError, match="infinity"):
        orjson.loads(b'{"a": 1e400}')


def test_float_sum_is_over_precise() -> None:
    value = 0.1 + 0.2
    assert value == 0.30000000000000004
    with pytest.raises(AmountError, match=r"too many decimal places for EUR \(exponent 2\)"):
        to_minor(value, EUR)


# --- to_minor: rejected values ---


@pytest.mark.parametrize(
    ("value", "currency", "message"),
    [
        ("10.005", EUR, r"too many decimal places for EUR \(exponent 2\)"),
        ("1.5", JPY, r"too many decimal places for JPY \(exponent 0\)"),
        ("1.0005", KWD, r"too many decimal places for KWD \(exponent 3\)"),
        ("0.000000001", BTC, r"too many decimal places for BTC \(exponent 8\)"),
        ("1e-2", JPY, "too many decimal places"),
        ("1e-999999999999999999", EUR, "too many decimal places"),
        (0.001, EUR, "too many decimal places"),
        (5e-324, EUR, "too many decimal places"),
        (Decimal("0.001"), EUR, "too many decimal places"),
        ("1e30", EUR, "too large for EUR"),
        ("1e999999999999999999", EUR, "too large"),
        ("1e9999999999999999999999", EUR, "out of range"),
        ("92233720368547758.08", EUR, "too large"),  # 2**63 minor units
        (10**30, EUR, "too large"),
        (1e300, EUR, "too large"),
        ("10", ETH, "too large"),  # 10**19 wei exceeds bigint
        ("NaN", EUR, "not a number"),
        ("nan", EUR, "not a number"),
        ("sNaN", EUR, "not a number"),
        ("Infinity", EUR, "not a number"),
        ("-Infinity", EUR, "not a number"),
        ("inf", EUR, "not a number"),
        (float("nan"), EUR, "finite"),
        (float("inf"), EUR, "finite"),
        (float("-inf"), EUR, "finite"),
        (Decimal("NaN"), EUR, "finite"),
        (Decimal("sNaN"), EUR, "finite"),
        (Decimal("Infinity"), EUR, "finite"),
        (True, EUR, "boolean"),
        (False, EUR, "boolean"),
        (None, EUR, "got NoneType"),
        ([], EUR, "got list"),
        ({"amount": "1"}, EUR, "got dict"),
        (b"10", EUR, "got bytes"),
        ("", EUR, "not a number"),
        (" 1", EUR, "not a number"),
        ("1 ", EUR, "not a number"),
        ("1\n", EUR, "not a number"),
        ("1,5", EUR, "not a number"),
        ("+1", EUR, "not a number"),
        ("1_000", EUR, "not a number"),
        (".5", EUR, "not a number"),
        ("5.", EUR, "not a number"),
        ("1.2.3", EUR, "not a number"),
        ("0x10", EUR, "not a number"),
        ("\u0663", EUR, "not a number"),  # ARABIC-INDIC DIGIT THREE, which Decimal accepts
        ("--1", EUR, "not a number"),
        ("ten", EUR, "not a number"),
        ("-1", EUR, "negative"),
        ("-0.01", EUR, "negative"),
        (-1, EUR, "negative"),
        (-0.5, EUR, "negative"),
        (Decimal(-1), EUR, "negative"),
    ],
)
def test_to_minor_rejects(value: object, currency: Currency, message: str) -> None:
    with pytest.raises(AmountError, match=message):
        to_minor(value, currency)


def test_amount_error_is_value_error() -> None:
    assert issubclass(AmountError, ValueError)


def test_to_minor_allow_negative() -> None:
    assert to_minor("-10.50", EUR, allow_negative=True) == -1050
    assert to_minor(-3, JPY, allow_negative=True) == -3
    assert to_minor(-0.1, EUR, allow_negative=True) == -10
    with pytest.raises(AmountError, match="too many decimal places"):
        to_minor("-10.005", EUR, allow_negative=True)
    with pytest.raises(AmountError, match="too large"):
        to_minor("-1e30", EUR, allow_negative=True)


def test_to_minor_bigint_limit() -> None:
    assert MAX_AMOUNT_MINOR == 2**63 - 1
    assert to_minor("92233720368547758.07", EUR) == MAX_AMOUNT_MINOR
    assert to_minor("9.223372036854775807", ETH) == MAX_AMOUNT_MINOR
    with pytest.raises(AmountError, match="too large"):
        to_minor("9.223372036854775808", ETH)


def test_to_minor_max_minor() -> None:
    assert to_minor("100.00", EUR, max_minor=10_000) == 10_000
    with pytest.raises(AmountError, match="too large"):
        to_minor("100.01", EUR, max_minor=10_000)
    with pytest.raises(AmountError, match="too large"):
        to_minor("1000", EUR, max_minor=10_000)
    assert to_minor("0", EUR, max_minor=0) == 0
    with pytest.raises(AmountError, match="too large"):
        to_minor("0.01", EUR, max_minor=0)


def test_error_message_shortens_long_values() -> None:
    value = "1" * 500 + ".001"
    with pytest.raises(AmountError) as info:
        to_minor(value, EUR)
    assert len(str(info.value)) < 120


def test_to_minor_with_table_currency() -> None:
    table = CurrencyTable(CRYPTO)
    assert to_minor("0.00000001", table.get("BTC")) == 1
    assert to_minor("1", table.get("mBTC")) == 100_000
    assert to_minor("1.000001", table.get("USDT")) == 1_000_001


# --- minor_from_wire ---


@pytest.mark.parametrize("value", [0, 1, 1050, MAX_AMOUNT_MINOR])
def test_minor_from_wire_accepts_ints(value: int) -> None:
    assert minor_from_wire(value) == value


def test_minor_from_wire_orjson_int() -> None:
    assert minor_from_wire(orjson.loads(b'{"a": 1050}')["a"]) == 1050
    with pytest.raises(AmountError, match="got float"):
        minor_from_wire(orjson.loads(b'{"a": 1050.0}')["a"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "boolean"),
        (False, "boolean"),
        (10.0, "got float"),
        ("10", "got str"),
        (Decimal(10), "got Decimal"),
        (None, "got NoneType"),
        (-1, "negative"),
        (MAX_AMOUNT_MINOR + 1, "too large"),
    ],
)
def test_minor_from_wire_rejects(value: object, message: str) -> None:
    with pytest.raises(AmountError, match=message):
        minor_from_wire(value)


def test_minor_from_wire_max_minor() -> None:
    assert minor_from_wire(100, max_minor=100) == 100
    with pytest.raises(AmountError, match="too large"):
        minor_from_wire(101, max_minor=100)


# --- minor_to_decimal and format_major ---


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1050, EUR, "10.50"),
        (0, EUR, "0.00"),
        (1, EUR, "0.01"),
        (-1050, EUR, "-10.50"),
        (-5, EUR, "-0.05"),
        (1050, JPY, "1050"),
        (-7, JPY, "-7"),
        (1005, KWD, "1.005"),
        (1, BTC, "0.00000001"),
        (MAX_AMOUNT_MINOR, ETH, "9.223372036854775807"),
        (MAX_AMOUNT_MINOR, EUR, "92233720368547758.07"),
    ],
)
def test_format_and_decimal(amount: int, currency: Currency, text: str) -> None:
    assert format_major(amount, currency) == text
    as_decimal = minor_to_decimal(amount, currency)
    assert as_decimal == Decimal(text)
    assert as_decimal.as_tuple().exponent == -currency.exponent  # fixed places, never rounded
    assert format(as_decimal, "f") == text


def test_minor_to_decimal_is_exact_beyond_context_precision() -> None:
    huge = 10**40 + 1
    assert str(minor_to_decimal(huge, EUR)) == "1" + "0" * 37 + "0.01"


@pytest.mark.parametrize("bad", [True, 1.0, "1"])
def test_format_rejects_non_int(bad: object) -> None:
    with pytest.raises(AmountError):
        format_major(bad, EUR)  # type: ignore[arg-type]
    with pytest.raises(AmountError):
        minor_to_decimal(bad, EUR)  # type: ignore[arg-type]


def test_round_trip_random() -> None:
    """format_major then to_minor gives back the same minor amount, for any exponent."""
    rng = random.Random(4217)  # noqa: S311 - reproducible test data, not secrets
    for _ in range(5000):
        currency = Currency("TST", rng.randint(0, 18))
        amount = rng.choice([0, 1, MAX_AMOUNT_MINOR, rng.randint(0, MAX_AMOUNT_MINOR)])
        amount = rng.choice([amount, rng.randint(0, 10 ** rng.randint(0, 18))])
        text = format_major(amount, currency)
        assert to_minor(text, currency) == amount
        assert to_minor(minor_to_decimal(amount, currency), currency) == amount
        negative = -amount
        assert to_minor(format_major(negative, currency), currency, allow_negative=True) == negative
