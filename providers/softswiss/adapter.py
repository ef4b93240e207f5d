"""The SoftSwiss-style protocol: batched bet and win actions per call, HMAC of the body."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlencode

from aiohttp import web

from providers import wire
from providers.base import Adapter, Batch, LaunchRequest, ProviderConfig, Route, json_response
from providers.identity import split_user_id, user_id
from providers.softswiss import errors, schemas, signing
from wallet import campaigns
from wallet.errors import InvalidRequestError, Reason, RejectedError, WalletError
from wallet.operations import CreditKind, Kind, Operation, Result, SessionState
from wallet.policy import Capabilities

if TYPE_CHECKING:
    from providers.context import ProviderContext
    from providers.simulator import ProviderSimulator

log = logging.getLogger(__name__)

DEFAULT_LAUNCH_BASE_URL = "https://games.example.invalid/softswiss"
_ACTION_KINDS = {"bet": Kind.DEBIT, "win": Kind.CREDIT, "rollback": Kind.ROLLBACK}
# The kinds whose result is reported as one entry of `transactions`.
_REPORTED = frozenset(_ACTION_KINDS.values())


@dataclass(frozen=True, slots=True)
class SoftswissBatch(Batch):
    """A call's operations in order, with the round it names (echoed as `game_id`)."""

    game_id: str | None = None


class SoftswissAdapter(Adapter):
    """Parses each call into a Batch: its actions in order, then the end of the round if finished."""

    name = "softswiss"
    # Free-spins wins arrive as plain `win` actions in rounds with no bet; a rollback refunds a
    # bet (never a win) and only while its round has paid nothing; action ids are per provider.
    capabilities = Capabilities(
        wins_without_bets=True,
        rollback_after_win=False,
        rollback_of_credit=False,
        ids_scoped_by_player=False,
        free_rounds=True,
    )
    routes: ClassVar = [
        Route("POST", "/play", "play"),
        Route("POST", "/rollback", "rollback"),
        Route("POST", "/freespins", "freespins"),
    ]
    error_codes = errors.ERROR_CODES

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        if not config.secrets:
            raise ValueError("softswiss needs its auth token in the provider's secrets")
        # False for a studio that pays each free spin as a /play win: the report is then only a total.
        self.freespins_credits = bool(config.options.get("freespins_credits", True))

    def launch_url(self, launch: LaunchRequest) -> str:
        """Return the studio's game URL: real play with the session, or demo play without one."""
        base = str(self.config.options.get("launch_base_url", DEFAULT_LAUNCH_BASE_URL)).rstrip("/")
        query: dict[str, str | None] = {
            "casino_id": self.config.options.get("casino_id"),
            "locale": launch.language,
            "client_type": "mobile" if launch.device == "mobile" else "desktop",
            "return_url": launch.lobby_url,
            "deposit_url": launch.cashier_url,
            "country": launch.country,
            "jurisdiction": launch.jurisdiction,
        }
        if launch.real:
            query |= {"session_id": launch.token, "user_id": launch.user_id, "currency": launch.currency}
        mode = "play" if launch.real else "demo"
        kept = {k: v for k, v in query.items() if v is not None}
        return f"{base}/{mode}/{quote(launch.game_id, safe='')}?{urlencode(kept)}"

    @classmethod
    def sample_config(cls) -> ProviderConfig:
        """Return a configuration for tests, the demo and the conformance kit."""
        return ProviderConfig(
            cls.name,
            {"kit-1": b"conformance kit secret"},
            {
                "launch_base_url": DEFAULT_LAUNCH_BASE_URL,
                "casino_id": "croupier-kit",
                "games": [{"id": "softswiss:demo-slot", "name": "Demo Slot"}],
            },
        )

    @classmethod
    def simulator(cls) -> type[ProviderSimulator]:
        """Return the protocol's simulator."""
        from providers.softswiss.simulator import SoftswissSimulator  # noqa: PLC0415 -- cycle

        return SoftswissSimulator

    def authenticate(self, request: web.Request, body: bytes) -> None:
        """Check X-REQUEST-SIGN against the raw body."""
        signing.verify(self.config.secrets, request.headers.get(signing.SIGN_HEADER), body)

    async def parse(self, route: Route, request: web.Request, body: bytes, ctx: ProviderContext) -> Batch:
        """Read a call into the operations it asks for, in the order they must be applied."""
        data = wire.decode(body)
        if route.operation == "freespins":
            return await self._freespins(schemas.freespins(data), ctx)
        call = schemas.call(data, rollback=route.operation == "rollback")
        operator, player_id = split_user_id(call.user_id)
        currency = ctx.currency(call.currency).code
        session_state = await self._session(call, operator, player_id, ctx)
        common: dict[str, Any] = {
            "provider": self.name,
            "operator": operator,
            "player_id": player_id,
            "currency": currency,
            "session": session_state,
            "scope_by_player": self.capabilities.ids_scoped_by_player,
        }
        if not call.actions and not call.finished:
            return SoftswissBatch((Operation(Kind.BALANCE, **common),), call.game_id)
        ops = [
            Operation(
                kind=_ACTION_KINDS[action.action],
                external_id=action.action_id,
                amount_minor=action.amount_minor,
                round_id=call.game_id,
                game_id=call.game,
                credit_kind=CreditKind.WIN,
                reference_id=action.original_action_id,
                **common,
            )
            for action in call.actions
        ]
        if call.finished:
            # The round's own id keys its end, so a repeated `finished: true` replays.
            ops.append(
                Operation(
                    Kind.END_ROUND,
                    external_id=call.game_id or "",
                    round_id=call.game_id,
                    game_id=call.game,
                    **common,
                )
            )
        return SoftswissBatch(tuple(ops), call.game_id)

    async def _freespins(self, report: schemas.FreespinsReport, ctx: ProviderContext) -> SoftswissBatch:
        """Pay a free-spins issue's total win as one free-round credit of the campaign it names."""
        player = await _issue_player(self.name, report, ctx) if self.freespins_credits else None
        if player is None:
            # Paid spin by spin already, or no user_id and not an issue of exactly one player.
            log.warning(
                "softswiss free-spins issue %s %s (total %d): nothing paid",
                report.issue_id,
                report.status,
                report.total_amount_minor,
            )
            return SoftswissBatch(())
        operator, player_id, currency = player
        # One campaign id may be the issue of several players: the key names both, each paid once
        # (the issue id is escaped, so no two pairs spell the same key).
        key = f"freespins:{quote(report.issue_id, safe='')}/{user_id(operator, player_id)}"
        credit = Operation(
            Kind.CREDIT,
            self.name,
            operator,
            player_id,
            currency,
            external_id=key,
            amount_minor=report.total_amount_minor,
            round_id=key,
            credit_kind=CreditKind.FREEROUND,
            scope_by_player=self.capabilities.ids_scoped_by_player,
            campaign_id=report.issue_id,
        )
        return SoftswissBatch((credit,))

    @staticmethod
    async def _session(
        call: schemas.Call, operator: str, player_id: str, ctx: ProviderContext
    ) -> SessionState:
        session, state = await ctx.session(call.session_id)
        if session is not None and (session.operator, session.player_id) != (operator, player_id):
            raise InvalidRequestError("the session belongs to another player")
        if session is not None and session.currency != call.currency:
            # The currency is locked to the session at launch.
            raise RejectedError(Reason.CURRENCY_MISMATCH, f"the session plays in {session.currency}")
        return state

    def render_batch(
        self, route: Route, batch: Batch, outcomes: Sequence[Result | WalletError], ctx: ProviderContext
    ) -> web.StreamResponse:
        """Answer a call: every action applied, or the first refusal with what was applied before it."""
        game_id = batch.game_id if isinstance(batch, SoftswissBatch) else None
        transactions: list[dict[str, str]] = []
        balance: int | None = None
        for op, outcome in zip(batch.operations, outcomes, strict=False):
            if isinstance(outcome, WalletError):
                return _error(outcome, op, balance, transactions)
            if outcome.balance_minor is not None:
                balance = outcome.balance_minor
            if op.kind in _REPORTED:
                transactions.append(_transaction(op, outcome))
        if not batch.operations:
            return json_response({})
        return json_response({"balance": balance, "game_id": game_id, "transactions": transactions})

    def render(self, route: Route, op: Operation, result: Result, ctx: ProviderContext) -> web.StreamResponse:
        """Answer one operation as a batch of one (parse always returns a batch)."""
        return self.render_batch(route, SoftswissBatch((op,), op.round_id), [result], ctx)

    def render_error(
        self, route: Route, error: WalletError, op: Operation | None, ctx: ProviderContext
    ) -> web.StreamResponse:
        """Answer a call that failed before (or outside) its batch: signature, parsing, storage."""
        return _error(error, op, None, [])


