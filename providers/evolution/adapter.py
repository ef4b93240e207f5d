"""Evolution's One Wallet: check, sid, balance, debit, credit, cancel and promo_payout callbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlencode

import orjson
from aiohttp import web

from providers import wire
from providers.base import Adapter, LaunchRequest, ProviderConfig, Route, json_response
from providers.evolution import errors, schemas
from providers.evolution.schemas import EvolutionOperation
from providers.evolution.signing import QUERY_PARAMETER, TokenChecker, TokenError
from wallet.errors import InvalidRequestError, RejectedError, WalletError
from wallet.money import Currency, format_major
from wallet.operations import CreditKind, Kind, Operation, Result, SessionState
from wallet.policy import Capabilities

if TYPE_CHECKING:
    from gateway.sessions import Session
    from providers.context import ProviderContext
    from providers.simulator import ProviderSimulator

DEFAULT_LAUNCH_BASE_URL = "https://evolution.example.invalid/entry"
_BET_KINDS = {"debit": Kind.DEBIT, "credit": Kind.CREDIT, "cancel": Kind.ROLLBACK}
_PATHS = ("check", "sid", "balance", "debit", "credit", "cancel", "promo_payout")


def _money(amount_minor: int, currency: Currency) -> orjson.Fragment:
    """Return an amount as a JSON number with exactly the currency's digits (10.50, never 10.5)."""
    return orjson.Fragment(format_major(amount_minor, currency).encode())


def _answer(
    status: str,
    uuid: str | None,
    *,
    balance_minor: int | None = None,
    currency: Currency | None = None,
    retransmission: bool = False,
    sid: str | None = None,
) -> web.Response:
    """Write Evolution's answer: {status, sid | balance, bonus, uuid, retransmission}."""
    payload: dict[str, Any] = {"status": status}
    if sid is not None:
        payload["sid"] = sid
    if balance_minor is not None and currency is not None:
        payload["balance"] = _money(balance_minor, currency)
        # Croupier keeps no separate bonus wallet.
        payload["bonus"] = _money(0, currency)
    if uuid is not None:
        payload["uuid"] = uuid
    if retransmission:
        payload["retransmission"] = True
    return json_response(payload)


