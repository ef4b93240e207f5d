"""Croupier's own games as a provider: a player API whose one call plays a whole round."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode

import asyncpg
import orjson
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from providers import wire
from providers.base import Adapter, Batch, LaunchRequest, ProviderConfig, Route, json_response
from providers.house import errors, schemas, store, views
from providers.house.games import GameBook
from providers.house.play import PROVIDER, live_session, open_round
from providers.house.store import StoredRound
from wallet.errors import MismatchError, RejectedError, WalletError
from wallet.money import format_major
from wallet.operations import CreditKind, Kind, Operation, Result, SessionState
from wallet.policy import Capabilities

if TYPE_CHECKING:
    from providers.context import ProviderContext
    from providers.simulator import ProviderSimulator
    from wallet.stuck import StuckRound

log = logging.getLogger(__name__)

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True, slots=True)
class RoundBatch(Batch):
    """A round's bet, win and end, with the stored round they settle."""

    round: StoredRound | None = None


def round_operations(stored: StoredRound, state: SessionState) -> tuple[Operation, Operation, Operation]:
    """Return a stored round's bet, win and end, under the ids every retry of the round uses."""
    rid = str(stored.round_id)
    common: dict[str, Any] = {
        "provider": PROVIDER,
        "operator": stored.operator,
        "player_id": stored.player_id,
        "currency": stored.currency,
        "round_id": rid,
        "game_id": f"{PROVIDER}:{stored.game}",
        "session": state,
    }
    return (
        Operation(Kind.DEBIT, external_id=f"{rid}:bet", amount_minor=stored.bet_minor, **common),
        # A zero win is sent too: the operator sees every round close with its result.
        Operation(
            Kind.CREDIT,
            external_id=f"{rid}:win",
            amount_minor=stored.win_minor,
            credit_kind=CreditKind.WIN,
            **common,
        ),
        Operation(Kind.END_ROUND, external_id=rid, **common),
    )


class NotedResponse(web.Response):
    """A JSON answer that records the round's fate in our table before its first byte is sent."""

    def __init__(self, note: Callable[[], Awaitable[None]], payload: object, status: int) -> None:
        super().__init__(body=orjson.dumps(payload), status=status, content_type="application/json")
        self._note = note

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        """Write the note, then send; render_batch is synchronous, so this is where I/O can happen."""
        if not self.prepared:
            try:
                await self._note()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                # Only the status and balances are lost; a retry of the round writes them again.
                log.warning("house: could not record the round's fate: %r", exc)
        return await super().prepare(request)


class HouseAdapter(Adapter):
    """The in-house games: POST /rounds plays a round (bet, win, end) and POST /balance reads money."""

    name = "house"
    # A round's bet, win and end travel together; nothing is rolled back and ids are our UUIDs.
    capabilities = Capabilities()
    routes: ClassVar = [Route("POST", "/rounds", "round"), Route("POST", "/balance", "balance")]
    error_codes = errors.ERROR_CODES
    migrations = "providers.house"
    # One call plays a whole round; a round open this long lost its node between bet and win.
    stuck_round_after_s = 900.0

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        # Built at start, so a broken game configuration fails then, not on the first bet.
        self.book = GameBook()

    @classmethod
    def sample_config(cls) -> ProviderConfig:
        """Return a configuration for tests, the demo and the conformance kit (no secrets: tokens)."""
        return ProviderConfig(
            cls.name,
            {},
            {
                "public_url": DEFAULT_PUBLIC_URL,
                "games": [
                    {"id": "house:slot", "name": "Croupier Slot"},
                    {"id": "house:roulette", "name": "Croupier European Roulette", "type": "table"},
                    {"id": "house:dice", "name": "Croupier Dice", "type": "table"},
                ],
            },
        )

    @classmethod
    def simulator(cls) -> type[ProviderSimulator]:
        """Return the house API's simulator."""
        from providers.house.simulator import HouseSimulator  # noqa: PLC0415 -- cycle

        return HouseSimulator

    def launch_url(self, launch: LaunchRequest) -> str:
        """Return the slot's player page with the session token; the table games have no page yet."""
        if launch.game_id not in ("house:slot", "slot"):
            raise ValueError(
                f"{launch.game_id} has no player page; play it through POST /providers/house/rounds"
            )
        base = str(self.config.options.get("public_url", DEFAULT_PUBLIC_URL)).rstrip("/")
        query = {"token": launch.token, "lang": launch.language, "lobby": launch.lobby_url}
        kept = {k: v for k, v in query.items() if v is not None}
        return f"{base}/providers/{self.name}/slot?{urlencode(kept)}"

    def extra_routes(self) -> list[web.RouteDef]:
        """Return the page, recall, verification and seed routes (they move no money)."""
        return views.routes(self)

    def authenticate(self, request: web.Request, body: bytes) -> None:
        """Require a session token in the body; whether it is live is decided in parse."""
        schemas.token(wire.decode(body))

    async def parse(
        self, route: Route, request: web.Request, body: bytes, ctx: ProviderContext
    ) -> Operation | Batch:
        """Read a balance request, or open the round (drawn and stored first) and return its batch."""
        data = wire.decode(body)
        if route.operation == "balance":
            session, state = await ctx.session(schemas.token(data))
            player = live_session(session)
            return Operation(
                Kind.BALANCE, self.name, player.operator, player.player_id, player.currency, session=state
            )
        req = schemas.RoundRequest.from_json(data)
        stored, state = await open_round(ctx.pool, self.book, ctx, req)
        return RoundBatch(round_operations(stored, state), stored)

    async def settle_stuck(self, stuck: StuckRound, ctx: ProviderContext) -> Sequence[Operation]:
        """Pay a stuck round's stored outcome and end it, as the player's own retry of the round would."""
        try:
            round_id = uuid.UUID(stuck.round_id)
        except ValueError:
            return ()
        async with ctx.pool.acquire() as conn:
            stored = await store.find_round(conn, round_id)
        if stored is None or not stuck.bets:
            return ()  # no drawn outcome, or no bet taken: nothing the game owes
        _, win, end = round_operations(stored, SessionState.NOT_GIVEN)
        return (win, end)

    def render(self, route: Route, op: Operation, result: Result, ctx: ProviderContext) -> web.StreamResponse:
        """Answer a balance."""
        return json_response({"status": "OK", **money(result.balance_minor, op.currency, ctx)})

    def render_error(
        self, route: Route, error: WalletError, op: Operation | None, ctx: ProviderContext
    ) -> web.StreamResponse:
        """Answer a request refused before (or outside) a round's batch."""
        native = errors.native(error)
        return json_response(error_payload(error, op.currency if op else None, ctx), native.http_status)

    def render_batch(
        self, route: Route, batch: Batch, outcomes: Sequence[Result | WalletError], ctx: ProviderContext
    ) -> web.StreamResponse:
        """Answer a round: the outcome only if the bet was accepted, never for a refused bet."""
        assert isinstance(batch, RoundBatch)
        assert batch.round is not None
        stored = batch.round
        note = functools.partial(_note, ctx.pool, stored, tuple(outcomes))
        debit = outcomes[0]
        if isinstance(debit, WalletError):
            status = errors.native(debit).http_status
            return NotedResponse(note, error_payload(debit, stored.currency, ctx), status)
        results = [o for o in outcomes if isinstance(o, Result)]
        balance = next((r.balance_minor for r in reversed(results) if r.balance_minor is not None), None)
        answer = round_payload(stored, debit.replay, ctx) | money(balance, stored.currency, ctx)
        last = outcomes[-1]
        if isinstance(last, WalletError):
            # The bet stands and so does its outcome; the win or the end is owed: retry the same round.
            payload = error_payload(last, stored.currency, ctx) | {"round": answer}
            return NotedResponse(note, payload, errors.native(last).http_status)
        return NotedResponse(note, {"status": "OK", **answer}, 200)


