"""Loads provider adapters from the `croupier.providers` entry point group and validates them."""

from __future__ import annotations

from importlib.metadata import entry_points

from providers.base import Adapter

GROUP = "croupier.providers"


class PluginError(RuntimeError):
    """A provider plug-in is missing, broken or incomplete; raised at start, not on the first bet."""


def names() -> list[str]:
    """Return the names of every registered provider plug-in."""
    return sorted(ep.name for ep in entry_points(group=GROUP))


def load(name: str) -> type[Adapter]:
    """Load and validate one registered adapter class."""
    matches = entry_points(group=GROUP, name=name)
    if not matches:
        raise PluginError(f"provider {name!r} is configured but no plug-in is registered")
    (ep,) = tuple(matches)[:1]
    try:
        cls = ep.load()
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"provider plug-in {name!r} does not load: {exc}") from exc
    return check(name, cls)


def available() -> dict[str, type[Adapter]]:
    """Return every registered adapter class by name, each validated."""
    return {name: load(name) for name in names()}


def check(name: str, cls: object) -> type[Adapter]:
    """Return the class if it is a complete adapter registered under its own name."""
    if not isinstance(cls, type) or not issubclass(cls, Adapter):
        raise PluginError(f"provider plug-in {name!r} is not an Adapter subclass")
    try:
        cls.validate()
    except TypeError as exc:
        raise PluginError(str(exc)) from exc
    if cls.name != name:
        raise PluginError(f"provider plug-in {name!r} calls itself {cls.name!r}")
    return cls
