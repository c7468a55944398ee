"""``/docs``: Swagger UI from the package's own copy, and the published schemas.

FastAPI's own ``/docs`` loads Swagger UI from a CDN (unpinned, no integrity,
and nothing offline); this page loads the copy the web build puts in
``static/docs/`` (``swagger-ui-dist``, pinned in ``web/package.json``), so it
passes the strict Content-Security-Policy. ``/openapi.json`` is FastAPI's;
``/schema/frames.json`` is the WebSocket frames' JSON Schema
(``chatrelay.wire_schema``, the file ``make schema`` writes).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from chatrelay.wire_schema import json_schema

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>chatrelay API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-init.js"></script></body>
</html>
"""
NOT_BUILT_DOCS = """<!doctype html><meta charset="utf-8"><title>chatrelay API</title>
<h1>API docs</h1>
<p>The docs page comes with the web UI, which is not built in this install: run
<code>make web</code>. The OpenAPI document is at <a href="/openapi.json">/openapi.json</a>,
the WebSocket frames' JSON Schema at <a href="/schema/frames.json">/schema/frames.json</a>.</p>
"""


@cache
def _frames_schema() -> dict[str, Any]:
    return json_schema()


def mount_api_docs(app: FastAPI, static_dir: Path) -> None:
    """Add ``/docs`` (served from ``static_dir/docs``) and ``/schema/frames.json`` to ``app``."""
    bundle = static_dir / "docs" / "swagger-ui-bundle.js"

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_PAGE if bundle.is_file() else NOT_BUILT_DOCS)

    @app.get("/schema/frames.json", response_class=JSONResponse)
    async def frames_schema() -> dict[str, Any]:
        """The JSON Schema of the WebSocket frames (``ClientFrame``, ``ServerFrame``)."""
        return _frames_schema()
