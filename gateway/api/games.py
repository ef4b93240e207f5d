"""To be written: this module's Operator API endpoints."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
