"""The Operator API's OpenAPI document and the /docs page that shows it.

The document validates as OpenAPI 3.1, names and summarises every operation, answers every error
as a problem, and lists exactly the routes the /v1 sub-app serves, so the two cannot drift. The
page is Swagger UI from the swagger-ui-py package, served by the gateway itself: a headless
Chromium loads it and must render every operation without a single request leaving the machine.
Needs Debian's `chromium` and `chromium-driver` and the `selenium` package (as test_house_page).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from api_support import *  # noqa: F403
from api_support import SPEC_PATH, ApiEnv, api_settings
from browser import CHROMIUM_FLAGS, WAIT_S, executables
from openapi_spec_validator import validate

from gateway import docs
from gateway.api.problems import PROBLEM_TYPE, Code
from gateway.app import create_app

ROOT = Path(__file__).resolve().parents[1]
WALLET_SPEC_PATH = ROOT / "docs" / "openapi" / "operator-wallet-v1.yaml"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
PROBLEM_REF = "#/components/schemas/Problem"


@cache
def document(path: Path = SPEC_PATH) -> dict[str, Any]:
    """Return an OpenAPI document as plain data."""
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local $ref to what it names."""
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Return every operation of a document by (METHOD, path)."""
    return {
        (method.upper(), path): item[method]
        for path, item in doc["paths"].items()
        for method in METHODS
        if method in item
    }


def routed_operations() -> set[tuple[str, str]]:
    """Return every (METHOD, path) the gateway's /v1 sub-app routes, as the sub-app registers them."""
    app = create_app(api_settings("postgresql://unused/db", "redis://unused"))
    subapps = [
        resource.get_info()["app"]
        for resource in app.router.resources()
        if isinstance(resource, web.PrefixedSubAppResource) and resource.get_info()["prefix"] == "/v1"
    ]
    assert len(subapps) == 1, "the Operator API is mounted once, at /v1"
    return {
        (route.method, resource.canonical)
        for resource in subapps[0].router.resources()
        for route in resource
        if route.method != "HEAD"  # aiohttp adds HEAD beside every GET
    }


# --- the document ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [SPEC_PATH, WALLET_SPEC_PATH], ids=["operator-api", "operator-wallet"])
def test_the_documents_are_valid_openapi_3_1(path: Path) -> None:
    """Both OpenAPI documents the page shows validate as OpenAPI 3.1."""
    doc = document(path)
    assert doc["openapi"].startswith("3.1.")
    validate(doc)


def test_every_operation_is_named_summarised_and_tagged() -> None:
    """Every operation has a unique operationId, a summary and a declared tag."""
    doc = document()
    tags = {tag["name"] for tag in doc["tags"]}
    ids = [op.get("operationId") for op in operations(doc).values()]
    assert all(ids), ids
    assert len(ids) == len(set(ids)), ids
    for key, op in operations(doc).items():
        assert op.get("summary", "").strip(), f"{key} has no summary"
        assert op.get("tags"), f"{key} has no tag"
        assert set(op["tags"]) <= tags, f"{key} has an undeclared tag"


def test_every_operation_answers_its_errors_as_problems() -> None:
    """Every operation declares 401 and a Problem default (413, 503, ...); every error is a Problem."""
    doc = document()
    for key, op in operations(doc).items():
        responses = op["responses"]
        assert "401" in responses, f"{key} does not declare 401"
        assert "default" in responses, f"{key} does not declare its default error"
        assert any(code.startswith("2") for code in responses), f"{key} declares no success"
        for code, response in responses.items():
            if code != "default" and int(code) < 400:
                continue
            content = resolve(doc, response)["content"]
            assert set(content) == {PROBLEM_TYPE}, f"{key} {code} is not problem+json"
            assert content[PROBLEM_TYPE]["schema"] == {"$ref": PROBLEM_REF}, f"{key} {code}"


def test_the_problem_codes_are_the_gateways_closed_set() -> None:
    """The Problem schema lists exactly the codes the gateway answers."""
    schema = document()["components"]["schemas"]["Problem"]
    assert set(schema["properties"]["code"]["enum"]) == {code.value for code in Code}
    assert set(schema["required"]) == {"type", "title", "status", "detail", "code"}


def test_the_document_and_the_router_list_the_same_operations() -> None:
    """Every route of the /v1 sub-app is in the document, and every operation in it is routed."""
    documented = set(operations(document()))
    routed = routed_operations()
    assert routed - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routed == set(), "documented operations with no route"


