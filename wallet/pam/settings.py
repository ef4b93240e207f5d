"""Configuration of the reference operator wallet server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wallet.signing import DEFAULT_MAX_SKEW_S

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True, slots=True)
class PamSettings:
    """Where the wallet keeps its money and which keys may sign requests to it."""

    database_url: str
    # Every key id listed here is accepted, so the caller can rotate to a new key without downtime.
    secrets: Mapping[str, bytes]
    max_body_bytes: int = 65536
    max_skew_s: int = DEFAULT_MAX_SKEW_S
