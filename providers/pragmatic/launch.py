"""Integrator to Pragmatic: the signed game/url launch request and the getCasinoGames request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from providers.base import LaunchRequest
from providers.pragmatic import signing

DEFAULT_API_BASE_URL = "https://api.prerelease-env.biz"
GAME_URL_PATH = "/IntegrationService/v3/http/CasinoGameAPI/game/url/"
GAMES_PATH = "/IntegrationService/v3/http/CasinoGameAPI/getCasinoGames/"


def api_base(options: Mapping[str, Any]) -> str:
    """Return Pragmatic's API base URL for this account."""
    return str(options.get("launch_base_url", DEFAULT_API_BASE_URL)).rstrip("/")


def secure_login(options: Mapping[str, Any]) -> str:
    """Return the account's secureLogin, or raise ValueError if it is not configured."""
    login = options.get("secure_login")
    if not login:
        raise ValueError("pragmatic launches need the secure_login option")
    return str(login)


def launch_params(options: Mapping[str, Any], secret: bytes, launch: LaunchRequest) -> dict[str, str]:
    """Return the signed form of a game/url request for this launch."""
    params: dict[str, str | None] = {
        "secureLogin": secure_login(options),
        "symbol": launch.game_id,
        "language": launch.language,
        "playMode": "REAL" if launch.real else "DEMO",
        "platform": "MOBILE" if launch.device == "mobile" else "WEB",
        "lobbyUrl": launch.lobby_url,
        "cashierUrl": launch.cashier_url,
        "country": launch.country,
        "jurisdiction": launch.jurisdiction,
        "rtp": launch.rtp_variant,
        # Pragmatic's reality-check interval is in whole minutes.
        "rcInterval": None if launch.reality_check_s is None else str(-(-launch.reality_check_s // 60)),
    }
    if launch.real:
        # Demo play uses Pragmatic's play money: no token, no player, no wallet calls.
        params |= {"token": launch.token, "externalPlayerId": launch.user_id}
    return signing.sign({k: v for k, v in params.items() if v is not None}, secret)


def launch_url(options: Mapping[str, Any], secret: bytes, launch: LaunchRequest) -> str:
    """Return the game/url request with its signed parameters as the query string."""
    return f"{api_base(options)}{GAME_URL_PATH}?{urlencode(launch_params(options, secret, launch))}"


def games_request(options: Mapping[str, Any], secret: bytes) -> tuple[str, dict[str, str]]:
    """Return the URL and signed form of a getCasinoGames request."""
    return f"{api_base(options)}{GAMES_PATH}", signing.sign({"secureLogin": secure_login(options)}, secret)
