"""`croupier demo`: a gateway, a reference operator wallet and a simulated provider, playing."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson
from aiohttp import web

from gateway import keys
from gateway.app import create_app
from gateway.runtime import ensure_database, serve_app
from gateway.settings import ApiCredentials, OperatorSettings, Settings
from providers import registry
from providers.simulator import ProviderSimulator, SimAnswer, SimPlayer
from wallet.backends.ledger import open_account
from wallet.backends.seamless import SeamlessWallet
from wallet.money import CurrencyTable, format_major
from wallet.pam import store as pam_store
from wallet.pam.server import PAM_POOL, create_pam_app
from wallet.pam.settings import PamSettings
from wallet.policy import OperatorPolicy
from wallet.reconciliation import Summary, run, seamless_lister
from wallet.signing import Signer

CURRENCY = "EUR"
OPENING_MINOR = 100_000
SEAMLESS, LEDGER = "demo-casino", "demo-ledger"
RETRY_SHARE, REFUND_SHARE, ZERO_WIN_SHARE = 0.05, 0.05, 0.5


@dataclass
class Tally:
    """What the simulated provider did and what it was answered."""

    rounds: int = 0
    bets: int = 0
    bets_minor: int = 0
    wins: int = 0
    wins_minor: int = 0
    rollbacks: int = 0
    replays: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    by_provider: dict[str, int] = field(default_factory=dict)
    # Sessions launched through the Operator API, and the rounds it reports by settlement.
    launches: int = 0
    settlements: dict[str, int] = field(default_factory=dict)
    # The seamless operator's wallet reconciled against the gateway's ledger after the play.
    reconciliation: Summary | None = None

    def refuse(self, answer: SimAnswer) -> None:
        """Count a refusal by its code."""
        code = answer.native_code or answer.outcome.value
        self.refused[code] = self.refused.get(code, 0) + 1


@dataclass(frozen=True)
class PlayerCheck:
    """One player's money as the operator holds it and as the gateway's ledger explains it."""

    operator: str
    player_id: str
    opening_minor: int
    operator_minor: int
    ledger_minor: int

    @property
    def agrees(self) -> bool:
        """Return whether opening balance plus ledger entries equals the operator's balance."""
        return self.opening_minor + self.ledger_minor == self.operator_minor


