"""Middleware: a request id on every request, and JSON bodies for every error."""

from __future__ import annotations

import logging
import uuid
from http import HTTPStatus

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.api.problems import Code, problem

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
API_PREFIX = "/v1/"
REQUEST_ID = web.RequestKey("request_id", str)


@web.middleware
async def request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take the caller's request id or make one, and echo it on the response."""
    rid = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
    if len(rid) > 128:  # noqa: PLR2004 -- a request id longer than this is not one
        rid = uuid.uuid4().hex
    request[REQUEST_ID] = rid
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = rid
        raise
    response.headers[REQUEST_ID_HEADER] = rid
    return response


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's HTTP errors and unexpected failures into JSON bodies."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:  # noqa: PLR2004 -- redirects pass through
            raise
        if request.path.startswith(API_PREFIX):
            # An unrouted path under the Operator API still answers in the API's own format.
            code = Code.NOT_FOUND if exc.status == HTTPStatus.NOT_FOUND else Code.INVALID_REQUEST
            return problem(exc.status, code, exc.text or exc.reason)
        return web.json_response(
            {"status": "ERROR", "code": exc.reason.upper().replace(" ", "_"), "message": exc.text},
            status=exc.status,
        )
    except Exception:  # the last line of defence: log it, answer 500 in JSON, never a bare trace
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response(
            {"status": "ERROR", "code": "INTERNAL_ERROR", "message": "internal error"}, status=500
        )
