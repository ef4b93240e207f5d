"""A client that plays the house games through the player API, as the slot page does."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
import orjson

from providers.base import ProviderConfig
from providers.house import errors
from providers.simulator import Outcome, ProviderSimulator, SimAnswer, SimPlayer, SimulatorOptions

# The kit names rounds with its own strings; the house wants UUIDs, so each maps to one, stably.
ROUND_NAMESPACE = uuid.UUID("0b7d5f7e-3c1a-4c9e-8f4e-686f75736531")
_PATHS = {"bet": "/rounds", "round": "/rounds", "balance": "/balance"}
DEMO_GAMES = ("slot", "roulette", "dice")
_MINOR_TEXT = re.compile(r"\d+\.\d\d")
_OUTCOMES = {
    401: Outcome.UNAUTHORIZED,
    409: Outcome.MISMATCH,
    errors.REFUSED_HTTP: Outcome.REFUSED,
}
# Why the kit's bet-then-win scenarios cannot be expressed: one call plays a whole round.
NO_BET_ALONE = "one call plays a whole round: a bet is never placed alone"
NO_CHOSEN_WIN = "the game decides the win, paid in the call that places the bet"
NO_ROLLBACK = "a round is retried to completion, never refunded"
NO_END_ALONE = "a round ends in the call that plays it"


@dataclass(slots=True)
class Answer:
    """One raw answer: HTTP status and JSON body."""

    http_status: int
    body: dict[str, Any]

    @property
    def definite(self) -> bool:
        """Return whether the answer is final (not 'retry the same round')."""
        return not self.body.get("retryable", self.http_status >= 500)  # noqa: PLR2004 -- 5xx


def kit_round_id(round_id: str) -> str:
    """Return the UUID a round name stands for (a UUID stays itself)."""
    try:
        return str(uuid.UUID(round_id))
    except ValueError:
        return str(uuid.uuid5(ROUND_NAMESPACE, round_id))


class HouseSimulator(ProviderSimulator):
    """Speaks the house player API: the session token is the only credential."""

    provider: ClassVar[str] = "house"
    # What the conformance kit can check here: balance, credentials, malformed and oversized bodies.
    kit_minimum_passes: ClassVar[int] = 4
    plays_whole_rounds: ClassVar[bool] = True

    def __init__(
        self,
        base_url: str,
        http: aiohttp.ClientSession,
        config: ProviderConfig,
        options: SimulatorOptions | None = None,
    ) -> None:
        super().__init__(base_url, http, config, options)
        self._slot_lines: int | None = None

    async def post(self, path: str, body: bytes, *, headers: dict[str, str] | None = None) -> Answer:
        """Send one POST under /providers/house; a timeout or reset raises."""
        sent = {"Content-Type": "application/json"} | (headers or {})
        timeout = aiohttp.ClientTimeout(total=self.options.timeout_s)
        url = f"{self.base_url}/providers/{self.provider}{path}"
        async with self.http.post(url, data=body, headers=sent, timeout=timeout) as resp:
            return Answer(resp.status, _decode(await resp.read()))

    async def get(self, path: str, token: str) -> Answer:
        """Send one GET under /providers/house with the token as a bearer credential."""
        timeout = aiohttp.ClientTimeout(total=self.options.timeout_s)
        url = f"{self.base_url}/providers/{self.provider}{path}"
        headers = {"Authorization": f"Bearer {token}"}
        async with self.http.get(url, headers=headers, timeout=timeout) as resp:
            return Answer(resp.status, _decode(await resp.read()))

    @staticmethod
    def read(answer: Answer) -> SimAnswer:
        """Read a native answer back into canonical terms."""
        body = answer.body
        status = answer.http_status
        if status == 200:  # noqa: PLR2004 -- HTTP OK
            outcome = Outcome.OK
        elif not answer.definite:
            outcome = Outcome.RETRYABLE
        else:
            outcome = _OUTCOMES.get(status, Outcome.INVALID)
        code = body.get("code") if isinstance(body.get("code"), str) else None
        balance = body.get("balance_minor")
        replay = body.get("replay")
        return SimAnswer(
            outcome=outcome,
            native_code=code,
            reasons=errors.reasons_for(code) if code else frozenset(),
            balance_minor=balance if isinstance(balance, int) and not isinstance(balance, bool) else None,
            replay=replay if isinstance(replay, bool) else None,
            http_status=status,
            raw=body,
        )

    async def play(
        self,
        player: SimPlayer,
        game: str,
        bet_minor: int,
        params: dict[str, Any] | None = None,
        round_id: str | None = None,
        *,
        mode: str = "standard",
    ) -> SimAnswer:
        """Play one round, repeating the same round id until the answer is definite, as the page does."""
        payload = {
            "token": player.token,
            "round_id": kit_round_id(round_id or uuid.uuid4().hex),
            "game": game,
            "bet_minor": bet_minor,
            "params": params or {},
            "mode": mode,
        }
        body = orjson.dumps(payload)
        answer = await self.repeat_until_definite(
            lambda: self.post("/rounds", body), lambda a: a.definite, "round"
        )
        return self.read(answer)

    async def slot_lines(self) -> int:
        """Return the slot's number of paylines, as GET /games tells (asked once)."""
        if self._slot_lines is None:
            timeout = aiohttp.ClientTimeout(total=self.options.timeout_s)
            url = f"{self.base_url}/providers/{self.provider}/games"
            async with self.http.get(url, timeout=timeout) as resp:
                games = _decode(await resp.read()).get("games", [])
            self._slot_lines = next(int(g["lines"]) for g in games if g.get("game") == "slot")
        return self._slot_lines

    async def whole_round(self, player: SimPlayer, stake_minor: int, round_id: str) -> SimAnswer:
        """Play one round for the demo: the game follows from the round id, the stake is kept whole."""
        game = DEMO_GAMES[uuid.UUID(kit_round_id(round_id)).int % len(DEMO_GAMES)]
        if game == "slot" and stake_minor % await self.slot_lines():
            game = "dice"  # the slot's stake is a whole number of line bets
        choices: dict[str, dict[str, Any]] = {
            "slot": {},
            "roulette": {"bets": [{"type": "red", "amount_minor": stake_minor}]},
            "dice": {"target": 50, "direction": "under"},
        }
        params = choices[game]
        return await self.play(player, game, stake_minor, params, round_id)

    # The interface the conformance kit drives.

    async def balance(self, player: SimPlayer) -> SimAnswer:
        """Ask for the balance."""
        return self.read(await self.post("/balance", orjson.dumps({"token": player.token})))

    async def bet(
        self, player: SimPlayer, amount_minor: int, round_id: str, tx_id: str, *, retry: bool = False
    ) -> SimAnswer:
        """Not expressible: a bet is never placed alone here."""
        raise NotImplementedError(NO_BET_ALONE)

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
        """Not expressible: the game decides the win, in the same call as the bet."""
        raise NotImplementedError(NO_CHOSEN_WIN)

    async def rollback(
        self, player: SimPlayer, bet_tx_id: str, round_id: str, tx_id: str, amount_minor: int
    ) -> SimAnswer:
        """Not expressible: the house never refunds a bet; a round is retried to completion."""
        raise NotImplementedError(NO_ROLLBACK)

    async def end_round(self, player: SimPlayer, round_id: str) -> SimAnswer:
        """Not expressible: a round ends in the call that plays it."""
        raise NotImplementedError(NO_END_ALONE)

    async def send_raw(
        self, operation: str, body: bytes, *, sign: bool = True, headers: dict[str, str] | None = None
    ) -> SimAnswer:
        """Send bytes to an operation; unsigned means without the session token (the credential)."""
        if not sign:
            body = _without_token(body)
        return self.read(await self.post(_PATHS.get(operation, f"/{operation}"), body, headers=headers))

    def bet_body(self, player: SimPlayer, amount: str, round_id: str, tx_id: str) -> bytes:
        """Return a dice round's body with the bet written as given (minor units when it is exact)."""
        written = amount.replace(".", "") if _MINOR_TEXT.fullmatch(amount) else amount
        # A malformed name stays as written, so the kit's bad ids reach the adapter unmapped.
        malformed = not round_id.isprintable()
        payload = {
            "token": player.token,
            "round_id": round_id if malformed else kit_round_id(round_id),
            "game": "dice",
            "bet_minor": "__bet__",
            "params": {"target": 50, "direction": "under"},
        }
        return orjson.dumps(payload).decode().replace('"__bet__"', written).encode()


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {"message": raw.decode(errors="replace")}
    return data if isinstance(data, dict) else {"body": data}


def _without_token(body: bytes) -> bytes:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if isinstance(data, dict):
        data.pop("token", None)
        return orjson.dumps(data)
    return body
