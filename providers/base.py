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
    from providers.simulator import ProviderSimulator
    from wallet.errors import WalletError
    from wallet.operations import Operation, Result
    from wallet.stuck import StuckRound

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


@dataclass(frozen=True, slots=True)
class Game:
    """One game in a provider's catalogue."""

    provider: str
    game_id: str
    name: str
    type: str = "slots"
    rtp_variants: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("desktop", "mobile")
    # Jurisdictions the game is certified for; empty means every one.
    jurisdictions: tuple[str, ...] = ()
    demo: bool = True


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """What a provider needs to start a game for a player's session."""

    token: str
    user_id: str  # the player as the provider knows it (see providers.identity)
    game_id: str
    currency: str
    language: str = "en"
    country: str | None = None
    jurisdiction: str | None = None
    device: str = "desktop"
    real: bool = True
    lobby_url: str | None = None
    cashier_url: str | None = None
    # The operator's chosen RTP variant (one of the game's rtp_variants), None for the default.
    rtp_variant: str | None = None
    # How often the game shows the player a reality check, where the protocol carries it.
    reality_check_s: int | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Several operations from one provider call, applied in order, each exactly once by its own id.

    The gateway stops at the first error: nothing after a refused operation is applied, and a
    retry of the same call replays what was applied and carries on.
    """

    operations: tuple[Operation, ...]


class Adapter(ABC):
    """Speaks one provider's native protocol: verify, parse into canonical operations, answer."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    routes: ClassVar[Sequence[Route]]
    # Every refusal reason must have a native answer; validated when the plug-in loads.
    error_codes: ClassVar[Mapping[Reason, Any]]
    max_body_bytes: ClassVar[int] = CALLBACK_BODY_LIMIT
    # A package with a `migrations` folder, for adapters that keep state of their own (in-house
    # games); applied at start into the schema `provider_<name>`.
    migrations: ClassVar[str | None] = None
    # How long a round may stay open before it counts as stuck: by default the day a provider
    # keeps retrying what it owes; the provider's `stuck_round_after_s` option overrides it.
    stuck_round_after_s: ClassVar[float] = 86_400.0

    def stuck_horizon_s(self) -> float:
        """Return this provider's stuck-round horizon, in seconds, as configured."""
        return float(self.config.options.get("stuck_round_after_s", self.stuck_round_after_s))

    async def settle_stuck(self, stuck: StuckRound, ctx: ProviderContext) -> Sequence[Operation]:
        """Return the operations that settle a stuck round by the protocol's own rule; none to report it."""
        return ()

    def extra_routes(self) -> list[web.RouteDef]:
        """Return routes that move no money (pages, look-ups), mounted under /providers/<name>."""
        return []

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @abstractmethod
    def authenticate(self, request: web.Request, body: bytes) -> None:
        """Raise AuthenticationError unless the request is really from the provider."""

    @abstractmethod
    async def parse(
        self, route: Route, request: web.Request, body: bytes, ctx: ProviderContext
    ) -> Operation | Batch:
        """Turn a verified request into one operation (or a Batch); raise InvalidRequestError."""

    @abstractmethod
    def render(self, route: Route, op: Operation, result: Result, ctx: ProviderContext) -> web.StreamResponse:
        """Answer a successful operation in the native format."""

    @abstractmethod
    def render_error(
        self, route: Route, error: WalletError, op: Operation | None, ctx: ProviderContext
    ) -> web.StreamResponse:
        """Answer a failed operation with the native error code."""

    def catalogue(self) -> list[Game]:
        """Return the provider's games, from the `games` list in its configuration."""
        return [
            Game(
                provider=self.name,
                game_id=str(raw["id"]),
                name=str(raw.get("name", raw["id"])),
                type=str(raw.get("type", "slots")),
                rtp_variants=tuple(raw.get("rtp_variants", ())),
                devices=tuple(raw.get("devices", ("desktop", "mobile"))),
                jurisdictions=tuple(raw.get("jurisdictions", ())),
                demo=bool(raw.get("demo", True)),
            )
            for raw in self.config.options.get("games", [])
        ]

    @abstractmethod
    def launch_url(self, launch: LaunchRequest) -> str:
        """Return the URL that opens the game for this launch, in the provider's own format."""

    @classmethod
    @abstractmethod
    def simulator(cls) -> type[ProviderSimulator]:
        """Return the class that plays as this provider, for the demo, tests and conformance kit."""

    def render_batch(
        self, route: Route, batch: Batch, outcomes: Sequence[Result | WalletError], ctx: ProviderContext
    ) -> web.StreamResponse:
        """Answer a batch: one outcome per operation tried, in order, up to the first error."""
        raise NotImplementedError(f"{self.name} parsed a batch but does not render one")

    @classmethod
    def sample_config(cls) -> ProviderConfig:
        """Return a configuration for tests and the conformance kit (secrets, options)."""
        return ProviderConfig(cls.name, {"kit-1": b"conformance kit secret"}, {})

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
