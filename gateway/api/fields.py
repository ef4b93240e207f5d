"""Strict readers of Operator API bodies and query strings: a wrong field is a 400 naming it."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway import keys
from gateway.api.problems import ApiError, Code
from providers import wire
from wallet.errors import InvalidRequestError

MAX_ID = 128
MAX_MINOR = 2**63 - 1
_CURRENCY = re.compile(r"[A-Z][A-Z0-9]{2,9}")


@contextmanager
def _as_invalid() -> Iterator[None]:
    """Answer the providers' shared wire readers' refusals as the API's 400."""
    try:
        yield
    except InvalidRequestError as exc:
        raise invalid(str(exc)) from None


def invalid(detail: str) -> ApiError:
    """Return the error for a malformed request."""
    return ApiError(400, Code.INVALID_REQUEST, detail)


async def json_body(request: web.Request) -> dict[str, Any]:
    """Return the request's JSON object body, or raise 415/400."""
    if request.content_type != "application/json":
        raise ApiError(415, Code.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
    body = await request.read()
    with _as_invalid():
        return wire.decode(body)


def only(data: Mapping[str, Any], allowed: Collection[str]) -> None:
    """Refuse fields the endpoint does not know, so a typo is never silently ignored."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise invalid(f"unknown fields: {', '.join(unknown)}")


def text(
    data: Mapping[str, Any], name: str, *, required: bool = True, max_length: int = MAX_ID
) -> str | None:
    """Return a string field of 1 to `max_length` characters."""
    with _as_invalid():
        return wire.text(data, name, required=required, max_length=max_length)


def required_text(data: Mapping[str, Any], name: str, max_length: int = MAX_ID) -> str:
    """Return a string field that must be there."""
    with _as_invalid():
        return wire.required_text(data, name, max_length)


def currency(request: web.Request, value: object, name: str = "currency") -> str:
    """Return a currency code the gateway knows (ISO 4217 or configured crypto), or raise 400."""
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise invalid(f"{name} must be a currency code such as EUR")
    if value not in request.config_dict[keys.PROVIDER_CONTEXT].currencies:
        raise invalid(f"{name} {value} is not one the gateway knows")
    return value


def integer(
    data: Mapping[str, Any], name: str, *, required: bool = True, minimum: int = 0, maximum: int = MAX_MINOR
) -> int | None:
    """Return an integer field in a range; a float, a string or a bool is refused."""
    value = data.get(name)
    if value is None:
        if required:
            raise invalid(f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise invalid(f"{name} must be an integer from {minimum} to {maximum}")
    return value


def query_limit(raw: str | None, default: int, maximum: int) -> int:
    """Return a page size from the query string: plain ASCII digits from 1 to `maximum`."""
    if raw is None:
        return default
    # Only plain ASCII digits: int() would also take signs, spaces, underscores and other scripts.
    value = int(raw) if raw.isascii() and raw.isdigit() else None
    limit = integer({"limit": value}, "limit", minimum=1, maximum=maximum)
    assert limit is not None
    return limit


def boolean(data: Mapping[str, Any], name: str, *, default: bool | None = None) -> bool:
    """Return a boolean field, or the default when it is absent."""
    value = data.get(name)
    if value is None and default is not None:
        return default
    if not isinstance(value, bool):
        raise invalid(f"{name} must be true or false")
    return value


def choice(
    data: Mapping[str, Any], name: str, options: Collection[str], default: str | None = None
) -> str | None:
    """Return a field that must be one of a few strings."""
    value = data.get(name, default)
    if value is None:
        return None
    if value not in options:
        raise invalid(f"{name} must be one of {', '.join(sorted(options))}")
    return str(value)


def timestamp(value: object, name: str) -> datetime:
    """Parse an RFC 3339 date-time with an offset."""
    if not isinstance(value, str):
        raise invalid(f"{name} must be an RFC 3339 date-time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(f"{name} must be an RFC 3339 date-time") from None
    if parsed.tzinfo is None:
        raise invalid(f"{name} must carry a time zone offset")
    return parsed.astimezone(UTC)


def query_bool(request: web.Request, name: str) -> bool | None:
    """Return a boolean query parameter, or None when absent."""
    value = request.query.get(name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise invalid(f"{name} must be true or false")
    return value == "true"


def iso(moment: datetime | None) -> str | None:
    """Return a moment as RFC 3339 in UTC."""
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
