"""A client that plays as Pragmatic Play: signed form posts, and Pragmatic's own retry rules."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import ClassVar
from urllib.parse import parse_qsl, quote, urlencode

import aiohttp

from providers.base import ProviderConfig
from providers.identity import user_id
from providers.pragmatic import errors, signing
from providers.simulator import Outcome, ProviderSimulator, SimAnswer, SimPlayer, SimulatorOptions
from wallet.money import AmountError, CurrencyTable, format_major, to_minor

DEFAULT_PROVIDER_ID = "PragmaticPlay"
DEFAULT_GAME = "vs20olympgate"
FORM = "application/x-www-form-urlencoded"
PATHS = {"bet": "/bet.html", "win": "/result.html", "rollback": "/refund.html", "balance": "/balance.html"}
_RETRY = frozenset({errors.INTERNAL_RETRY.code, errors.END_ROUND_RETRY.code})
_INVALID = frozenset({errors.BAD_PARAMETERS.code, errors.GAME_NOT_FOUND.code})
_SERVER_ERROR = 500


class PragmaticSimulator(ProviderSimulator):
    """Plays as Pragmatic: authenticates a launch token first, then bets, pays and refunds."""

    provider: ClassVar[str] = "pragmatic"
    # It sends the token with every bet, as Pragmatic does once asked to, so an expiry refuses one.
    checks_session_on_bet: ClassVar[bool] = True

    def __init__(
        self,
        base_url: str,
        http: aiohttp.ClientSession,
        config: ProviderConfig,
        options: SimulatorOptions | None = None,
    ) -> None:
        super().__init__(base_url, http, config, options)
        self.secret = next(iter(config.secrets.values()))
        self.provider_id = str(config.options.get("provider_id", DEFAULT_PROVIDER_ID))
        games = config.options.get("games") or []
        self.game_id = str(games[0]["id"]) if games else DEFAULT_GAME
        self.currencies = CurrencyTable(config.options.get("currencies"))
        self._login_locks: dict[str, asyncio.Lock] = {}
        self._logged_in: set[str] = set()

    # Transport.

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """Post a form body to one endpoint and return the HTTP status and raw answer."""
        sent = {"Content-Type": FORM, **(headers or {})}
        async with self.http.post(
            f"{self.base_url}/providers/{self.provider}{path}",
            data=body,
            headers=sent,
            timeout=aiohttp.ClientTimeout(total=self.options.timeout_s),
        ) as resp:
            return resp.status, await resp.read()

    def encode(self, params: dict[str, str]) -> bytes:
        """Return the signed form body of a call."""
        return urlencode(signing.sign(params, self.secret)).encode()

    async def call(self, path: str, params: dict[str, str], currency: str | None) -> SimAnswer:
        """Send one signed call once; a timeout or reset raises."""
        return self.read(*await self.post(path, self.encode(params)), currency)

    async def until_definite(self, path: str, params: dict[str, str], currency: str | None) -> SimAnswer:
        """Send the same call until it gets a definite answer, as Pragmatic does for money it owes."""
        body = self.encode(params)

        async def send() -> SimAnswer:
            return self.read(*await self.post(path, body), currency)

        return await self.repeat_until_definite(send, lambda a: a.outcome is not Outcome.RETRYABLE, path)

    def read(self, status: int, raw: bytes, currency: str | None) -> SimAnswer:
        """Read a native answer into canonical terms through the adapter's own error table."""
        try:
            # Decimal keeps every digit the gateway wrote; a float would round 18-place amounts.
            data = json.loads(raw, parse_float=Decimal)
        except ValueError:
            data = None
        code = data.get("error") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(code, int) or isinstance(code, bool):
            outcome = Outcome.RETRYABLE if status >= _SERVER_ERROR else Outcome.INVALID
            return SimAnswer(outcome, None, http_status=status, raw=raw)
        if code == errors.SUCCESS.code:
            outcome = Outcome.OK
        elif code in _RETRY:
            outcome = Outcome.RETRYABLE
        elif code == errors.INVALID_HASH.code:
            outcome = Outcome.UNAUTHORIZED
        elif code in _INVALID:
            outcome = Outcome.INVALID
        elif "field" in data:
            outcome = Outcome.MISMATCH
        else:
            outcome = Outcome.REFUSED
        return SimAnswer(
            outcome=outcome,
            native_code=str(code),
            reasons=errors.reasons(code),
            balance_minor=self._minor(data.get("cash"), data.get("currency") or currency),
            replay=None,  # Pragmatic answers a repeat exactly like the first call
            http_status=status,
            raw=data,
        )

    def _minor(self, cash: object, currency: object) -> int | None:
        if cash is None or not isinstance(currency, str) or currency not in self.currencies:
            return None
        try:
            return to_minor(cash, self.currencies.get(currency))
        except AmountError:
            return None

    # Calls.

    def params(self, player: SimPlayer, **fields: object) -> dict[str, str]:
        """Return a call's parameters for a player; None fields are left out."""
        params = {"providerId": self.provider_id, "userId": user_id(player.operator, player.player_id)}
        params.update({name: str(value) for name, value in fields.items() if value is not None})
        return params

    def major(self, amount_minor: int, currency: str) -> str:
        """Return an amount as Pragmatic writes it: major units with the currency's places."""
        return format_major(amount_minor, self.currencies.get(currency))

    @staticmethod
    def now_ms() -> int:
        """Return the current time in milliseconds, as Pragmatic stamps its calls."""
        return int(time.time() * 1000)

    async def authenticate(self, player: SimPlayer) -> SimAnswer:
        """Authenticate the launch token, as the game does when it opens."""
        params = {"providerId": self.provider_id, "token": player.token, "gameId": self.game_id}
        return await self.call("/authenticate.html", params, player.currency)

    async def login(self, player: SimPlayer) -> None:
        """Authenticate a player's token once, before its first call."""
        lock = self._login_locks.setdefault(player.token, asyncio.Lock())
        async with lock:
            if player.token in self._logged_in:
                return
            try:
                answer = await self.authenticate(player)
            except (aiohttp.ClientError, TimeoutError):
                return  # the next call tries again
            if answer.outcome is not Outcome.RETRYABLE:
                self._logged_in.add(player.token)

    async def balance(self, player: SimPlayer) -> SimAnswer:
        """Ask for the balance, with the player's token."""
        await self.login(player)
        params = self.params(player, token=player.token, gameId=self.game_id)
        return await self.call("/balance.html", params, player.currency)

    def _bet_params(self, player: SimPlayer, round_id: str, tx_id: str, amount: str | None) -> dict[str, str]:
        return self.params(
            player,
            gameId=self.game_id,
            roundId=round_id,
            amount=amount,
            reference=tx_id,
            timestamp=self.now_ms(),
            roundDetails="spin",
            platform="WEB",
            token=player.token,
        )

    async def bet(
        self, player: SimPlayer, amount_minor: int, round_id: str, tx_id: str, *, retry: bool = False
    ) -> SimAnswer:
        """Place a bet; with retry, refund it on a timeout or a 100, as Pragmatic does."""
        await self.login(player)
        params = self._bet_params(player, round_id, tx_id, self.major(amount_minor, player.currency))
        try:
            answer = await self.call("/bet.html", params, player.currency)
        except (aiohttp.ClientError, TimeoutError):
            if not retry:
                raise
            await self.rollback(player, tx_id, round_id, tx_id, amount_minor)
            return SimAnswer(Outcome.RETRYABLE, "timeout")
        if retry and answer.outcome is Outcome.RETRYABLE:
            await self.rollback(player, tx_id, round_id, tx_id, amount_minor)
        return answer

    def bet_body(self, player: SimPlayer, amount: str, round_id: str, tx_id: str) -> bytes:
        """Return an unsigned bet body whose amount parameter decodes to exactly the given text."""
        params = self._bet_params(player, round_id, tx_id, None)
        return f"{urlencode(params)}&amount={quote(amount, safe='')}".encode()

    async def win(
        self,
        player: SimPlayer,
        amount_minor: int,
        round_id: str,
        tx_id: str,
        bet_tx_id: str,
        *,
        kind: str = "win",
        campaign_id: str | None = None,
    ) -> SimAnswer:
        """Pay a win on Pragmatic's endpoint for its kind (for a campaign if named), until definite."""
        del bet_tx_id  # Pragmatic ties a win to its round, not to a bet
        amount = self.major(amount_minor, player.currency)
        common = {"amount": amount, "reference": tx_id, "timestamp": self.now_ms()}
        bonus_code = campaign_id or f"frb-{round_id}"
        if kind in ("win", "freeround"):
            path = "/result.html"
            fields = {"gameId": self.game_id, "roundId": round_id, "roundDetails": "spin", **common}
            if kind == "freeround":
                fields["bonusCode"] = bonus_code
        elif kind == "bonus":
            path = "/bonusWin.html"
            fields = {"bonusCode": bonus_code, "roundId": round_id, "gameId": self.game_id, **common}
        elif kind == "jackpot":
            path = "/jackpotWin.html"
            fields = {"gameId": self.game_id, "roundId": round_id, "jackpotId": "1", **common}
            fields["jackpotDetails"] = f"progressive:{amount}"
        elif kind == "promo":
            path = "/promoWin.html"
            fields = {"campaignId": campaign_id or "1", "campaignType": "T", "currency": player.currency}
            fields |= common
        else:
            raise NotImplementedError(f"pragmatic has no {kind} payout")
        await self.login(player)
        return await self.until_definite(path, self.params(player, **fields), player.currency)

    async def prize_drop(
        self,
        player: SimPlayer,
        amount_minor: int,
        promo_minor: int,
        round_id: str,
        tx_id: str,
        promo_reference: str,
    ) -> SimAnswer:
        """Pay a round's result together with a prize drop, retried until definite."""
        await self.login(player)
        params = self.params(
            player,
            gameId=self.game_id,
            roundId=round_id,
            amount=self.major(amount_minor, player.currency),
            reference=tx_id,
            timestamp=self.now_ms(),
            roundDetails="spin",
            promoWinAmount=self.major(promo_minor, player.currency),
            promoWinReference=promo_reference,
            promoCampaignID="1",
            promoCampaignType="R",
        )
        return await self.until_definite("/result.html", params, player.currency)

    async def rollback(
        self, player: SimPlayer, bet_tx_id: str, round_id: str, tx_id: str, amount_minor: int
    ) -> SimAnswer:
        """Refund a bet by the bet's reference, retried until definite."""
        del tx_id  # refund.html has no id of its own: it names the bet's reference
        await self.login(player)
        params = self.params(
            player,
            reference=bet_tx_id,
            roundId=round_id,
            gameId=self.game_id,
            amount=self.major(amount_minor, player.currency),
            timestamp=self.now_ms(),
        )
        return await self.until_definite("/refund.html", params, player.currency)

    async def end_round(self, player: SimPlayer, round_id: str) -> SimAnswer:
        """End a round, retried until definite."""
        await self.login(player)
        params = self.params(player, gameId=self.game_id, roundId=round_id, roundDetails="spin")
        return await self.until_definite("/endRound.html", params, player.currency)

    async def adjustment(
        self, player: SimPlayer, amount_minor: int, round_id: str, tx_id: str, valid_bet_minor: int = 0
    ) -> SimAnswer:
        """Adjust a live round's settlement by a signed amount, retried until definite."""
        await self.login(player)
        params = self.params(
            player,
            gameId=self.game_id,
            roundId=round_id,
            amount=self.major(amount_minor, player.currency),
            reference=tx_id,
            validBetAmount=self.major(valid_bet_minor, player.currency),
            timestamp=self.now_ms(),
        )
        return await self.until_definite("/adjustment.html", params, player.currency)

    async def send_raw(
        self, operation: str, body: bytes, *, sign: bool = True, headers: dict[str, str] | None = None
    ) -> SimAnswer:
        """Post exact bytes; signing appends the hash of the parameters the bytes hold."""
        path = PATHS.get(operation) or (operation if operation.startswith("/") else f"/{operation}")
        if sign:
            # The hash covers parameters, not bytes: read them leniently and hash what was read.
            read = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            body += (b"&" if body else b"") + f"hash={signing.digest(read, self.secret)}".encode()
        return self.read(*await self.post(path, body, headers), None)