def test_the_gateway_ships_the_documents_it_serves() -> None:
    """The served documents are package data of the gateway and the very files under docs/openapi."""
    for name in docs.SPECS:
        shipped = docs.docs_dir() / name
        assert shipped.is_file(), f"{shipped} is missing (gateway/openapi/{name} links to docs/openapi)"
        assert shipped.read_bytes() == (ROOT / "docs" / "openapi" / name).read_bytes()
        assert shipped.samefile(ROOT / "docs" / "openapi" / name), f"{name} is a copy, not a link"
    assert {
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "swagger-ui.css",
    } <= docs.swagger_files()


def test_the_docker_build_has_the_documents_the_package_links_to() -> None:
    """The image's wheel is built with docs/openapi present, else the links ship as nothing."""
    stages = (ROOT / "Dockerfile").read_text(encoding="utf-8").split("\nFROM ")
    build_stage = next(stage for stage in stages if stage.splitlines()[0].endswith(" AS build"))
    copies = [line.split()[1:-1] for line in build_stage.splitlines() if line.startswith("COPY ")]
    sources = {source.rstrip("/") for sources in copies for source in sources}
    assert sources & {"docs", "docs/openapi", "."}, "the build stage must COPY docs/openapi docs/openapi"
    assert build_stage.index("docs") < build_stage.index("pip wheel")


# --- the pages over HTTP --------------------------------------------------------------------------


async def test_the_docs_page_is_public_and_loads_only_its_own_files(api: ApiEnv) -> None:
    """/docs needs no credentials, and names only the gateway's own files, under a strict policy."""
    async with api.client.get("/docs") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        page = await resp.text()
        policy = resp.headers["Content-Security-Policy"]
        assert resp.headers["Cache-Control"] == "no-cache"
    assert "script-src 'self';" in policy
    assert "default-src 'none'" in policy
    assert "<script>" not in page, "no inline script: the policy would refuse it"
    assert "http://" not in page
    assert "https://" not in page
    for src in (
        "/docs/static/swagger-ui-bundle.js",
        "/docs/static/swagger-ui-standalone-preset.js",
        "/docs/static/swagger-ui.css",
        "/docs/docs.js",
    ):
        assert f'"{src}"' in page
    async with api.client.get("/docs/docs.js") as resp:
        assert resp.status == 200
        script = await resp.text()
    assert '"/docs/operator-api-v1.yaml"' in script
    assert '"/docs/operator-wallet-v1.yaml"' in script
    assert "validatorUrl: null" in script, "the validator badge would call a public server"


async def test_the_specs_are_served_as_they_are_in_the_repository(api: ApiEnv) -> None:
    """GET /docs/<name>.yaml returns the document byte for byte, revalidated on every visit."""
    for name in docs.SPECS:
        async with api.client.get(f"/docs/{name}") as resp:
            assert resp.status == 200
            assert resp.content_type == "application/yaml"
            assert resp.headers["Cache-Control"] == "no-cache"
            assert await resp.read() == (ROOT / "docs" / "openapi" / name).read_bytes()
    async with api.client.get("/docs/operator-other-v1.yaml") as resp:
        assert resp.status == 404


