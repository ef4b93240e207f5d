"""/docs: Swagger UI on the Operator API's OpenAPI document, from swagger-ui-py's files; no network."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from aiohttp import web

routes = web.RouteTableDef()

# The documents the page offers, the first being the one it opens on.
SPECS = ("operator-api-v1.yaml", "operator-wallet-v1.yaml")
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".map": "application/json",
    ".html": "text/html; charset=utf-8",
    ".yaml": "application/yaml; charset=utf-8",
}
# Swagger UI sets inline styles and uses data: images; every script, style sheet, image and
# request comes from the gateway itself.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Swagger UI's files change only when the pinned package does; a day's caching spares the 1.5 MB
# bundle on every visit, and ETag/Last-Modified revalidate after.
STATIC_CACHE = "public, max-age=86400"
# The page and the specs are revalidated on every visit, so an edited spec shows at once.
FRESH_CACHE = "no-cache"


def docs_dir() -> Path:
    """Return the folder of the page and the OpenAPI documents (package data of the gateway)."""
    return Path(str(resources.files("gateway").joinpath("openapi")))


def swagger_dir() -> Path:
    """Return the folder of Swagger UI's files in the swagger-ui-py package."""
    return Path(str(resources.files("swagger_ui").joinpath("static")))


@cache
def swagger_files() -> frozenset[str]:
    """Return the names of Swagger UI's files: nothing else is served from under /docs/static/."""
    return frozenset(entry.name for entry in swagger_dir().iterdir() if entry.is_file())


def _file(path: Path, cache_control: str, **headers: str) -> web.FileResponse:
    content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": content_type,
            "Cache-Control": cache_control,
            "X-Content-Type-Options": "nosniff",
            **headers,
        },
    )


@routes.get("/docs")
async def page(_request: web.Request) -> web.StreamResponse:
    """Serve the docs page: Swagger UI on the Operator API and the Operator Wallet API."""
    return _file(docs_dir() / "index.html", FRESH_CACHE, **{"Content-Security-Policy": PAGE_POLICY})


@routes.get("/docs/")
async def page_slash(_request: web.Request) -> web.StreamResponse:
    """Send /docs/ to /docs, whose page loads its files by absolute path."""
    raise web.HTTPPermanentRedirect("/docs")


@routes.get("/docs/docs.js")
async def start_script(_request: web.Request) -> web.StreamResponse:
    """Serve the script that starts Swagger UI on the gateway's documents."""
    return _file(docs_dir() / "docs.js", FRESH_CACHE)


@routes.get("/docs/static/{name}")
async def swagger_static(request: web.Request) -> web.StreamResponse:
    """Serve one of Swagger UI's own files, by its exact name."""
    name = request.match_info["name"]
    if name not in swagger_files():
        raise web.HTTPNotFound(text=f"no file {name} in Swagger UI")
    return _file(swagger_dir() / name, STATIC_CACHE)


# Exactly the names in SPECS.
@routes.get(r"/docs/{spec:operator-(?:api|wallet)-v1\.yaml}")
async def spec(request: web.Request) -> web.StreamResponse:
    """Serve one of the OpenAPI documents."""
    return _file(docs_dir() / request.match_info["spec"], FRESH_CACHE)
