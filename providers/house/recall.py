"""Game recall: rebuild a stored round from its draws (and, in fair mode, from its revealed seeds)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import orjson

from providers.house import store
from providers.house.games import GameBook, build
from providers.house.store import StoredRound
from rng.fair import FairSource, check_commitment, verify_draws
from rng.games.base import Game, GameResult
from rng.source import ReplayMismatchError, ReplaySource, Source
from wallet.db import Connection


def normalised(state: dict[str, Any]) -> dict[str, Any]:
    """Return a state as it reads back from JSON (tuples become lists), for exact comparison."""
    back: dict[str, Any] = orjson.loads(orjson.dumps(state))
    return back


@dataclass(frozen=True, slots=True)
class Replay:
    """A round played again and compared with what was stored."""

    state_matches: bool
    win_matches: bool
    draws_all_used: bool
    replayed_state: Any = None
    replayed_win_minor: int | None = None
    error: str | None = None

    @property
    def reproduced(self) -> bool:
        """Return whether the replay gives exactly the stored outcome from exactly the stored draws."""
        return self.error is None and self.state_matches and self.win_matches and self.draws_all_used

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "reproduced": self.reproduced,
            "state_matches": self.state_matches,
            "win_matches": self.win_matches,
            "draws_all_used": self.draws_all_used,
            "replayed_win_minor": self.replayed_win_minor,
            "error": self.error,
        }


def _play(game: Game, source: Source, stored: StoredRound) -> GameResult | str:
    try:
        return game.play(source, stored.bet_minor, stored.params)
    except (ReplayMismatchError, ValueError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"


def replay(game: Game, stored: StoredRound) -> Replay:
    """Play the round again from its stored draws and compare state, win and draws used."""
    try:
        source = ReplaySource(stored.draws)
    except ReplayMismatchError as exc:
        return Replay(state_matches=False, win_matches=False, draws_all_used=False, error=str(exc))
    result = _play(game, source, stored)
    if isinstance(result, str):
        return Replay(state_matches=False, win_matches=False, draws_all_used=False, error=result)
    state = normalised(result.state)
    return Replay(
        state_matches=state == stored.state,
        win_matches=result.win_minor == stored.win_minor,
        draws_all_used=source.exhausted,
        replayed_state=state,
        replayed_win_minor=result.win_minor,
    )


@dataclass(frozen=True, slots=True)
class FairCheck:
    """A fair-mode round recomputed from its revealed server seed, client seed and nonce."""

    server_seed_hex: str
    commitment_matches: bool
    draws_match: bool
    replay: Replay

    @property
    def verified(self) -> bool:
        """Return whether the seed is the committed one and it yields exactly the stored round."""
        return self.commitment_matches and self.draws_match and self.replay.reproduced

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "verified": self.verified,
            "server_seed": self.server_seed_hex,
            "commitment_matches": self.commitment_matches,
            "draws_match": self.draws_match,
            "replay": self.replay.to_dict(),
        }


def verify_fair(game: Game, stored: StoredRound) -> FairCheck:
    """Recompute a fair round from its revealed seed; the caller checks that it is revealed."""
    assert stored.revealed_seed is not None
    assert stored.commitment is not None
    assert stored.client_seed is not None
    assert stored.nonce is not None
    seed = stored.revealed_seed
    draws = verify_draws(seed, stored.client_seed, stored.nonce, stored.draws)
    # The game is played on the fair source itself, not on the stored draws: nothing stored is trusted.
    result = _play(game, FairSource(seed, stored.client_seed, stored.nonce), stored)
    if isinstance(result, str):
        again = Replay(state_matches=False, win_matches=False, draws_all_used=False, error=result)
    else:
        state = normalised(result.state)
        again = Replay(
            state_matches=state == stored.state,
            win_matches=result.win_minor == stored.win_minor,
            # The fair stream never runs out; the draw-by-draw check above covers the count.
            draws_all_used=True,
            replayed_state=state,
            replayed_win_minor=result.win_minor,
        )
    return FairCheck(seed.hex(), check_commitment(seed, stored.commitment), draws.ok, again)


def verify_command(stored: StoredRound) -> str:
    """Return the `croupier rng verify` command line that recomputes a revealed fair round offline."""
    assert stored.revealed_seed is not None
    words = [
        "croupier",
        "rng",
        "verify",
        f"--server-seed={stored.revealed_seed.hex()}",
        f"--client-seed={stored.client_seed}",
        f"--nonce={stored.nonce}",
        f"--commitment={stored.commitment}",
        f"--game={stored.game}",
        f"--params={orjson.dumps(stored.params).decode()}",
        f"--bet-minor={stored.bet_minor}",
        f"--draws={orjson.dumps([list(d) for d in stored.draws]).decode()}",
    ]
    return shlex.join(words)


async def game_of(conn: Connection, stored: StoredRound, book: GameBook | None = None) -> Game:
    """Return the game exactly as configured when the round was played, from the database."""
    config = await store.config_text(conn, stored.game_sha256)
    if config is None:
        raise LookupError(f"no stored configuration for round {stored.round_id}")
    if book is not None:
        return book.for_config(stored.game, stored.game_sha256, config)
    return build(stored.game, config)


def balances(stored: StoredRound) -> dict[str, int | None]:
    """Return the balances before and after the round, where they were recorded."""
    return {"before_minor": stored.balance_before_minor, "after_minor": stored.balance_after_minor}


def recall_payload(stored: StoredRound, check: Replay, *, reveal_void: bool) -> dict[str, Any]:
    """Return the recall of a round; a round whose bet was not accepted hides its outcome unless told."""
    payload: dict[str, Any] = {
        "round_id": str(stored.round_id),
        "operator": stored.operator,
        "player_id": stored.player_id,
        "currency": stored.currency,
        "game": stored.game,
        "game_config_sha256": stored.game_sha256.hex(),
        "mode": stored.mode,
        "round_status": stored.status,
        "refusal": stored.refusal,
        "bet_minor": stored.bet_minor,
        "params": stored.params,
        "created_at": stored.created_at.isoformat(),
        "balance": balances(stored),
    }
    if stored.mode == "fair":
        payload["fair"] = {
            "commitment": stored.commitment,
            "client_seed": stored.client_seed,
            "nonce": stored.nonce,
            "revealed": stored.revealed_seed is not None,
        }
    if stored.shown or reveal_void:
        payload |= {
            "draws": [list(draw) for draw in stored.draws],
            "outcome": stored.state,
            "win_minor": stored.win_minor,
            "replay": check.to_dict(),
        }
    return payload


def _shown(balance_minor: int | None) -> str:
    return "not recorded" if balance_minor is None else str(balance_minor)


def recall_text(stored: StoredRound, check: Replay) -> str:
    """Return a recall for a terminal: the stored round, then the replay's verdict."""
    before, after = stored.balance_before_minor, stored.balance_after_minor
    lines = [
        f"round      {stored.round_id}",
        f"player     {stored.operator}/{stored.player_id} ({stored.currency})",
        f"game       {stored.game} (config sha256 {stored.game_sha256.hex()[:16]}…), mode {stored.mode}",
        f"played at  {stored.created_at.isoformat()}",
        f"status     {stored.status}" + (f" ({stored.refusal})" if stored.refusal else ""),
        f"bet        {stored.bet_minor} minor units, params {orjson.dumps(stored.params).decode()}",
        f"win        {stored.win_minor} minor units",
        f"balance    before {_shown(before)}, after {_shown(after)}",
        f"draws      {len(stored.draws)}: {' '.join(f'{v}/{n}' for n, v in stored.draws)}",
        f"outcome    {orjson.dumps(stored.state).decode()}",
    ]
    if stored.mode == "fair":
        fair = f"commitment {stored.commitment}, client seed {stored.client_seed!r}, nonce {stored.nonce}"
        lines.append(f"fair       {fair}")
    if check.reproduced:
        lines.append("replay     REPRODUCED: the stored draws give exactly the stored outcome and win")
    else:
        why = check.error or ", ".join(
            what
            for what, ok in (
                ("the outcome differs", check.state_matches),
                ("the win differs", check.win_matches),
                ("draws were left over", check.draws_all_used),
            )
            if not ok
        )
        lines.append(f"replay     MISMATCH: {why}")
        if check.replayed_state is not None and not check.state_matches:
            lines.append(f"replayed   {orjson.dumps(check.replayed_state).decode()}")
    return "\n".join(lines)
