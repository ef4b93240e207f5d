"""Provably fair draws: a committed server seed, a player's client seed and a nonce through HMAC-SHA256.

The scheme, so that anyone can recompute a round:

* The server seed is 32 bytes from the OS CSPRNG. Before any play, Croupier publishes its
  commitment ``sha256(server_seed).hexdigest()`` (SHA-256 of the raw 32 bytes, not of the hex).
* The player sets a client seed (any 1..128 printable characters); each round uses the next nonce
  (0, 1, 2, ...) of the seed pair.
* A round's byte stream is ``HMAC-SHA256(server_seed, f"{client_seed}:{nonce}:{cursor}")`` for
  ``cursor = 0, 1, 2, ...`` concatenated: a draw that needs more bytes than are left in the current
  32-byte block takes the next block.
* ``randbelow(n)``: take ``ceil(k / 8)`` bytes big-endian where ``k = bit_length(n - 1)``, keep the
  top ``k`` bits, and reject (take the next bytes) while the value is ``>= n``. Unbiased for every
  ``n``, unlike ``floor(float * n)``.
* Rotating the seed pair reveals the old server seed; its SHA-256 must equal the commitment.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rng.source import StreamSource

SERVER_SEED_BYTES = 32
CLIENT_SEED_MAX_CHARS = 128
BLOCK_BYTES = 32


def new_server_seed() -> bytes:
    """Return a fresh 32-byte server seed from the OS CSPRNG."""
    return secrets.token_bytes(SERVER_SEED_BYTES)


def new_client_seed() -> str:
    """Return a default client seed for a player who has not chosen one."""
    return secrets.token_hex(16)


def commitment(server_seed: bytes) -> str:
    """Return the published commitment: the SHA-256 hex digest of the raw server seed."""
    return hashlib.sha256(server_seed).hexdigest()


def check_commitment(server_seed: bytes, commitment_hex: str) -> bool:
    """Whether a revealed server seed matches the commitment published before play."""
    return hmac.compare_digest(commitment(server_seed), commitment_hex.strip().lower())


def parse_server_seed(server_seed_hex: str) -> bytes:
    """Decode a server seed given in hex, checking its length."""
    try:
        seed = bytes.fromhex(server_seed_hex.strip())
    except ValueError:
        raise ValueError("server seed must be hex") from None
    if len(seed) != SERVER_SEED_BYTES:
        raise ValueError(
            f"server seed must be {SERVER_SEED_BYTES} bytes ({SERVER_SEED_BYTES * 2} hex digits)"
        )
    return seed


def validate_client_seed(client_seed: str) -> str:
    """Check a client seed: 1..128 printable characters."""
    if not isinstance(client_seed, str) or not client_seed:
        raise ValueError("client seed must be a non-empty string")
    if len(client_seed) > CLIENT_SEED_MAX_CHARS:
        raise ValueError(f"client seed must be at most {CLIENT_SEED_MAX_CHARS} characters")
    if not client_seed.isprintable():
        raise ValueError("client seed must be printable")
    return client_seed


def _validate(server_seed: bytes, client_seed: str, nonce: int) -> None:
    if not isinstance(server_seed, bytes) or len(server_seed) != SERVER_SEED_BYTES:
        raise ValueError(f"server seed must be {SERVER_SEED_BYTES} bytes")
    validate_client_seed(client_seed)
    if isinstance(nonce, bool) or not isinstance(nonce, int) or nonce < 0:
        raise ValueError(f"nonce must be an int >= 0, got {nonce!r}")


def fair_block(server_seed: bytes, client_seed: str, nonce: int, cursor: int) -> bytes:
    """Return one 32-byte block: HMAC-SHA256(server_seed, f"{client_seed}:{nonce}:{cursor}")."""
    return hmac.digest(server_seed, f"{client_seed}:{nonce}:{cursor}".encode(), "sha256")


class FairSource(StreamSource):
    """The provably fair source of one round: rejection-sampled integers over the HMAC block stream."""

    def __init__(self, server_seed: bytes, client_seed: str, nonce: int) -> None:
        _validate(server_seed, client_seed, nonce)
        self._server_seed = server_seed
        self._client_seed = client_seed
        self._nonce = nonce
        self._block = b""
        self._offset = 0
        self._blocks = 0
        super().__init__(self._take)

    @property
    def nonce(self) -> int:
        """The round's nonce."""
        return self._nonce

    @property
    def blocks_used(self) -> int:
        """How many HMAC blocks the round has consumed (the cursor of the next block)."""
        return self._blocks

    def _take(self, size: int) -> bytes:
        end = self._offset + size
        if end <= len(self._block):
            # The common case: the draw fits in the current block.
            chunk = self._block[self._offset : end]
            self._offset = end
            return chunk
        out = bytearray()
        while len(out) < size:
            if self._offset == len(self._block):
                self._block = fair_block(self._server_seed, self._client_seed, self._nonce, self._blocks)
                self._blocks += 1
                self._offset = 0
            take = min(size - len(out), len(self._block) - self._offset)
            out += self._block[self._offset : self._offset + take]
            self._offset += take
        return bytes(out)


