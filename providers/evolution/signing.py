"""Evolution's authentication: a static API token in the query string, `?authToken=...`."""

from __future__ import annotations

import hmac

from providers.base import ProviderConfig

QUERY_PARAMETER = "authToken"


class TokenError(Exception):
    """The authToken is missing, repeated or not one we accept."""


class TokenChecker:
    """Accepts `options.auth_token`, or else any configured secret (several let a token rotate)."""

    def __init__(self, config: ProviderConfig) -> None:
        option = config.options.get("auth_token")
        if option is not None:
            if not isinstance(option, str) or not option:
                raise ValueError("evolution: options.auth_token must be a non-empty string")
            self.tokens: tuple[bytes, ...] = (option.encode(),)
        else:
            self.tokens = tuple(secret for secret in config.secrets.values() if secret)
        if not self.tokens:
            raise ValueError("evolution needs options.auth_token or a secret as its authToken")

    @property
    def token(self) -> str:
        """Return the token Evolution sends (the first one), for the simulator."""
        return self.tokens[0].decode()

    def check(self, given: list[str]) -> None:
        """Raise TokenError unless exactly one authToken was sent and it is accepted."""
        if len(given) != 1:
            raise TokenError(f"expected one {QUERY_PARAMETER}, got {len(given)}")
        sent = given[0].encode()
        # Every candidate is compared, so the time taken does not tell which one nearly matched.
        matched = False
        for token in self.tokens:
            matched |= hmac.compare_digest(sent, token)
        if not matched:
            raise TokenError(f"{QUERY_PARAMETER} is not accepted")