async def test_swagger_files_are_served_cached_and_nothing_else(api: ApiEnv) -> None:
    """/docs/static/ serves Swagger UI's own files with a cache lifetime, and no path outside them."""
    async with api.client.get("/docs/static/swagger-ui-bundle.js") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/javascript"
        assert "max-age=86400" in resp.headers["Cache-Control"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        etag = resp.headers["ETag"]
        assert len(await resp.read()) == (docs.swagger_dir() / "swagger-ui-bundle.js").stat().st_size
    async with api.client.get("/docs/static/swagger-ui-bundle.js", headers={"If-None-Match": etag}) as resp:
        assert resp.status == 304
    async with api.client.get("/docs/static/swagger-ui.css") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/css"
    # Sent byte for byte (an HTTP client would tidy the dots away before sending).
    for path in (
        "/docs/static/nothing.js",
        "/docs/static/__init__.py",
        "/docs/static/..%2F__init__.py",
        "/docs/static/%2e%2e%2fcore.py",
        "/docs/static/%2e%2e/core.py",
        "/docs/static/../core.py",
        "/docs/static/../../gateway/app.py",
        "/docs/static/",
    ):
        status, body = await _raw_get(api, path)
        assert status in {404, 400}, path
        assert b"import" not in body, path


async def _raw_get(api: ApiEnv, path: str) -> tuple[int, bytes]:
    """Send a GET with exactly this request target; return the status and the whole answer."""
    server = api.client.server
    assert server.port is not None
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return int(answer.split(b" ", 2)[1]), answer


async def test_docs_slash_redirects_to_the_page(api: ApiEnv) -> None:
    """/docs/ sends the browser to /docs, whose page names its files by absolute path."""
    async with api.client.get("/docs/", allow_redirects=False) as resp:
        assert resp.status == 308
        assert resp.headers["Location"] == "/docs"


# --- the page in a browser ------------------------------------------------------------------------


# Collected in the page before its own scripts run, so a refused load or inline style is seen.
_WATCH_POLICY = (
    "window.__violations = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
)
_RENDERED = """
return Array.from(document.querySelectorAll('.opblock')).map(block => [
  block.querySelector('.opblock-summary-method').textContent.trim(),
  block.querySelector('.opblock-summary-path').getAttribute('data-path'),
]);
"""


def _drive(chromium: str, chromedriver: str, url: str, wallet_path: str, shot: Path) -> dict[str, Any]:
    """Open the docs page, read the operations it renders, switch to the wallet spec (in a thread)."""
    from selenium import webdriver  # noqa: PLC0415 -- imported only once the browser is known
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="croupier-chromium-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _WATCH_POLICY})
        browser.get(url)
        wait = WebDriverWait(browser, WAIT_S)
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".opblock .opblock-summary-path"))
        seen: dict[str, Any] = {
            "title": browser.find_element(By.CSS_SELECTOR, ".info .title").text,
            "operations": browser.execute_script(_RENDERED),
        }
        browser.save_screenshot(str(shot))
        # The top bar's list offers the Operator Wallet API too; choosing it renders that document.
        Select(browser.find_element(By.CSS_SELECTOR, ".topbar select")).select_by_visible_text(
            "Operator Wallet API"
        )
        wait.until(
            lambda b: any(path == wallet_path for _, path in b.execute_script(_RENDERED) if path is not None)
        )
        seen["wallet_title"] = browser.find_element(By.CSS_SELECTOR, ".info .title").text
        seen["wallet_operations"] = browser.execute_script(_RENDERED)
        seen["origin"] = browser.execute_script("return window.location.origin")
        seen["loaded"] = browser.execute_script(
            "return performance.getEntries().map(e => e.name).filter(n => /^[a-z]+:/.test(n))"
        )
        seen["violations"] = browser.execute_script("return window.__violations")
        seen["console"] = [entry["message"] for entry in browser.get_log("browser")]
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return seen


async def test_the_docs_page_renders_every_operation_in_chromium(api: ApiEnv, tmp_path: Path) -> None:
    """Swagger UI renders every operation of both documents, all from the gateway, under its policy."""
    chromium, chromedriver = executables()
    wallet_ops = operations(document(WALLET_SPEC_PATH))
    wallet_path = min(path for _, path in wallet_ops)
    url = str(api.client.make_url("/docs"))
    shot = tmp_path / "docs.png"
    seen = await asyncio.to_thread(_drive, chromium, chromedriver, url, wallet_path, shot)

    assert seen["title"].startswith(document()["info"]["title"])
    rendered = {(method.upper(), path) for method, path in seen["operations"]}
    assert rendered == set(operations(document()))
    for path in (
        "/v1/games",
        "/v1/sessions",
        "/v1/campaigns",
        "/v1/rounds/{id}",
        "/v1/players/{player_id}/block",
    ):
        assert path in {p for _, p in rendered}
    assert seen["wallet_title"].startswith(document(WALLET_SPEC_PATH)["info"]["title"])
    assert {(m.upper(), p) for m, p in seen["wallet_operations"]} == set(wallet_ops)

    # Nothing left the machine: the page, its scripts, styles, images and both documents all came
    # from the gateway (data: images are inline, not requests).
    origin = seen["origin"]
    assert origin == url.removesuffix("/docs")
    fetched = [name for name in seen["loaded"] if not name.startswith("data:")]
    assert f"{origin}/docs/operator-api-v1.yaml" in fetched
    assert f"{origin}/docs/operator-wallet-v1.yaml" in fetched
    assert f"{origin}/docs/static/swagger-ui-bundle.js" in fetched
    assert [name for name in fetched if not name.startswith(f"{origin}/")] == []
    assert seen["violations"] == [], "the Content-Security-Policy refused something the page needs"
    assert not [line for line in seen["console"] if "Content Security Policy" in line], seen["console"]
    assert shot.stat().st_size > 10_000
