"""Loads provider adapters from the `croupier.providers` entry point group and validates them."""

from __future__ import annotations

from importlib.metadata import entry_points

from providers.base import Adapter

GROUP = "croupier.providers"


class PluginError(RuntimeError):
    """A provider plug-in is missing, broken or incomplete; raised at start, not on the first bet."""


def available() -> dict[str, type[Adapter]]:
    """Return every registered adapter class by name, each validated."""
    found: dict[str, type[Adapter]] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except (ImportError, AttributeError) as exc:
            raise PluginError(f"provider plug-in {ep.name!r} does not load: {exc}") from exc
        found[ep.name] = check(ep.name, cls)
    return found


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
