"""In-house games on the certified RNG: a video slot, European roulette and dice."""

from rng.games.base import GAME_NAMES, Game, GameResult, SimulationReport, load_game
from rng.games.par import ParSheet

__all__ = ["GAME_NAMES", "Game", "GameResult", "ParSheet", "SimulationReport", "load_game"]
