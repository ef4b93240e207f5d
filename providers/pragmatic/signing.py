"""Pragmatic's authentication: the MD5 `hash` over the sorted parameters, and an address allowlist."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping

from wallet.errors import AuthenticationError

HASH = "hash"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def signed_text(params: Mapping[str, str]) -> bytes:
    """Return what the hash covers: every parameter but `hash`, sorted by name, `k=v` joined by `&`."""
    return "&".join(f"{name}={params[name]}" for name in sorted(params) if name != HASH).encode()


def digest(params: Mapping[str, str], secret: bytes) -> str:
    """Return the lower-case hex MD5 of the signed text followed by the shared secret."""
    # MD5 is what the protocol mandates; the flag only lets FIPS builds compute it at all.
    return hashlib.md5(signed_text(params) + secret, usedforsecurity=False).hexdigest()


def sign(params: Mapping[str, str], secret: bytes) -> dict[str, str]:
    """Return the parameters with their `hash` added."""
    return {**params, HASH: digest(params, secret)}


def verify(params: Mapping[str, str], secret: bytes) -> None:
    """Raise AuthenticationError unless the `hash` parameter matches the parameters and secret."""
    given = params.get(HASH)
    if not given:
        raise AuthenticationError("the hash parameter is missing")
    if not hmac.compare_digest(given.lower().encode(), digest(params, secret).encode()):
        raise AuthenticationError("the hash does not match the parameters")


def networks(entries: object) -> tuple[IPNetwork, ...]:
    """Parse the configured allowlist (addresses or CIDR networks); raise at start if malformed."""
    if entries is None:
        return ()
    if isinstance(entries, str) or not isinstance(entries, (list, tuple)):
        raise TypeError("pragmatic allowed_ips must be a list of addresses or CIDR networks")
    return tuple(ipaddress.ip_network(str(entry), strict=False) for entry in entries)


class Allowlist:
    """The addresses Pragmatic calls from; empty allows every address (development only)."""

    def __init__(self, allowed: tuple[IPNetwork, ...], *, trust_forwarded_for: bool = False) -> None:
        self.allowed = allowed
        self.trust_forwarded_for = trust_forwarded_for

    def check(self, remote: str | None, forwarded_for: str | None) -> None:
        """Raise AuthenticationError unless the caller's address is allowed."""
        if not self.allowed:
            return
        peer = remote
        if self.trust_forwarded_for and forwarded_for:
            # The right-most entry is the one our own proxy appended; the rest is the client's word.
            peer = forwarded_for.rsplit(",", 1)[-1].strip()
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            raise AuthenticationError(f"caller address {peer!r} is not an IP address") from None
        candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        if not any(candidate in network for candidate in candidates for network in self.allowed):
            raise AuthenticationError(f"caller address {address} is not allowed")
