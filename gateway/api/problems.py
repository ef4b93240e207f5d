"""Errors of the Operator API: one closed set of codes, answered as RFC 9457 problem details."""

from __future__ import annotations

import logging
from enum import StrEnum

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"


class Code(StrEnum):
    """Every error code the Operator API answers; the OpenAPI spec lists the same set."""

    INVALID_REQUEST = "invalid_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    GAME_UNAVAILABLE = "game_unavailable"
    PLAYER_BLOCKED = "player_blocked"
    LIMIT_EXCEEDED = "limit_exceeded"
    UNAVAILABLE = "unavailable"
    INTERNAL_ERROR = "internal_error"


TITLES = {
    Code.INVALID_REQUEST: "The request is malformed",
    Code.UNAUTHORIZED: "The request's credentials are missing or wrong",
    Code.FORBIDDEN: "The operator may not do this",
    Code.NOT_FOUND: "No such resource for this operator",
    Code.METHOD_NOT_ALLOWED: "The method is not allowed here",
    Code.CONFLICT: "The resource's state does not allow this",
    Code.PAYLOAD_TOO_LARGE: "The request body is too large",
    Code.UNSUPPORTED_MEDIA_TYPE: "The body must be JSON",
    Code.GAME_UNAVAILABLE: "The game is not available for this launch",
    Code.PLAYER_BLOCKED: "The player is blocked or self-excluded",
    Code.LIMIT_EXCEEDED: "A responsible-gaming limit does not allow this",
    Code.UNAVAILABLE: "A backing service did not answer; retry later",
    Code.INTERNAL_ERROR: "Internal error",
}

_BY_STATUS = {
    400: Code.INVALID_REQUEST,
    401: Code.UNAUTHORIZED,
    403: Code.FORBIDDEN,
    404: Code.NOT_FOUND,
    405: Code.METHOD_NOT_ALLOWED,
    409: Code.CONFLICT,
    413: Code.PAYLOAD_TOO_LARGE,
    415: Code.UNSUPPORTED_MEDIA_TYPE,
    503: Code.UNAVAILABLE,
}


class ApiError(Exception):
    """An Operator API request failed with one of the closed set of codes."""

    def __init__(self, status: int, code: Code, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def problem(status: int, code: Code, detail: str) -> web.Response:
    """Return a problem-details response."""
    body = {
        "type": f"/problems/{code.value}",
        "title": TITLES[code],
        "status": status,
        "detail": detail,
        "code": code.value,
    }
    return web.Response(body=orjson.dumps(body), status=status, content_type=PROBLEM_TYPE)


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every Operator API failure as problem details, never an HTML page or a trace."""
    try:
        return await handler(request)
    except ApiError as exc:
        return problem(exc.status, exc.code, exc.detail)
    except web.HTTPException as exc:
        if exc.status < 400:  # noqa: PLR2004 -- redirects pass through
            raise
        return problem(exc.status, _BY_STATUS.get(exc.status, Code.INTERNAL_ERROR), exc.text or exc.reason)
    except Exception:  # the last line of defence: log it, answer 500, never a bare trace
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, Code.INTERNAL_ERROR, "internal error")
