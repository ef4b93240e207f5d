"""Strict readers of JSON wire fields, shared by the JSON protocols' schemas."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from wallet.errors import InvalidRequestError

MAX_TEXT = 128
# Session tokens are signed JWTs, longer than ids.
MAX_TOKEN = 512
# No id, token or code has a control character; NUL is one that PostgreSQL text cannot even store.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def decode(body: bytes) -> dict[str, Any]:
    """Parse a JSON object body or raise InvalidRequestError."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("the body must be a JSON object")
    return data


def text(
    data: Mapping[str, Any], name: str, *, required: bool = True, max_length: int = MAX_TEXT
) -> str | None:
    """Return a string field of 1 to `max_length` characters; a number is not a string."""
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidRequestError(f"{name} is required")
        return None
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise InvalidRequestError(f"{name} must be a string of 1 to {max_length} characters")
    if _CONTROL.search(value):
        raise InvalidRequestError(f"{name} must not contain control characters")
    return value


def required_text(data: Mapping[str, Any], name: str, max_length: int = MAX_TEXT) -> str:
    """Return a string field that must be there."""
    value = text(data, name, max_length=max_length)
    assert value is not None
    return value
