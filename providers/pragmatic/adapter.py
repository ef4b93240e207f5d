"""Pragmatic Play's seamless wallet: ten `.html` endpoints, each parsed into canonical operations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

from aiohttp import web

from providers.base import Adapter, Batch, LaunchRequest, ProviderConfig, Route
from providers.identity import user_id
from providers.pragmatic import answers, errors, players, schemas, signing
from providers.pragmatic.launch import DEFAULT_API_BASE_URL, games_request, launch_params, launch_url
from wallet.errors import (
    AuthenticationError,
    InvalidRequestError,
    Reason,
    RejectedError,
    WalletError,
)
from wallet.money import Currency
from wallet.operations import CreditKind, Kind, Operation, Result, SessionState, with_balance
from wallet.policy import Capabilities

if TYPE_CHECKING:
    from providers.context import ProviderContext
    from providers.simulator import ProviderSimulator

Parser = Callable[[schemas.Params, "ProviderContext"], Awaitable["Operation | Batch"]]


class PragmaticAdapter(Adapter):
    """Speaks Pragmatic's integrator API: MD5-signed form posts, JSON answers with `error` codes."""

    name = "pragmatic"
    # result.html always follows a bet in its round (free-round wins carry a bonusCode and are
    # free-round credits); refund.html refunds bets only, never after a win; references are
    # unique across Pragmatic's whole system.
    capabilities = Capabilities(
        wins_without_bets=False,
        rollback_after_win=False,
        rollback_of_credit=False,
        ids_scoped_by_player=False,
        free_rounds=True,
    )
    routes: ClassVar = [
        Route("POST", "/authenticate.html", "authenticate"),
        Route("POST", "/balance.html", "balance"),
        Route("POST", "/bet.html", "debit"),
        Route("POST", "/result.html", "credit"),
        Route("POST", "/bonusWin.html", "bonus_win"),
        Route("POST", "/jackpotWin.html", "jackpot_win"),
        Route("POST", "/promoWin.html", "promo_win"),
        Route("POST", "/refund.html", "rollback"),
        Route("POST", "/endRound.html", errors.END_ROUND),
        Route("POST", "/adjustment.html", "adjustment"),
    ]
    error_codes = errors.ERROR_CODES

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        if not config.secrets:
            raise ValueError("pragmatic needs its secret key in the provider's secrets")
        # Pragmatic issues one secret key per account; the first configured key is that secret.
        self.secret = next(iter(config.secrets.values()))
        options = config.options
        self.allowlist = signing.Allowlist(
            signing.networks(options.get("allowed_ips")),
            trust_forwarded_for=bool(options.get("trust_forwarded_for", False)),
        )
        provider_id = options.get("provider_id")
        self.provider_id = None if provider_id is None else str(provider_id)
        self.require_token_on_bet = bool(options.get("require_token_on_bet", False))
        self.bonus_win_credits = bool(options.get("bonus_win_credits", True))
        self.currency_ttl_s = int(options.get("currency_ttl_s", players.CURRENCY_TTL_S))
        self.games = frozenset(game.game_id for game in self.catalogue())
        self.parsers: dict[str, Parser] = {
            "authenticate": self._authenticate,
            "balance": self._balance,
            "debit": self._bet,
            "credit": self._result,
            "bonus_win": self._bonus_win,
            "jackpot_win": self._jackpot_win,
            "promo_win": self._promo_win,
            "rollback": self._refund,
            errors.END_ROUND: self._end_round,
            "adjustment": self._adjustment,
        }

    @classmethod
    def sample_config(cls) -> ProviderConfig:
        """Return a configuration for tests and the conformance kit, allowlist included."""
        return ProviderConfig(
            cls.name,
            {"kit-1": b"conformance kit secret"},
            {
                "provider_id": "PragmaticPlay",
                "allowed_ips": ["127.0.0.0/8", "::1"],
                "secure_login": "kit_casino",
                "launch_base_url": DEFAULT_API_BASE_URL,
                "games": [{"id": "vs20olympgate", "name": "Gates of Olympus"}],
            },
        )

    @classmethod
    def simulator(cls) -> type[ProviderSimulator]:
        """Return the simulator that plays as Pragmatic."""
        from providers.pragmatic.simulator import PragmaticSimulator  # noqa: PLC0415 -- cycle

        return PragmaticSimulator

    def launch_url(self, launch: LaunchRequest) -> str:
        """Return the signed game/url request for this launch (see providers.pragmatic.launch)."""
        return launch_url(self.config.options, self.secret, launch)

    def launch_params(self, launch: LaunchRequest) -> dict[str, str]:
        """Return the signed game/url form, for a launch step that POSTs it and follows `gameURL`."""
        return launch_params(self.config.options, self.secret, launch)

    def games_request(self) -> tuple[str, dict[str, str]]:
        """Return the URL and signed form of the getCasinoGames request."""
        return games_request(self.config.options, self.secret)

    # Callbacks (Pragmatic -> gateway).

    def authenticate(self, request: web.Request, body: bytes) -> None:
        """Check the caller's address, the MD5 hash and the providerId."""
        self.allowlist.check(request.remote, request.headers.get("X-Forwarded-For"))
        params = schemas.decode(body)
        signing.verify(params.values, self.secret)
        if self.provider_id is not None and params.get("providerId") != self.provider_id:
            raise AuthenticationError("providerId is not the configured one")

    async def parse(
        self, route: Route, request: web.Request, body: bytes, ctx: ProviderContext
    ) -> Operation | Batch:
        """Read one call into its operation (a result with a prize drop into a batch of two)."""
        return await self.parsers[route.operation](schemas.decode(body), ctx)

    async def _authenticate(self, p: schemas.Params, ctx: ProviderContext) -> Operation:
        token = p.text("token", max_len=players.MAX_TOKEN)
        self._check_game(p.optional("gameId"))
        session = await ctx.sessions.get(token)
        if session is None or session.provider != self.name:
            raise RejectedError(Reason.SESSION_EXPIRED, "the token is unknown or expired")
        # Later calls name the user but not the currency; remember it for those without a token.
        uid = user_id(session.operator, session.player_id)
        await players.remember(ctx, uid, session.currency, self.currency_ttl_s)
        # A balance needs no transaction id, so the operation carries the token the answer echoes.
        return Operation(
            Kind.BALANCE,
            self.name,
            session.operator,
            session.player_id,
            session.currency,
            external_id=token,
            session=SessionState.VALID,
            scope_by_player=self.capabilities.ids_scoped_by_player,
        )

    async def _player(
        self, p: schemas.Params, ctx: ProviderContext, round_id: str | None = None
    ) -> players.Player:
        return await players.resolve(self.name, p, ctx, round_id=round_id, ttl_s=self.currency_ttl_s)

    async def _balance(self, p: schemas.Params, ctx: ProviderContext) -> Operation:
        player = await self._player(p, ctx)
        return self._op(Kind.BALANCE, player, player.currency_in(ctx))

    async def _bet(self, p: schemas.Params, ctx: ProviderContext) -> Operation:
        game_id = p.text("gameId")
        self._check_game(game_id)
        round_id, reference = p.text("roundId"), p.text("reference")
        p.timestamp()
        p.present("roundDetails")
        if self.require_token_on_bet and p.optional("token", max_len=players.MAX_TOKEN) is None:
            raise RejectedError(Reason.SESSION_EXPIRED, "a bet needs the player's token")
        player = await self._player(p, ctx, round_id)
        currency = player.currency_in(ctx, bet=True)
        return self._op(
            Kind.DEBIT,
            player,
            currency,
            external_id=reference,
            amount_minor=p.amount("amount", currency),
            round_id=round_id,
            game_id=game_id,
        )

    async def _result(self, p: schemas.Params, ctx: ProviderContext) -> Operation | Batch:
        game_id, round_id, reference = p.text("gameId"), p.text("roundId"), p.text("reference")
        p.timestamp()
        p.present("roundDetails")
        bonus_code = p.optional("bonusCode")
        player = await self._player(p, ctx, round_id)
        currency = player.currency_in(ctx)
        win = self._op(
            Kind.CREDIT,
            player,
            currency,
            external_id=reference,
            amount_minor=p.amount("amount", currency),
            round_id=round_id,
            game_id=game_id,
            credit_kind=CreditKind.FREEROUND if bonus_code else CreditKind.WIN,
            # A free round's bonusCode is the campaign id Croupier gave Pragmatic.
            campaign_id=bonus_code,
        )
        promo_minor = p.optional_amount("promoWinAmount", currency)
        if not promo_minor:
            return win
        # A prize drop paid with the result is its own promo credit, keyed by its own reference.
        promo = self._op(
            Kind.CREDIT,
            player,
            currency,
            external_id=p.text("promoWinReference"),
            amount_minor=promo_minor,
            round_id=round_id,
            game_id=game_id,
            credit_kind=CreditKind.PROMO,
            campaign_id=p.optional("promoCampaignID"),
        )
        return Batch((win, promo))

    async def _bonus_win(self, p: schemas.Params, ctx: ProviderContext) -> Operation:
        reference = p.text("reference")
        p.timestamp()
        bonus_code = p.text("bonusCode")
        p.optional("roundId")
        game_id = p.optional("gameId")
        player = await self._player(p, ctx)
        currency = player.currency_in(ctx)
        amount_minor = p.amount("amount", currency)
        if not self.bonus_win_credits:
            # Pragmatic paid each free round through result.html already: acknowledge only.
            return self._op(Kind.BALANCE, player, currency, external_id=reference)
        # Sent when the free rounds are over, apart from any game round: a round of its own.
        return self._op(
            Kind.CREDIT,
            player,
            currency,
            external_id=reference,
            amount_minor=amount_minor,
            round_id=f"bonusWin:{reference}",
            game_id=game_id,
            credit_kind=CreditKind.BONUS,
            campaign_id=bonus_code,
        )

    async def _jackpot_win(self, p: schemas.Params, ctx: ProviderContext) -> Operation:
        game_id, round_id, reference = p.text("gameId"), p.text("roundId"), p.text("reference")
        p.text("jackpotId")
        p.timestamp()
        player = await self._player(p, ctx, round_id)
        currency = player.currency_in(ctx)
        return self._op(
            Kind.CREDIT,
            player,
            currency,
            external_id=reference,
            amount_minor=p.amount("amount", currency),
            round_id=round_id,
            game_id=game_id,
            credit_kind=CreditKind.JACKPOT,
        )

    async def _promo_win(self, p: schemas.Params, ctx: ProviderContext) -> Operation:
        reference = p.text("reference")
        campaign_id = p.text("campaignId")
        p.text("campaignType")
        p.timestamp()
        currency = ctx.currency(p.text("currency"))
        player = await self._player(p, ctx)
        if player.currency is not None and player.currency != currency.code:
            raise InvalidRequestError(f"currency {currency.code} is not the player's {player.currency}")
        # Campaign payouts (tournaments, cash drops) arrive after the campaign: a round of their own.
        return self._op(
            Kind.CREDIT,
            player,
            currency,
            external_id=reference,
            amount_minor=p.amount("amount", currency),
            round_id=f"promoWin:{reference}",
            game_id=p.optional("gameId"),
            credit_kind=CreditKind.PROMO,
            campaign_id=campaign_id,
        )

    async def _refund(self, p: schemas.Params, ctx: ProviderContext) -> Operation:
        reference = p.text("reference")
        round_id, game_id = p.optional("roundId"), p.optional("gameId")
        player = await self._player(p, ctx, round_id)
        currency = player.currency_in(ctx)
        # The refund names the bet by the bet's own reference and has no id of its own.
        return self._op(
            Kind.ROLLBACK,
            player,
            currency,
            external_id=reference,
            reference_id=reference,
            amount_minor=p.optional_amount("amount", currency),
            round_id=round_id,
            game_id=game_id,
        )

    async def _end_round(self, p: schemas.Params, ctx: ProviderContext) -> Operation:
        game_id, round_id = p.text("gameId"), p.text("roundId")
        player = await self._player(p, ctx, round_id)
        currency = player.currency_in(ctx)
        p.optional_amount("win", currency)  # informational only: checked, never applied
        # A round id need not be unique across players (live tables): key its end by both.
        return self._op(
            Kind.END_ROUND,
            player,
            currency,
            external_id=f"{round_id}:{player.user_id}",
            round_id=round_id,
            game_id=game_id,
        )

    async def _adjustment(self, p: schemas.Params, ctx: ProviderContext) -> Operation:
        game_id, round_id, reference = p.text("gameId"), p.text("roundId"), p.text("reference")
        p.timestamp()
        player = await self._player(p, ctx, round_id)
        currency = player.currency_in(ctx)
        amount_minor = p.amount("amount", currency, signed=True)
        p.amount("validBetAmount", currency)  # reported turnover: checked, never applied
        if amount_minor >= 0:
            return self._op(
                Kind.CREDIT,
                player,
                currency,
                external_id=reference,
                amount_minor=amount_minor,
                round_id=round_id,
                game_id=game_id,
            )
        # Money taken back after the game round has usually ended, and an ended round takes no
        # new debits: a debit in a round of its own; sent offline, so no token is asked for.
        return self._op(
            Kind.DEBIT,
            player,
            currency,
            external_id=reference,
            amount_minor=-amount_minor,
            round_id=f"adjustment:{reference}",
            game_id=game_id,
            session=SessionState.NOT_GIVEN,
        )

    def _check_game(self, game_id: str | None) -> None:
        # Only new play is checked: wins of a game disabled since must still be paid.
        if game_id is not None and self.games and game_id not in self.games:
            raise errors.GameNotFoundError(f"game {game_id!r} is not in the catalogue")

    def _op(
        self,
        kind: Kind,
        player: players.Player,
        currency: Currency,
        *,
        external_id: str = "",
        amount_minor: int | None = None,
        round_id: str | None = None,
        game_id: str | None = None,
        credit_kind: CreditKind = CreditKind.WIN,
        reference_id: str | None = None,
        session: SessionState | None = None,
        campaign_id: str | None = None,
    ) -> Operation:
        return Operation(
            kind=kind,
            provider=self.name,
            operator=player.operator,
            player_id=player.player_id,
            currency=currency.code,
            external_id=external_id,
            amount_minor=amount_minor,
            round_id=round_id,
            game_id=game_id,
            credit_kind=credit_kind,
            reference_id=reference_id,
            session=player.session if session is None else session,
            scope_by_player=self.capabilities.ids_scoped_by_player,
            campaign_id=campaign_id,
        )

    # Answers.

    def render(self, route: Route, op: Operation, result: Result, ctx: ProviderContext) -> web.StreamResponse:
        """Answer success with the fields the endpoint returns, amounts as exact JSON numbers."""
        return answers.success(route.operation, op, result, ctx.currency(op.currency))

    def render_batch(
        self, route: Route, batch: Batch, outcomes: Sequence[Result | WalletError], ctx: ProviderContext
    ) -> web.StreamResponse:
        """Answer a result and its prize drop: the first error, or the win with the final balance."""
        for op, outcome in zip(batch.operations, outcomes, strict=False):
            if isinstance(outcome, WalletError):
                return self.render_error(route, outcome, op, ctx)
        first, last = outcomes[0], outcomes[-1]
        assert isinstance(first, Result)
        assert isinstance(last, Result)
        return self.render(route, batch.operations[0], with_balance(first, last.balance_minor), ctx)

    def render_error(
        self, route: Route, error: WalletError, op: Operation | None, ctx: ProviderContext
    ) -> web.StreamResponse:
        """Answer the native code for the core's error, with the balance where it is known."""
        currency = None if op is None else ctx.currency(op.currency)
        return answers.failure(route.operation, error, op, currency)
