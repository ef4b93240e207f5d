"""The games the house serves, each with the digest of the configuration (the maths) it was built from."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rng.games.base import GAME_NAMES, Game, config_dir, load_game


@dataclass(frozen=True, slots=True)
class Loaded:
    """A game built from one exact configuration text."""

    game: Game
    sha256: bytes
    config: str


def build(name: str, config: str) -> Game:
    """Build a game from a configuration text, as load_game does from a file."""
    with tempfile.TemporaryDirectory(prefix="croupier-game-") as tmp:
        (Path(tmp) / f"{name}.toml").write_text(config, encoding="utf-8")
        return load_game(name, Path(tmp))


class GameBook:
    """The current games, loaded once at start, and older configurations rebuilt on demand for recall."""

    def __init__(self, directory: Path | None = None) -> None:
        folder = directory or config_dir()
        self._current: dict[str, Loaded] = {}
        self._by_digest: dict[tuple[str, bytes], Game] = {}
        for name in GAME_NAMES:
            # Read once and built from that very text, so the digest is of what is played.
            text = (folder / f"{name}.toml").read_text(encoding="utf-8")
            loaded = Loaded(build(name, text), hashlib.sha256(text.encode()).digest(), text)
            self._current[name] = loaded
            self._by_digest[name, loaded.sha256] = loaded.game

    @property
    def names(self) -> tuple[str, ...]:
        """Return the names of the games served."""
        return tuple(self._current)

    def current(self, name: str) -> Loaded | None:
        """Return the game played now under a name, or None if there is no such game."""
        return self._current.get(name)

    def for_config(self, name: str, sha256: bytes, config: str) -> Game:
        """Return the game as it was configured for a stored round (cached by digest)."""
        game = self._by_digest.get((name, sha256))
        if game is None:
            if hashlib.sha256(config.encode()).digest() != sha256:
                raise ValueError("the stored configuration does not match its digest")
            game = build(name, config)
            self._by_digest[name, sha256] = game
        return game
