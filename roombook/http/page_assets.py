"""The pages' static files (CSS, JavaScript modules, the favicon), served under a content hash.

Every file is read once at start-up and served from memory under `/static/<hash>/<name>`, the hash
being over all the files together: a module's relative imports (`./api.js`) then resolve to the
same hashed directory, so one deploy's modules never mix with another's. A URL names exactly one
content, so it may be cached for a year (`immutable`); an old hash answers 404.
"""

from __future__ import annotations

import hashlib
import mimetypes
from importlib import resources

import msgspec
from aiohttp import web

STATIC_PREFIX = "/static"
LONG_CACHE = "public, max-age=31536000, immutable"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"}


class AssetBundle(msgspec.Struct, frozen=True, kw_only=True):
    """The files of roombook/http/static by name, and the hash that names this set of them."""

    digest: str
    files: dict[str, bytes]

    def url(self, name: str) -> str:
        if name not in self.files:
            raise KeyError(f"no static file {name!r}")
        return f"{STATIC_PREFIX}/{self.digest}/{name}"


def load_bundle() -> AssetBundle:
    root = resources.files("roombook.http") / "static"
    files = {
        entry.name: entry.read_bytes() for entry in sorted(root.iterdir(), key=lambda e: e.name) if entry.is_file()
    }
    digest = hashlib.sha256()
    for name, body in files.items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
    return AssetBundle(digest=digest.hexdigest()[:16], files=files)


ASSETS = web.AppKey("assets", AssetBundle)


async def serve_asset(request: web.Request) -> web.Response:
    bundle = request.app[ASSETS]
    name = request.match_info["name"]
    body = bundle.files.get(name)
    if request.match_info["digest"] != bundle.digest or body is None:
        raise web.HTTPNotFound()
    suffix = name[name.rfind(".") :]
    content_type = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return web.Response(body=body, content_type=content_type, headers={"Cache-Control": LONG_CACHE})


def add_assets(app: web.Application) -> None:
    app[ASSETS] = load_bundle()
    app.router.add_get(STATIC_PREFIX + "/{digest}/{name}", serve_asset)
