"""The API reference at /docs (Swagger UI) and /redoc (ReDoc), working without internet: their
scripts and styles come from the `fastapi-offline` package and are served by this app, and the
pages hold no inline script (the Content-Security-Policy allows none)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"
_OURS = Path(__file__).parent / "docs_static"

_SWAGGER = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>GridGate cloud API</title>
<link rel="icon" href="{ASSETS}/favicon.png">
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
</head><body>
<div id="swagger-ui" data-openapi="/openapi.json"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="/docs/local/swagger-init.js"></script>
</body></html>"""

_REDOC = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>GridGate cloud API</title>
<link rel="icon" href="{ASSETS}/favicon.png">
</head><body>
<redoc spec-url="/openapi.json"></redoc>
<script src="{ASSETS}/redoc.standalone.js"></script>
</body></html>"""


def install(app: FastAPI) -> None:
    bundled = resources.files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(bundled)), name="docs-assets")
    app.mount("/docs/local", StaticFiles(directory=_OURS), name="docs-local")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return HTMLResponse(_SWAGGER)

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(_REDOC)
