"""A client that plays as a SoftSwiss-style studio: batched /play calls, signed bodies, its retries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
import orjson

from providers.base import ProviderConfig
from providers.identity import user_id
from providers.simulator import Outcome, ProviderSimulator, SimAnswer, SimPlayer, SimulatorOptions
from providers.softswiss import errors
from providers.softswiss.signing import SIGN_HEADER, sign

DEMO_GAME = "softswiss:demo-slot"
_PATHS = {"bet": "/play", "win": "/play", "balance": "/play", "rollback": "/rollback"}
# Win kinds the protocol pays as a plain `win` action (free spins and jackpots are wins of a
# round); bonus and promo payouts have no call of their own in this protocol.
_WIN_KINDS = frozenset({"win", "freeround", "jackpot"})
_OUTCOMES = {403: Outcome.UNAUTHORIZED, 409: Outcome.MISMATCH, errors.REFUSED_HTTP: Outcome.REFUSED}
_AMOUNT_MARK = "__softswiss_amount__"


@dataclass(slots=True)
class Answer:
    """One raw answer: HTTP status and JSON body."""

    http_status: int
    body: dict[str, Any]

    @property
    def definite(self) -> bool:
        """Return whether the provider stops retrying on this answer."""
        return self.http_status < errors.RETRY_HTTP


class SoftswissSimulator(ProviderSimulator):
    """Speaks the protocol to a gateway, signing each body with the shared auth token."""

    provider: ClassVar[str] = "softswiss"

    def __init__(
        self,
        base_url: str,
        http: aiohttp.ClientSession,
        config: ProviderConfig,
        options: SimulatorOptions | None = None,
    ) -> None:
        super().__init__(base_url, http, config, options)
        # The first configured token is the current one; the gateway accepts every configured one.
        self.secret = next(iter(config.secrets.values()))
        # It plays the first game of the catalogue, as a player launching it would.
        games = config.options.get("games") or [{"id": DEMO_GAME}]
        self.game = str(games[0]["id"])

    # The wire.

    async def _post(
        self, path: str, body: bytes, *, sign_body: bool = True, headers: dict[str, str] | None = None
    ) -> Answer:
        sent = {"Content-Type": "application/json"}
        if sign_body:
            sent[SIGN_HEADER] = sign(self.secret, body)
        sent.update(headers or {})
        url = f"{self.base_url}/providers/{self.provider}{path}"
        timeout = aiohttp.ClientTimeout(total=self.options.timeout_s)
        async with self.http.post(url, data=body, headers=sent, timeout=timeout) as resp:
            raw = await resp.read()
            try:
                data = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError:
                data = {"message": raw.decode(errors="replace")}
            return Answer(resp.status, data if isinstance(data, dict) else {"body": data})

    async def call(self, path: str, payload: dict[str, Any]) -> Answer:
        """Send one signed call; a timeout or reset raises."""
        return await self._post(path, orjson.dumps(payload))

    async def until_definite(self, path: str, payload: dict[str, Any]) -> Answer:
        """Repeat the same call (same action ids) until the answer is definite."""
        return await self.repeat_until_definite(lambda: self.call(path, payload), lambda a: a.definite, path)

    @staticmethod
    def read(answer: Answer) -> SimAnswer:
        """Read a native answer back into canonical terms."""
        body = answer.body
        status = answer.http_status
        code = body.get("code")
        balance = body.get("balance")
        if status == 200:  # noqa: PLR2004 -- HTTP OK
            outcome = Outcome.OK
        elif status >= errors.RETRY_HTTP:
            outcome = Outcome.RETRYABLE
        else:
            outcome = _OUTCOMES.get(status, Outcome.INVALID)
        number = code if isinstance(code, int) and not isinstance(code, bool) else None
        return SimAnswer(
            outcome=outcome,
            native_code=None if number is None else str(number),
            reasons=frozenset() if number is None else errors.reasons_for(number),
            balance_minor=balance if isinstance(balance, int) and not isinstance(balance, bool) else None,
            replay=None,  # the protocol answers a repeat exactly like the first time
            http_status=status,
            raw=body,
        )

    def body(
        self,
        player: SimPlayer,
        round_id: str | None,
        actions: list[dict[str, Any]],
        *,
        finished: bool = False,
    ) -> dict[str, Any]:
        """Return a /play or /rollback body for a player and a round."""
        payload: dict[str, Any] = {
            "user_id": user_id(player.operator, player.player_id),
            "currency": player.currency,
            "game": self.game,
            "finished": finished,
            "actions": actions,
            "session_id": player.token,
        }
        if round_id is not None:
            payload["game_id"] = round_id
        return payload

    # The interface the conformance kit drives.

    async def balance(self, player: SimPlayer) -> SimAnswer:
        """Ask for the balance: a /play with no actions."""
        return self.read(await self.call("/play", self.body(player, None, [])))

    async def bet(
        self, player: SimPlayer, amount_minor: int, round_id: str, tx_id: str, *, retry: bool = False
    ) -> SimAnswer:
        """Place a bet; with retry, a bet whose outcome is unknown is rolled back, as the studio does."""
        action = {"action": "bet", "action_id": tx_id, "amount": amount_minor}
        payload = self.body(player, round_id, [action])
        try:
            answer = await self.call("/play", payload)
        except (aiohttp.ClientError, TimeoutError):
            if not retry:
                raise
            await self.rollback(player, tx_id, round_id, f"rb-{tx_id}", amount_minor)
            return SimAnswer(Outcome.RETRYABLE, "TIMEOUT")
        if retry and not answer.definite:
            await self.rollback(player, tx_id, round_id, f"rb-{tx_id}", amount_minor)
        return self.read(answer)

    async def win(
        self,
        player: SimPlayer,
        amount_minor: int,
        round_id: str,
        tx_id: str,
        bet_tx_id: str,
        *,
        kind: str = "win",
    ) -> SimAnswer:
        """Pay a win as a /play `win` action, retried until definite."""
        del bet_tx_id  # a win belongs to its round (game_id), not to one bet
        if kind not in _WIN_KINDS:
            raise NotImplementedError(f"the softswiss protocol has no {kind} payout call")
        action = {"action": "win", "action_id": tx_id, "amount": amount_minor}
        return self.read(await self.until_definite("/play", self.body(player, round_id, [action])))

    async def rollback(
        self, player: SimPlayer, bet_tx_id: str, round_id: str, tx_id: str, amount_minor: int
    ) -> SimAnswer:
        """Roll a bet back with /rollback, retried until definite."""
        del amount_minor  # a rollback names the action; the gateway refunds what it took
        action = {"action": "rollback", "action_id": tx_id, "original_action_id": bet_tx_id}
        return self.read(await self.until_definite("/rollback", self.body(player, round_id, [action])))

    async def end_round(self, player: SimPlayer, round_id: str) -> SimAnswer:
        """Close a round: a /play with no actions and `finished: true`, retried until definite."""
        payload = self.body(player, round_id, [], finished=True)
        return self.read(await self.until_definite("/play", payload))

    async def play(
        self,
        player: SimPlayer,
        round_id: str,
        actions: list[dict[str, Any]],
        *,
        finished: bool = False,
    ) -> SimAnswer:
        """Send several actions in one /play call, retried until definite.

        A batch is retried, not rolled back: its retry replays what was applied and completes it,
        while a rollback would meet a win already paid.
        """
        payload = self.body(player, round_id, actions, finished=finished)
        return self.read(await self.until_definite("/play", payload))

    async def spin(
        self, player: SimPlayer, bet_minor: int, win_minor: int, round_id: str | None = None
    ) -> SimAnswer:
        """Play one whole round in one call, as the demo does: bet, win and finished together."""
        round_id = round_id or f"r-{uuid.uuid4().hex[:12]}"
        actions = [
            {"action": "bet", "action_id": f"{round_id}-bet", "amount": bet_minor},
            {"action": "win", "action_id": f"{round_id}-win", "amount": win_minor},
        ]
        return await self.play(player, round_id, actions, finished=True)

    async def freespins(
        self, issue_id: str, status: str, total_amount_minor: int, player: SimPlayer | None = None
    ) -> SimAnswer:
        """Report the end of a free-spins issue (naming its player if given), retried until definite."""
        payload: dict[str, Any] = {"issue_id": issue_id, "status": status, "total_amount": total_amount_minor}
        if player is not None:
            payload |= {"user_id": user_id(player.operator, player.player_id), "currency": player.currency}
        return self.read(await self.until_definite("/freespins", payload))

    async def send_raw(
        self, operation: str, body: bytes, *, sign: bool = True, headers: dict[str, str] | None = None
    ) -> SimAnswer:
        """Send arbitrary bytes to an operation's endpoint, signed over exactly those bytes or not."""
        path = _PATHS.get(operation, f"/{operation}")
        return self.read(await self._post(path, body, sign_body=sign, headers=headers))

    def bet_body(self, player: SimPlayer, amount: str, round_id: str, tx_id: str) -> bytes:
        """Return a bet call's body with the amount written verbatim."""
        action = {"action": "bet", "action_id": tx_id, "amount": _AMOUNT_MARK}
        text = orjson.dumps(self.body(player, round_id, [action])).decode()
        return text.replace(f'"{_AMOUNT_MARK}"', amount).encode()
