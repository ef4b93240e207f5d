"""Croupier's own games (slot, roulette, dice) as a provider: a player API on the same wallet core."""
