"""The one plug-in interface every provider adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from aiohttp import web

from wallet.errors import Reason
from wallet.policy import Capabilities

if TYPE_CHECKING:
    from providers.context import ProviderContext
    from wallet.errors import WalletError
    from wallet.operations import Operation, Result

CALLBACK_BODY_LIMIT = 64 * 1024


def json_response(payload: object, status: int = 200) -> web.Response:
    """Answer JSON encoded with orjson, as everything else on the hot path is."""
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint of a provider's protocol and the canonical operation it serves."""

    method: str
    path: str
    operation: str


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """A provider's settings from the configuration file: secrets and free-form options."""

    name: str
    secrets: Mapping[str, bytes] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)


class Adapter(ABC):
    """Speaks one provider's native protocol: verify, parse into canonical operations, answer."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    routes: ClassVar[Sequence[Route]]
    # Every refusal reason must have a native answer; validated when the plug-in loads.
    error_codes: ClassVar[Mapping[Reason, Any]]
    max_body_bytes: ClassVar[int] = CALLBACK_BODY_LIMIT

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @abstractmethod
    def authenticate(self, request: web.Request, body: bytes) -> None:
        """Raise AuthenticationError unless the request is really from the provider."""

    @abstractmethod
    async def parse(self, route: Route, request: web.Request, body: bytes, ctx: ProviderContext) -> Operation:
        """Turn a verified request into one canonical operation; raise InvalidRequestError."""

    @abstractmethod
    def render(self, route: Route, op: Operation, result: Result, ctx: ProviderContext) -> web.StreamResponse:
        """Answer a successful operation in the native format."""

    @abstractmethod
    def render_error(
        self, route: Route, error: WalletError, op: Operation | None, ctx: ProviderContext
    ) -> web.StreamResponse:
        """Answer a failed operation with the native error code."""

    @classmethod
    def validate(cls) -> None:
        """Raise TypeError if the adapter class is incomplete; called when the plug-in loads."""
        if not getattr(cls, "name", None) or not cls.name.isidentifier():
            raise TypeError(f"{cls.__qualname__}: name must be a non-empty identifier")
        if not isinstance(cls.capabilities, Capabilities):
            raise TypeError(f"{cls.name}: capabilities must be a Capabilities")
        routes = getattr(cls, "routes", ())
        if not routes or not all(isinstance(r, Route) and r.path.startswith("/") for r in routes):
            raise TypeError(f"{cls.name}: routes must be a non-empty list of Route with absolute paths")
        missing = set(Reason) - set(getattr(cls, "error_codes", {}))
        if missing:
            raise TypeError(f"{cls.name}: no native code for {sorted(m.value for m in missing)}")