def money(balance_minor: int | None, currency: str, ctx: ProviderContext) -> dict[str, Any]:
    """Return a balance in minor units and as a decimal string for display."""
    known = ctx.currency(currency)
    shown = None if balance_minor is None else format_major(balance_minor, known)
    return {
        "balance_minor": balance_minor,
        "balance": shown,
        "currency": currency,
        "exponent": known.exponent,
    }


def round_payload(stored: StoredRound, replay: bool, ctx: ProviderContext) -> dict[str, Any]:
    """Return what the player sees of an accepted round."""
    payload: dict[str, Any] = {
        "round_id": str(stored.round_id),
        "game": stored.game,
        "mode": stored.mode,
        "bet_minor": stored.bet_minor,
        "win_minor": stored.win_minor,
        "win": format_major(stored.win_minor, ctx.currency(stored.currency)),
        "outcome": stored.state,
        "replay": replay,
    }
    if stored.mode == "fair":
        payload["fair"] = {
            "commitment": stored.commitment,
            "client_seed": stored.client_seed,
            "nonce": stored.nonce,
        }
    return payload


def error_payload(error: WalletError, currency: str | None, ctx: ProviderContext) -> dict[str, Any]:
    """Return an error answer: code, message, whether to retry the same request, and the balance."""
    native = errors.native(error)
    payload: dict[str, Any] = {
        "status": "ERROR",
        "code": native.code,
        "message": str(error),
        "retryable": native.retryable,
    }
    if isinstance(error, MismatchError):
        payload["field"] = error.field
    if isinstance(error, RejectedError) and error.balance_minor is not None and currency is not None:
        payload |= money(error.balance_minor, currency, ctx)
    return payload


async def _note(pool: asyncpg.Pool, stored: StoredRound, outcomes: Sequence[Result | WalletError]) -> None:
    """Record the round's fate: refused, or accepted with the balances of the first application."""
    debit = outcomes[0]
    if isinstance(debit, RejectedError):
        await store.mark_refused(pool, stored.round_id, debit.reason.value)
        return
    if not isinstance(debit, Result):
        return  # not decided yet (retry, mismatch): nothing to record
    credit = outcomes[1] if len(outcomes) > 1 else None
    before = None if debit.replay or debit.balance_minor is None else debit.balance_minor + stored.bet_minor
    after = None
    if isinstance(credit, Result) and not credit.replay:
        after = credit.balance_minor
    settled = len(outcomes) == len(("bet", "win", "end")) and all(isinstance(o, Result) for o in outcomes)
    await store.mark_played(
        pool, stored.round_id, settled=settled, balance_before_minor=before, balance_after_minor=after
    )