@dataclass(frozen=True)
class RevealedSeed:
    """A retired seed pair: the server seed is now public and can be checked against its commitment."""

    server_seed_hex: str
    commitment: str
    client_seed: str
    rounds: int

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form shown to the player."""
        return {
            "server_seed": self.server_seed_hex,
            "commitment": self.commitment,
            "client_seed": self.client_seed,
            "rounds": self.rounds,
        }


@dataclass(frozen=True)
class SeedPair:
    """A player's active seeds: secret server seed, client seed, and the nonce of the next round."""

    server_seed: bytes = field(repr=False)
    client_seed: str
    nonce: int = 0

    def __post_init__(self) -> None:
        _validate(self.server_seed, self.client_seed, self.nonce)

    @classmethod
    def new(cls, client_seed: str | None = None) -> SeedPair:
        """Start a pair with a fresh server seed and nonce 0."""
        return cls(new_server_seed(), client_seed if client_seed is not None else new_client_seed())

    @property
    def commitment(self) -> str:
        """The SHA-256 hex of the server seed, published before play."""
        return commitment(self.server_seed)

    def source(self) -> FairSource:
        """Return the source for the round that uses the current nonce."""
        return FairSource(self.server_seed, self.client_seed, self.nonce)

    def advance(self) -> SeedPair:
        """Return the pair after one round: the same seeds, the next nonce."""
        return SeedPair(self.server_seed, self.client_seed, self.nonce + 1)

    def public(self) -> dict[str, Any]:
        """Return what the player may see while the pair is active (never the server seed)."""
        return {"commitment": self.commitment, "client_seed": self.client_seed, "nonce": self.nonce}

    def rotate(self, client_seed: str | None = None) -> tuple[RevealedSeed, SeedPair]:
        """Retire this pair (revealing its server seed) and start a new one with a fresh server seed."""
        revealed = RevealedSeed(self.server_seed.hex(), self.commitment, self.client_seed, self.nonce)
        return revealed, SeedPair.new(client_seed if client_seed is not None else self.client_seed)


def replay_draws(server_seed: bytes, client_seed: str, nonce: int, ranges: Iterable[int]) -> list[int]:
    """Recompute a round's draws for the given ranges, in order."""
    source = FairSource(server_seed, client_seed, nonce)
    return [source.randbelow(n) for n in ranges]


@dataclass(frozen=True)
class DrawCheck:
    """One recorded draw beside its recomputation."""

    index: int
    n: int
    recorded: int
    recomputed: int

    @property
    def ok(self) -> bool:
        """Whether the recorded value is the recomputed one."""
        return self.recorded == self.recomputed


@dataclass(frozen=True)
class DrawVerification:
    """The result of recomputing a round's recorded draws from its seeds."""

    checks: tuple[DrawCheck, ...]
    blocks_used: int

    @property
    def ok(self) -> bool:
        """Whether every recorded draw was reproduced."""
        return all(check.ok for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "ok": self.ok,
            "blocks_used": self.blocks_used,
            "draws": [
                {"index": c.index, "n": c.n, "recorded": c.recorded, "recomputed": c.recomputed, "ok": c.ok}
                for c in self.checks
            ],
        }


def verify_draws(
    server_seed: bytes, client_seed: str, nonce: int, draws: Sequence[tuple[int, int]]
) -> DrawVerification:
    """Recompute every recorded ``(n, value)`` of a round from its seeds and nonce (game-independent)."""
    source = FairSource(server_seed, client_seed, nonce)
    checks = tuple(
        DrawCheck(index, int(n), int(value), source.randbelow(int(n)))
        for index, (n, value) in enumerate(draws)
    )
    return DrawVerification(checks, source.blocks_used)
