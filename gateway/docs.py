"""TODO: /docs (Swagger UI from swagger-ui-py's static files) and the Operator API's OpenAPI document."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