class EvolutionAdapter(Adapter):
    """Evolution's One Wallet: settlement per bet (refId), ids reused across players at a table."""

    name = "evolution"
    # Players at one live table share transaction ids; a bet is settled once, by credit or cancel,
    # and with no end-of-round message that settlement ends the bet's round.
    capabilities = Capabilities(
        ids_scoped_by_player=True, free_rounds=True, rounds_end_when_bets_settled=True
    )
    routes: ClassVar = [Route("POST", f"/{path}", path) for path in _PATHS]
    error_codes = errors.ERROR_CODES

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.tokens = TokenChecker(config)

    @classmethod
    def sample_config(cls) -> ProviderConfig:
        """Return a configuration with an authToken, a casino key and a small catalogue."""
        return ProviderConfig(
            cls.name,
            {},
            {
                "auth_token": "kit-evolution-auth-token",
                "casino_key": "kitcasino",
                "launch_base_url": DEFAULT_LAUNCH_BASE_URL,
                "table_id": "vctlz20yfnmp1ylr",
                "games": [
                    {"id": "vctlz20yfnmp1ylr", "name": "Lightning Roulette", "type": "live", "demo": False},
                    {"id": "leqhceumaq6qfoug", "name": "Lightning Blackjack", "type": "live", "demo": False},
                ],
            },
        )

    @classmethod
    def simulator(cls) -> type[ProviderSimulator]:
        """Return the simulator that plays as Evolution."""
        from providers.evolution.simulator import EvolutionSimulator  # noqa: PLC0415 -- cycle

        return EvolutionSimulator

    def launch_url(self, launch: LaunchRequest) -> str:
        """Return the entry URL carrying what Evolution's user authentication needs (see the docs)."""
        options = self.config.options
        base = str(options.get("launch_base_url", DEFAULT_LAUNCH_BASE_URL))
        query = {
            "casino": options.get("casino_key"),
            "table": launch.game_id,
            "sid": launch.token,
            "userId": launch.user_id,
            "currency": launch.currency,
            "language": launch.language,
            "country": launch.country,
            "jurisdiction": launch.jurisdiction,
            "channel": "mobile" if launch.device == "mobile" else "desktop",
            "mode": "real" if launch.real else "demo",
            "lobbyUrl": launch.lobby_url,
            "cashierUrl": launch.cashier_url,
        }
        return f"{base}?{urlencode({k: v for k, v in query.items() if v is not None}, quote_via=quote)}"

    def authenticate(self, request: web.Request, body: bytes) -> None:
        """Check the static authToken of the query string."""
        try:
            self.tokens.check(request.query.getall(QUERY_PARAMETER, []))
        except TokenError as exc:
            raise errors.InvalidTokenError(str(exc), _peek_uuid(body)) from None

    async def parse(self, route: Route, request: web.Request, body: bytes, ctx: ProviderContext) -> Operation:
        """Read one callback into a canonical operation; a malformed one echoes its uuid."""
        data = schemas.decode(body)
        uuid = schemas.uuid_of(data)
        try:
            return await self._parse(route.operation, data, ctx)
        except InvalidRequestError as exc:
            raise errors.InvalidParameterError(str(exc), uuid) from None

    async def _parse(self, operation: str, data: dict[str, Any], ctx: ProviderContext) -> Operation:
        common = schemas.Common.read(data)
        if operation in ("check", "sid"):
            return await self._session_call(operation, common, data, ctx)
        currency = ctx.currency(wire.required_text(data, "currency"))
        if operation == "balance":
            schemas.Game.read(data, required=False)
            session = await self._live_session(common, ctx, currency.code)
            return self._operation(Kind.BALANCE, common, session.currency, session=SessionState.VALID)
        if operation == "promo_payout":
            return await self._promo(common, currency, data, ctx)
        return await self._bet(operation, common, currency, data, ctx)

    def _operation(
        self,
        kind: Kind,
        common: schemas.Common,
        currency: str,
        *,
        session: SessionState,
        external_id: str = "",
        amount_minor: int | None = None,
        round_id: str | None = None,
        game_id: str | None = None,
        credit_kind: CreditKind = CreditKind.WIN,
        reference_id: str | None = None,
        answer_sid: str | None = None,
        campaign_id: str | None = None,
    ) -> Operation:
        return EvolutionOperation(
            kind=kind,
            provider=self.name,
            operator=common.operator,
            player_id=common.player_id,
            currency=currency,
            external_id=external_id,
            amount_minor=amount_minor,
            round_id=round_id,
            game_id=game_id,
            credit_kind=credit_kind,
            reference_id=reference_id,
            session=session,
            scope_by_player=self.capabilities.ids_scoped_by_player,
            uuid=common.uuid,
            answer_sid=answer_sid,
            campaign_id=campaign_id,
        )

    async def _session_call(
        self, operation: str, common: schemas.Common, data: dict[str, Any], ctx: ProviderContext
    ) -> Operation:
        """Check answers with the same sid; sid opens a new session for the player and answers it."""
        schemas.channel(data)
        session = await self._live_session(common, ctx, None)
        sid = common.sid
        if operation == "sid":
            fresh = await ctx.sessions.successor(session)
            sid = fresh.token
        # A balance read proves the operator knows the player, as a check should.
        return self._operation(
            Kind.BALANCE, common, session.currency, session=SessionState.VALID, answer_sid=sid
        )

    async def _bet(
        self,
        operation: str,
        common: schemas.Common,
        currency: Currency,
        data: dict[str, Any],
        ctx: ProviderContext,
    ) -> Operation:
        game = schemas.Game.read(data, required=True)
        assert game is not None
        assert game.id is not None
        tx = schemas.Transaction.read(data)
        amount_minor = ctx.amount(tx.amount, currency)
        kind = _BET_KINDS[operation]
        state = await self._session_state(common, ctx, currency.code)
        # The refId is the bet: the debit's key, what its credit and cancel name, and its own round.
        return self._operation(
            kind,
            common,
            currency.code,
            external_id=tx.ref_id,
            # A cancel refunds what its debit took; its amount is only checked for form.
            amount_minor=None if kind is Kind.ROLLBACK else amount_minor,
            round_id=schemas.bet_round(game.id, tx.ref_id),
            game_id=game.table_id,
            reference_id=tx.ref_id if kind is Kind.ROLLBACK else None,
            session=state,
        )

    async def _promo(
        self, common: schemas.Common, currency: Currency, data: dict[str, Any], ctx: ProviderContext
    ) -> Operation:
        game = schemas.Game.read(data, required=False)
        promo = schemas.PromoTransaction.read(data)
        amount_minor = ctx.amount(promo.amount, currency)
        state = await self._session_state(common, ctx, currency.code)
        return self._operation(
            Kind.CREDIT,
            common,
            currency.code,
            external_id=schemas.PROMO_PREFIX + promo.id,
            amount_minor=amount_minor,
            round_id=schemas.PROMO_PREFIX + quote(promo.id, safe=""),
            game_id=game.table_id if game is not None else None,
            credit_kind=schemas.promo_kind(promo.type),
            session=state,
            # A free-round voucher is the campaign id Croupier gave Evolution.
            campaign_id=promo.voucher_id,
        )

    async def _session_state(
        self, common: schemas.Common, ctx: ProviderContext, currency: str
    ) -> SessionState:
        """Return the sid's state; a live sid must belong to this player and currency."""
        session = await self._evolution_session(common, ctx)
        if session is None:
            return SessionState.EXPIRED
        _check_owner(session, common, currency)
        return SessionState.VALID

    async def _live_session(
        self, common: schemas.Common, ctx: ProviderContext, currency: str | None
    ) -> Session:
        """Return the sid's live session, or refuse the request with INVALID_SID."""
        session = await self._evolution_session(common, ctx)
        if session is None:
            raise errors.InvalidSidError(common.uuid)
        _check_owner(session, common, currency)
        return session

    async def _evolution_session(self, common: schemas.Common, ctx: ProviderContext) -> Session | None:
        session, _ = await ctx.session(common.sid)
        # A token issued for another provider's game is not an Evolution sid.
        return session if session is not None and session.provider == self.name else None

    def render(self, route: Route, op: Operation, result: Result, ctx: ProviderContext) -> web.StreamResponse:
        """Answer OK with the balance, or the sid for check and sid."""
        evo = op if isinstance(op, EvolutionOperation) else None
        uuid = evo.uuid if evo is not None else None
        if route.operation in ("check", "sid"):
            return _answer(errors.OK, uuid, sid=evo.answer_sid if evo is not None else None)
        # A cancel of a debit never seen: the tombstone is stored, and Evolution's convention is
        # BET_DOES_NOT_EXIST (the later debit is then refused with FINAL_ERROR_ACTION_FAILED).
        status = errors.BET_DOES_NOT_EXIST.code if result.tombstone else errors.OK
        return _answer(
            status,
            uuid,
            balance_minor=result.balance_minor,
            currency=ctx.currency(op.currency),
            retransmission=result.replay,
        )

    def render_error(
        self, route: Route, error: WalletError, op: Operation | None, ctx: ProviderContext
    ) -> web.StreamResponse:
        """Answer with Evolution's status for the core's error (HTTP 200 throughout)."""
        native = errors.native(error, route.operation)
        uuid = op.uuid if isinstance(op, EvolutionOperation) else errors.echoed_uuid(error)
        rejected = error if isinstance(error, RejectedError) else None
        balance = rejected.balance_minor if rejected is not None else None
        return _answer(
            native.code,
            uuid,
            balance_minor=balance,
            currency=ctx.currency(op.currency) if op is not None and balance is not None else None,
            retransmission=rejected is not None and rejected.replay,
        )


def _check_owner(session: Session, common: schemas.Common, currency: str | None) -> None:
    """Refuse a sid that belongs to another player or currency."""
    if (session.operator, session.player_id) != (common.operator, common.player_id):
        raise InvalidRequestError("the sid belongs to another user")
    if currency is not None and session.currency != currency:
        raise InvalidRequestError("the sid is for another currency")


def _peek_uuid(body: bytes) -> str | None:
    """Return the body's uuid if the body is readable, for an answer that echoes it."""
    try:
        return schemas.uuid_of(schemas.decode(body))
    except InvalidRequestError:
        return None
