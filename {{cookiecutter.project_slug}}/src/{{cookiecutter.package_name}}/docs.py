"""/docs (Swagger UI) and /redoc, with every script, stylesheet and icon served by the service.

FastAPI's own pages load Swagger UI and ReDoc from a public CDN, so they stay blank on a network
without one. Here the files come from the fastapi-offline package under /docs/assets, and each
page carries a Content-Security-Policy that allows what it uses and nothing from elsewhere.
Every other response keeps the middleware's `default-src 'none'`.
"""

import base64
import functools
import hashlib
import re
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
ASSETS_PATH = "/docs/assets"
ASSETS = files("fastapi_offline") / "static"

# Swagger UI would show a badge from swagger.io's online validator, which is handed the
# schema's address: a service's docs tell no one else where they are.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}

# ReDoc's sidebar shows Redocly's logo from their CDN (on every load, in every 2.x release);
# the bundle is served with that one address replaced by an empty image.
REDOC_BUNDLE = "redoc.standalone.js"
REDOC_LOGO_URL = "https://cdn.redoc.ly/redoc/logo-mini.svg"

# Both pages load the schema and the bundles from the service, and (Swagger UI's "Try it out"
# and "Authorize") call its API; the `data:` images are the icons inside swagger-ui.css.
_COMMON_POLICY = (
    "default-src 'none'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
)
# ReDoc styles itself with styled-components and perfect-scrollbar, which write <style>
# elements as they run, and runs its search index in a worker made from a blob.
_REDOC_POLICY = ("style-src 'self' 'unsafe-inline'", "worker-src blob:")

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _sha256(source: str) -> str:
    digest = hashlib.sha256(source.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def content_security_policy(html: str, *directives: str) -> str:
    """Scripts from the service, plus the page's own inline scripts by their hashes."""
    scripts = " ".join(["'self'", *map(_sha256, _INLINE_SCRIPT.findall(html))])
    return "; ".join([*_COMMON_POLICY, f"script-src {scripts}", *directives])


@functools.lru_cache(maxsize=8)
def swagger_ui_page(title: str, root_path: str, openapi_url: str) -> tuple[str, str]:
    """The page and its policy, made once per root path the app is mounted under."""
    page = get_swagger_ui_html(
        openapi_url=f"{root_path}{openapi_url}",
        title=f"{title} - Swagger UI",
        swagger_js_url=f"{root_path}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{root_path}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{root_path}{ASSETS_PATH}/favicon.png",
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
    )
    html = bytes(page.body).decode()
    return html, content_security_policy(html, "style-src 'self'")


@functools.lru_cache(maxsize=8)
def redoc_page(title: str, root_path: str, openapi_url: str) -> tuple[str, str]:
    page = get_redoc_html(
        openapi_url=f"{root_path}{openapi_url}",
        title=f"{title} - ReDoc",
        redoc_js_url=f"{root_path}{ASSETS_PATH}/{REDOC_BUNDLE}",
        redoc_favicon_url=f"{root_path}{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )
    html = bytes(page.body).decode()
    return html, content_security_policy(html, *_REDOC_POLICY)


@functools.cache
def redoc_bundle() -> bytes:
    bundle = (ASSETS / REDOC_BUNDLE).read_text(encoding="utf-8")
    return bundle.replace(REDOC_LOGO_URL, "data:,").encode()


def install_docs(app: FastAPI) -> None:
    """Adds the docs pages and their assets, if the app serves its OpenAPI schema."""
    openapi_url = app.openapi_url
    if openapi_url is None:
        return

    def root_path(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        html, policy = swagger_ui_page(app.title, root_path(request), openapi_url)
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        html, policy = redoc_page(app.title, root_path(request), openapi_url)
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})

    # Before the mount, which would otherwise serve the file as the package ships it.
    bundle_path = f"{ASSETS_PATH}/{REDOC_BUNDLE}"

    @app.api_route(bundle_path, methods=["GET", "HEAD"], include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(redoc_bundle(), media_type="text/javascript")

    app.mount(ASSETS_PATH, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs")