async def _round(sim: ProviderSimulator, rng: random.Random, player: SimPlayer, tally: Tally) -> None:
    round_id = uuid.uuid4().hex
    bet_tx = f"bet-{round_id}"
    stake_minor = rng.randrange(100, 501, 50)
    if sim.plays_whole_rounds:  # one call plays the whole round; the game decides the win
        whole = await sim.whole_round(player, stake_minor, round_id)
        tally.rounds += 1
        if not whole.ok:
            tally.refuse(whole)
            return
        tally.bets += 1
        tally.bets_minor += stake_minor
        tally.wins += 1
        tally.wins_minor += int(whole.raw["win_minor"])
        return
    answer = await sim.bet(player, stake_minor, round_id, bet_tx, retry=True)
    tally.rounds += 1
    if not answer.ok:
        tally.refuse(answer)
        return
    tally.bets += 1
    tally.bets_minor += stake_minor
    if rng.random() < RETRY_SHARE:  # a provider retrying a bet it never saw answered: must replay
        again = await sim.bet(player, stake_minor, round_id, bet_tx)
        tally.replays += int(bool(again.ok and again.replay))
    if rng.random() < REFUND_SHARE:  # the game failed: the provider refunds the bet
        refund = await sim.rollback(player, bet_tx, round_id, f"refund-{round_id}", stake_minor)
        tally.rollbacks += int(refund.ok)
        return
    win_minor = rng.choice((0, 0, 0, stake_minor // 2, stake_minor, stake_minor * 2, stake_minor * 5))
    if win_minor or rng.random() < ZERO_WIN_SHARE:  # zero wins are sent too, as many studios do
        win = await sim.win(player, win_minor, round_id, f"win-{round_id}", bet_tx)
        if win.ok:
            tally.wins += 1
            tally.wins_minor += win_minor
        else:
            tally.refuse(win)
    await sim.end_round(player, round_id)


async def _checks(
    app: web.Application, pam_app: web.Application, players: list[tuple[str, str]]
) -> list[PlayerCheck]:
    pool = app[keys.PG_POOL]
    result = []
    for operator, player_id in players:
        ledger_minor = await pool.fetchval(
            "SELECT coalesce(sum(amount_minor), 0) FROM croupier.entries"
            " WHERE kind = 'operation' AND operator = $1 AND player_id = $2 AND currency = $3",
            operator,
            player_id,
            CURRENCY,
        )
        if operator == SEAMLESS:
            account = await pam_store.get_player(pam_app[PAM_POOL], player_id)
            held = account.balance_minor if account else -1
        else:
            held = await pool.fetchval(
                "SELECT balance_minor FROM croupier.accounts WHERE operator = $1 AND player_id = $2",
                operator,
                player_id,
            )
        result.append(PlayerCheck(operator, player_id, OPENING_MINOR, held, int(ledger_minor)))
    return result


async def _launch(
    http: aiohttp.ClientSession, gateway_url: str, signer: Signer, player_id: str, provider: str, game_id: str
) -> str:
    """Launch a game through the Operator API, as an operator's lobby does; return the session token."""
    path = "/v1/sessions"
    body = orjson.dumps(
        {"player_id": player_id, "currency": CURRENCY, "provider": provider, "game_id": game_id}
    )
    headers = {"Content-Type": "application/json"} | signer.headers("POST", path, body)
    async with http.post(gateway_url + path, data=body, headers=headers) as resp:
        answer = await resp.read()
        if resp.status != 201:  # noqa: PLR2004 -- Created
            raise RuntimeError(f"launch of {provider}/{game_id} failed: {resp.status} {answer!r}")
    return str(orjson.loads(answer)["token"])


async def _settlements(
    http: aiohttp.ClientSession, gateway_url: str, signer: Signer, player_id: str, tally: Tally
) -> None:
    """Count a player's rounds by settlement, as support staff would read them from the Operator API."""
    path = f"/v1/rounds?player_id={player_id}&limit=500"
    async with http.get(gateway_url + path, headers=signer.headers("GET", path, b"")) as resp:
        if resp.status != 200:  # noqa: PLR2004 -- OK
            raise RuntimeError(f"round listing failed: {resp.status} {await resp.read()!r}")
        page = orjson.loads(await resp.read())
    for round_ in page["rounds"]:
        tally.settlements[round_["settlement"]] = tally.settlements.get(round_["settlement"], 0) + 1


async def _drain_outbox(app: web.Application) -> int:
    """Let the outbox deliver everything owed; return what is still waiting."""
    depth = 0
    for _ in range(50):
        await app[keys.OUTBOX].run_once()
        depth = await app[keys.PG_POOL].fetchval(
            "SELECT count(*) FROM croupier.outbox WHERE state = 'scheduled'"
            " AND (attempts > 0 OR due_at <= now())"
        )
        pending = await app[keys.PG_POOL].fetchval(
            "SELECT count(*) FROM croupier.operations WHERE state IN ('pending', 'queued')"
        )
        if depth == 0 and pending == 0:
            return 0
        await asyncio.sleep(0.1)
    return int(depth)


async def run_demo(
    base: Settings, rounds: int, players: int, seed: int, providers: Sequence[str] | None = None
) -> tuple[Tally, list[PlayerCheck], int]:
    """Play rounds through every provider at once, for a seamless and a ledger operator."""
    assert base.database_url is not None
    adapters = {name: registry.load(name) for name in (providers or registry.names())}
    gateway_db = await ensure_database(base.database_url, "croupier_demo", fresh=True)
    pam_db = await ensure_database(base.database_url, "croupier_demo_pam", fresh=True)
    pam_secret = secrets.token_bytes(32)
    signers = {name: Signer(f"{name}-api", secrets.token_bytes(32)) for name in (SEAMLESS, LEDGER)}
    api = {name: ApiCredentials(hmac_keys={s.key_id: s.secret}) for name, s in signers.items()}
    pam_app = create_pam_app(PamSettings(pam_db, {"pam-1": pam_secret}))
    rng = random.Random(seed)  # noqa: S311 -- simulated provider behaviour, not game outcomes
    started = datetime.now(UTC)
    tally = Tally()
    async with serve_app(pam_app) as pam_url:
        settings = dataclasses.replace(
            base,
            database_url=gateway_db,
            operators={
                SEAMLESS: OperatorSettings(
                    OperatorPolicy(SEAMLESS), "seamless", pam_url, "pam-1", pam_secret, api=api[SEAMLESS]
                ),
                LEDGER: OperatorSettings(OperatorPolicy(LEDGER), api=api[LEDGER]),
            },
            providers={name: cls.sample_config() for name, cls in adapters.items()},
        )
        app = create_app(settings)
        async with serve_app(app) as gateway_url, aiohttp.ClientSession() as http:
            roster: list[tuple[str, str]] = []
            players_: list[tuple[ProviderSimulator, SimPlayer]] = []
            sims = {
                name: cls.simulator()(gateway_url, http, settings.providers[name])
                for name, cls in adapters.items()
            }
            names = sorted(sims)
            # Each provider's first game; every launch goes through the Operator API.
            games = {name: app[keys.ADAPTERS][name].catalogue()[0].game_id for name in names}
            for n in range(max(players, 2 * len(names))):
                operator = SEAMLESS if n % 2 == 0 else LEDGER
                provider = names[(n // 2) % len(names)]
                player_id = f"{provider}-{n:03d}"
                if operator == SEAMLESS:
                    await pam_store.set_player(pam_app[PAM_POOL], player_id, CURRENCY, OPENING_MINOR)
                else:
                    async with app[keys.PG_POOL].acquire() as conn:
                        await open_account(conn, operator, player_id, CURRENCY, OPENING_MINOR)
                game_id = games[provider]
                token = await _launch(http, gateway_url, signers[operator], player_id, provider, game_id)
                tally.launches += 1
                roster.append((operator, player_id))
                players_.append((sims[provider], SimPlayer(operator, player_id, CURRENCY, token)))
            gate = asyncio.Semaphore(16)

            async def one(i: int) -> None:
                sim, player = players_[i % len(players_)]
                async with gate:
                    await _round(sim, rng, player, tally)
                tally.by_provider[sim.provider] = tally.by_provider.get(sim.provider, 0) + 1

            await asyncio.gather(*(one(i) for i in range(rounds)))
            waiting = await _drain_outbox(app)
            checks = await _checks(app, pam_app, roster)
            tally.reconciliation = await _reconcile(app, started)
            for operator, player_id in roster:
                await _settlements(http, gateway_url, signers[operator], player_id, tally)
    return tally, checks, waiting


async def _reconcile(app: web.Application, started: datetime) -> Summary:
    """Reconcile the seamless operator's wallet for the demo's whole window."""
    backend = app[keys.WALLET].runtime(SEAMLESS).backend
    assert isinstance(backend, SeamlessWallet)
    now = datetime.now(UTC)
    since, until = started - timedelta(minutes=1), now + timedelta(minutes=1)
    lister = seamless_lister(backend)
    return await run(app[keys.PG_POOL], SEAMLESS, lister, since, until, now, 60.0, metrics=app[keys.METRICS])


def print_report(tally: Tally, checks: list[PlayerCheck], waiting: int) -> bool:
    """Print the demo's summary and return whether the ledger and the operators agree."""
    eur = CurrencyTable().get(CURRENCY)
    per = ", ".join(f"{name} {count}" for name, count in sorted(tally.by_provider.items()))
    print(f"rounds played      {tally.rounds}  ({per})")  # noqa: T201
    print(f"bets               {tally.bets}  ({format_major(tally.bets_minor, eur)} {CURRENCY})")  # noqa: T201
    print(f"wins               {tally.wins}  ({format_major(tally.wins_minor, eur)} {CURRENCY})")  # noqa: T201
    print(f"rollbacks          {tally.rollbacks}")  # noqa: T201
    print(f"replayed retries   {tally.replays}")  # noqa: T201
    print(f"refusals           {tally.refused or 'none'}")  # noqa: T201
    print(f"outbox waiting     {waiting}")  # noqa: T201
    print(f"launches           {tally.launches} sessions through POST /v1/sessions")  # noqa: T201
    settled = ", ".join(f"{k} {v}" for k, v in sorted(tally.settlements.items()))
    print(f"rounds by status   {settled}  (GET /v1/rounds)")  # noqa: T201
    print("\noperator      player           opening    operator    ledger-explained  agree")  # noqa: T201
    for c in checks:
        explained = format_major(c.opening_minor + c.ledger_minor, eur)
        print(  # noqa: T201
            f"{c.operator:<13} {c.player_id:<15} {format_major(c.opening_minor, eur):>9} "
            f"{format_major(c.operator_minor, eur):>11} {explained:>17}  {'yes' if c.agrees else 'NO'}"
        )
    rec = tally.reconciliation
    reconciled = rec is not None and not rec.differences
    agree = waiting == 0 and all(c.agrees for c in checks) and reconciled
    if rec is not None:
        print(  # noqa: T201
            f"\nreconciliation {rec.reconciliation_id}: {rec.ours} transfers in the gateway's ledger,"
            f" {rec.theirs} in the operator's wallet, {len(rec.differences)} differences"
        )
        for diff in rec.differences:
            print(f"  {diff.kind.value}: {diff.transaction_id} {diff.reason}")  # noqa: T201
    verdict = "AGREE" if agree else "DISAGREE"
    print(f"gateway ledger and operator balances: {verdict} ({len(checks)} players)")  # noqa: T201
    return agree
