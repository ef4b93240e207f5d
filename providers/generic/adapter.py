"""Croupier's own generic JSON protocol: small, HMAC-signed, and complete end to end."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode

from aiohttp import web

from providers import wire
from providers.base import Adapter, LaunchRequest, ProviderConfig, Route, json_response
from providers.generic import errors, schemas
from wallet.errors import (
    AuthenticationError,
    BodyTooLargeError,
    InProgressError,
    InvalidRequestError,
    MismatchError,
    Reason,
    RejectedError,
    TransactionNotFoundError,
    UnavailableError,
    WalletError,
)
from wallet.money import format_major
from wallet.operations import CreditKind, Kind, Operation, Result
from wallet.policy import Capabilities
from wallet.signing import SignatureError, Verifier

if TYPE_CHECKING:
    from providers.context import ProviderContext
    from providers.simulator import ProviderSimulator
    from wallet.stuck import StuckRound

# Operations the gateway itself sends to settle a stuck round carry ids no provider uses.
STUCK_PREFIX = "croupier-stuck:"

_KINDS = {
    "balance": Kind.BALANCE,
    "debit": Kind.DEBIT,
    "credit": Kind.CREDIT,
    "rollback": Kind.ROLLBACK,
    "end_round": Kind.END_ROUND,
}


class GenericAdapter(Adapter):
    """The generic protocol: one JSON POST per canonical operation, amounts as decimals."""

    name = "generic"
    capabilities = Capabilities(free_rounds=True)
    routes: ClassVar = [Route("POST", f"/{path}", path) for path in _KINDS]
    error_codes = errors.ERROR_CODES

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.verifier = Verifier(config.secrets)

    def launch_url(self, launch: LaunchRequest) -> str:
        """Return the studio's game URL with the session in its query string."""
        base = str(self.config.options.get("launch_base_url", "https://games.example.invalid/generic"))
        query = {
            "game": launch.game_id,
            "token": launch.token,
            "user": launch.user_id,
            "currency": launch.currency,
            "lang": launch.language,
            "mode": "real" if launch.real else "demo",
            "device": launch.device,
            "jurisdiction": launch.jurisdiction,
            "country": launch.country,
            "lobby": launch.lobby_url,
            "cashier": launch.cashier_url,
            "rtp": launch.rtp_variant,
            "reality_check_s": launch.reality_check_s,
        }
        return f"{base}?{urlencode({k: v for k, v in query.items() if v is not None})}"

    async def settle_stuck(self, stuck: StuckRound, ctx: ProviderContext) -> Sequence[Operation]:
        """Refund each unsettled bet of a stuck round that paid no win, then end it (the protocol's rule)."""
        common: dict[str, Any] = {
            "provider": self.name,
            "operator": stuck.operator,
            "player_id": stuck.player_id,
            "currency": stuck.currency,
            "round_id": stuck.round_id,
            "game_id": stuck.game_id,
        }
        refunds = [
            # Under an id of the gateway's own: the provider's later rollback of the bet finds it
            # reversed (nothing moves), and its later win is refused as for a rolled-back bet.
            Operation(
                Kind.ROLLBACK,
                external_id=f"{STUCK_PREFIX}{bet.external_id}",
                amount_minor=bet.amount_minor,
                reference_id=bet.external_id,
                reference_kind=Kind.DEBIT,
                scope_by_player=bet.scope_by_player,
                **common,
            )
            for bet in (stuck.bets if stuck.wins_count == 0 else ())
        ]
        # The end of round under its default id, the round's own: the provider's own is then a replay.
        return [*refunds, Operation(Kind.END_ROUND, external_id=stuck.round_id, **common)]

    @classmethod
    def simulator(cls) -> type[ProviderSimulator]:
        """Return the generic protocol's simulator."""
        from providers.generic.simulator import GenericSimulator  # noqa: PLC0415 -- cycle

        return GenericSimulator

    @classmethod
    def sample_config(cls) -> ProviderConfig:
        """Return a configuration for tests, the demo and the conformance kit, with one game."""
        return ProviderConfig(
            cls.name,
            {"kit-1": b"conformance kit secret"},
            {"games": [{"id": "generic-slot", "name": "Generic Slot"}]},
        )

    def authenticate(self, request: web.Request, body: bytes) -> None:
        """Check the HMAC signature, key id and timestamp."""
        try:
            self.verifier.verify(request.headers, request.method, request.path_qs, body)
        except SignatureError as exc:
            raise AuthenticationError(str(exc)) from None

    async def parse(self, route: Route, request: web.Request, body: bytes, ctx: ProviderContext) -> Operation:
        """Read one operation from the JSON body."""
        data = wire.decode(body)
        common = schemas.Request.from_json(data)
        currency = ctx.currency(common.currency)
        kind = _KINDS[route.operation]
        session, session_state = await ctx.session(common.session_token)
        if session is not None and (session.operator, session.player_id) != (
            common.operator,
            common.player_id,
        ):
            raise InvalidRequestError("the session belongs to another player")
        if session is not None and session.currency != common.currency:
            # The currency is locked to the session at launch.
            raise RejectedError(Reason.CURRENCY_MISMATCH, f"the session plays in {session.currency}")
        if kind is Kind.BALANCE:
            return Operation(
                kind,
                self.name,
                common.operator,
                common.player_id,
                currency.code,
                session=session_state,
            )
        if kind is Kind.DEBIT and common.session_token is None:
            raise InvalidRequestError("session_token is required for a debit")
        amount_minor = None
        if kind in (Kind.DEBIT, Kind.CREDIT) or "amount" in data:
            amount_minor = ctx.amount(schemas.amount(data), currency)
        credit_kind = CreditKind.WIN
        if kind is Kind.CREDIT and data.get("credit_kind") is not None:
            try:
                credit_kind = CreditKind(wire.text(data, "credit_kind") or "")
            except ValueError:
                raise InvalidRequestError(
                    "credit_kind is not one of win, bonus, jackpot, promo, freeround"
                ) from None
        round_id = wire.text(data, "round_id", required=kind is not Kind.ROLLBACK)
        return Operation(
            kind=kind,
            provider=self.name,
            operator=common.operator,
            player_id=common.player_id,
            currency=currency.code,
            external_id=wire.text(data, "transaction_id", required=kind is not Kind.END_ROUND)
            or round_id
            or "",
            amount_minor=amount_minor,
            round_id=round_id,
            game_id=wire.text(data, "game_id", required=False),
            credit_kind=credit_kind,
            reference_id=wire.text(data, "reference_transaction_id", required=kind is Kind.ROLLBACK),
            session=session_state,
            campaign_id=schemas.campaign_id(data) if kind is Kind.CREDIT else None,
        )

    def render(self, route: Route, op: Operation, result: Result, ctx: ProviderContext) -> web.StreamResponse:
        """Answer OK with the balance as a decimal string."""
        currency = ctx.currency(op.currency)
        balance = None if result.balance_minor is None else format_major(result.balance_minor, currency)
        return json_response(
            {
                "status": "OK",
                "balance": balance,
                "currency": op.currency,
                "transaction_id": str(result.transaction_id),
                "replay": result.replay,
                "queued": result.queued,
                "tombstone": result.tombstone,
            }
        )

    def render_error(
        self, route: Route, error: WalletError, op: Operation | None, ctx: ProviderContext
    ) -> web.StreamResponse:
        """Answer with the native code for the core's error."""
        native = _native(error)
        payload: dict[str, object] = {
            "status": "ERROR",
            "code": native.code,
            "message": str(error),
            "retryable": native.retryable,
        }
        if isinstance(error, RejectedError):
            payload["replay"] = error.replay
        if isinstance(error, RejectedError) and error.balance_minor is not None and op is not None:
            payload["balance"] = format_major(error.balance_minor, ctx.currency(op.currency))
        if isinstance(error, MismatchError):
            payload["field"] = error.field
        return json_response(payload, status=native.http_status)


def _native(error: WalletError) -> errors.NativeError:
    if isinstance(error, RejectedError):
        return errors.ERROR_CODES[error.reason]
    table: list[tuple[type[WalletError], errors.NativeError]] = [
        (BodyTooLargeError, errors.TOO_LARGE),
        (AuthenticationError, errors.INVALID_SIGNATURE),
        (MismatchError, errors.MISMATCH),
        (InProgressError, errors.IN_PROGRESS),
        (UnavailableError, errors.UNAVAILABLE),
        (TransactionNotFoundError, errors.NOT_FOUND),
    ]
    for cls, native in table:
        if isinstance(error, cls):
            return native
    return errors.INVALID_REQUEST