async def _issue_player(
    provider: str, report: schemas.FreespinsReport, ctx: ProviderContext
) -> tuple[str, str, str] | None:
    """Return (operator, player, currency) of a report: its user_id, else the issue's only player."""
    if report.user_id is not None:
        operator, player_id = split_user_id(report.user_id)
        return operator, player_id, ctx.currency(report.currency).code
    async with ctx.pool.acquire() as conn:
        return await campaigns.sole_player(conn, provider, report.issue_id)


def processed_at(result: Result) -> str:
    """Return when the operation was first taken, in ISO 8601 UTC; a replay gives the same moment."""
    # Only a balance answer has no stored moment, and it is never reported per action.
    moment = result.processed_at or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _transaction(op: Operation, result: Result) -> dict[str, str]:
    return {
        "action_id": op.external_id,
        "tx_id": str(result.transaction_id),
        "processed_at": processed_at(result),
    }


def _error(
    error: WalletError, op: Operation | None, balance: int | None, applied: list[dict[str, str]]
) -> web.StreamResponse:
    answer = errors.native(error)
    payload: dict[str, object] = {"code": answer.code, "message": f"{answer.message}: {error}"}
    if isinstance(error, RejectedError) and error.balance_minor is not None:
        balance = error.balance_minor
    if balance is not None:
        payload["balance"] = balance
    if op is not None and op.kind in _REPORTED:
        payload["action_id"] = op.external_id
    if applied:
        # The actions before the refused one stay applied; the provider learns their ids here.
        payload["transactions"] = applied
    return json_response(payload, status=answer.http_status)
