"""`/docs`: Swagger UI over this API's own OpenAPI document, from files a package installs.

Swagger UI's files come from the swagger-ui-bundle-v2 package (`swagger_ui_bundle.swagger_ui_path`),
served under /docs/static/; nothing is fetched from outside at run time (its validator badge,
which would call an outside service, is turned off). The page and its start-up script are ours,
so that they point at /api/v1/openapi.json and need no inline script.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from roombook.http.endpoints import API_PREFIX

routes = web.RouteTableDef()

ASSETS = Path(str(swagger_ui_path))
# The files the page uses, and only those: no directory listing, nothing else of the package.
_SERVED = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
_ASSET_CACHE = "public, max-age=3600"  # the files change only with the package

_PAGE = b"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>roombook API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script src="/docs/static/swagger-ui-standalone-preset.js"></script>
  <script src="/docs/start.js"></script>
</body>
</html>
"""

_START = f"""window.addEventListener("load", function () {{
  window.ui = SwaggerUIBundle({{
    url: "{API_PREFIX}/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  }});
}});
""".encode()


@routes.get("/docs")
async def docs_page(request: web.Request) -> web.Response:
    return web.Response(body=_PAGE, content_type="text/html", charset="utf-8")


@routes.get("/docs/start.js")
async def docs_start(request: web.Request) -> web.Response:
    return web.Response(body=_START, content_type="text/javascript", charset="utf-8")


@routes.get("/docs/static/{name}")
async def docs_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in _SERVED:
        raise web.HTTPNotFound()
    return web.FileResponse(ASSETS / name, headers={"Content-Type": _SERVED[name], "Cache-Control": _ASSET_CACHE})
