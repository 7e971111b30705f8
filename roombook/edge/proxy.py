"""Forwarding one request to a front: headers in and out, bodies streamed both ways.

What travels: every end-to-end header (hop-by-hop ones, and those the Connection header names,
stop here), plus X-Forwarded-For/-Proto/-Host and X-Request-ID; the body as it arrives (a body
without a length is counted and cut at the cap). Small answers are read whole and sent in one
write, larger ones streamed. Bytes pass untouched: the edge's client never decompresses, never
keeps a cookie and adds no header of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from roombook.services.request_context import accepted_request_id

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer"}
    | {"trailers", "transfer-encoding", "upgrade"}
)
REQUEST_ID = "X-Request-ID"
BUFFERED_ANSWER_BYTES = 256 * 1024  # answers up to this size go out in one write


class BodyTooLarge(Exception):
    """A body sent without a length ran past the cap while it streamed."""


def request_id_of(request: web.Request) -> str:
    """The client's X-Request-ID if it is a sane token (it reaches logs), else a new one: the rule
    the fronts apply, so the id the edge sends on is the one their logs and events carry."""
    return accepted_request_id(request.headers.get(REQUEST_ID))


def client_address(request: web.Request, trusted_hops: int) -> str:
    """The address to rate-limit: the peer's, or with trusted proxies in front, the address the
    outermost trusted one saw (an untrusted client may prepend anything to X-Forwarded-For)."""
    peer = request.remote or "unknown"
    if trusted_hops == 0:
        return peer
    chain = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()] + [peer]
    return chain[max(0, len(chain) - 1 - trusted_hops)]


def end_to_end(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    named = {h.strip().lower() for value in headers.getall("Connection", ()) for h in value.split(",")}
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP and k.lower() not in named)


def upstream_headers(
    request: web.Request, *, request_id: str, trusted_hops: int, body_buffered: bool, strip_credentials: bool
) -> CIMultiDict[str]:
    headers = end_to_end(request.headers)
    headers.popall("Host", None)
    if body_buffered:  # the client library sets the length of the bytes it sends
        headers.popall("Content-Length", None)
    if strip_credentials:  # a global read answered outside the user's region needs none of theirs
        headers.popall("Authorization", None)
        headers.popall("Cookie", None)
    peer = request.remote or "unknown"
    forwarded = request.headers.get("X-Forwarded-For") if trusted_hops else None
    headers["X-Forwarded-For"] = f"{forwarded}, {peer}" if forwarded else peer
    trusted_proto = request.headers.get("X-Forwarded-Proto") if trusted_hops else None
    headers["X-Forwarded-Proto"] = trusted_proto or request.scheme
    headers["X-Forwarded-Host"] = request.host
    headers[REQUEST_ID] = request_id
    return headers


class CappedBody:
    """A request body streamed on as it arrives, cut once it passes `limit` bytes (the client
    library reports the cut as its own error: `exceeded` says why)."""

    def __init__(self, stream: aiohttp.StreamReader, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self.exceeded = False

    async def chunks(self) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in self._stream.iter_any():
            sent += len(chunk)
            if sent > self._limit:
                self.exceeded = True
                raise BodyTooLarge(f"body over {self._limit} bytes")
            yield chunk


async def forward(
    request: web.Request,
    session: aiohttp.ClientSession,
    base_url: str,
    *,
    headers: CIMultiDict[str],
    body: bytes | None,
    max_body_bytes: int,
    request_id: str,
) -> web.StreamResponse:
    """Send the request to base_url and relay the answer. Raises aiohttp.ClientError (or
    TimeoutError) when the front does not answer, BodyTooLarge when the body runs past the cap."""
    data: object = body
    capped = None
    if body is None and request.body_exists:
        capped = CappedBody(request.content, max_body_bytes)
        data = capped.chunks()
    url = URL(base_url + request.raw_path, encoded=True)
    try:
        return await _relay(request, session, url, headers=headers, data=data, request_id=request_id)
    except (aiohttp.ClientError, TimeoutError) as exc:
        if capped is not None and capped.exceeded:
            raise BodyTooLarge(str(exc)) from exc
        raise


async def _relay(
    request: web.Request,
    session: aiohttp.ClientSession,
    url: URL,
    *,
    headers: CIMultiDict[str],
    data: object,
    request_id: str,
) -> web.StreamResponse:
    async with session.request(request.method, url, headers=headers, data=data, allow_redirects=False) as upstream:
        answer_headers = end_to_end(upstream.headers)
        answer_headers[REQUEST_ID] = request_id
        length = upstream.content_length
        if request.method == "HEAD":  # no body; the length is the one a GET would have had
            return web.Response(status=upstream.status, reason=upstream.reason, headers=answer_headers)
        if length is not None and length <= BUFFERED_ANSWER_BYTES:
            payload = await upstream.read()
            answer_headers.popall("Content-Length", None)
            return web.Response(status=upstream.status, reason=upstream.reason, headers=answer_headers, body=payload)
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=answer_headers)
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response
