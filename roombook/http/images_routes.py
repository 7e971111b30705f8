"""/rooms/{room_id}/images: admins upload, order and remove a room's photos; /media serves the
embedded object store's photos.

An upload is the image itself as the body (Content-Type image/jpeg, image/png or image/webp), or
multipart/form-data with the image in a part named `image`. The body is read here, up to the
limit and no further, rather than by aiohttp's 64 KiB body limit for JSON: a declared length over
the limit is refused before a byte is read, a longer body as soon as it passes the limit.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from aiohttp import BodyPartReader, StreamReader, web
from aiohttp.http_exceptions import HttpProcessingError

from roombook.domain.errors import ImageTooLarge, InvalidImage, UnknownRoom
from roombook.domain.images import MAX_IMAGES_PER_ROOM, OBJECT_KEY, PHOTO_ID, Photo
from roombook.domain.rooms import MAX_ROOM_ID
from roombook.http.authn import require_admin
from roombook.http.endpoints import Endpoints, json_response, read_body
from roombook.http.keys import CACHE, OBJECTS, PHOTOS
from roombook.http.problems import ProblemError
from roombook.storage.cache.keys import room_details_key

api = Endpoints()  # under /api/v1
routes = web.RouteTableDef()  # /media, beside the pages

MEDIA_PATH = "/media"
RAW_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
IMMUTABLE = "public, max-age=31536000, immutable"
MULTIPART_SLACK = 16 * 1024  # a form's boundaries and part headers, on top of the image
RoomId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ROOM_ID)]
PhotoIdParam = Annotated[str, msgspec.Meta(pattern=PHOTO_ID.pattern)]
_FILE_NAME = re.compile(r"""filename\*?=(?:UTF-8''|")?([^";]*)"?""", re.IGNORECASE)


class ImageOrder(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every image id of the room, each once, in the order to show them."""

    order: Annotated[list[PhotoIdParam], msgspec.Meta(max_length=MAX_IMAGES_PER_ROOM)]


class Photos(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Photo]


def _room_id(request: web.Request) -> int:
    raw = request.match_info["room_id"]
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_ROOM_ID:
        raise UnknownRoom("no such room")
    return int(raw)


@api.post(
    "/rooms/{room_id}/images",
    summary="Upload a photo of a room (the image as the body, or multipart/form-data with a part `image`)",
    path_params={"room_id": RoomId},
    upload=tuple(sorted(RAW_TYPES)),
    response=Photo,
    status=201,
    auth="admin",
    errors=(401, 403, 404, 413, 415, 422, 503),
)
async def upload_image(request: web.Request) -> web.Response:
    require_admin(request)
    room_id = _room_id(request)
    photos = request.app[PHOTOS]
    limit = photos.limits.max_bytes
    if request.content_type == "multipart/form-data":
        data, file_name = await _read_form(request, limit)
    elif request.content_type in RAW_TYPES:
        _refuse_declared_length(request, limit)
        data = await _read_capped(request.content, limit)
        match = _FILE_NAME.search(request.headers.get("Content-Disposition", ""))
        file_name = match.group(1) if match else None
    else:
        raise ProblemError(
            415,
            "unsupported-media-type",
            "Unsupported Media Type",
            "send the image as image/jpeg, image/png or image/webp, or as multipart/form-data",
        )
    photo = await photos.add(room_id, data, file_name=file_name)
    await _forget_details(request, room_id)
    return json_response(photo, status=201)


async def _forget_details(request: web.Request, room_id: int) -> None:
    """This process shows the change at once; room.updated (committed with it) tells the others."""
    await request.app[CACHE].delete([room_details_key(room_id)])


def _refuse_declared_length(request: web.Request, limit: int) -> None:
    if request.content_length is not None and request.content_length > limit:
        raise ImageTooLarge(f"an image is at most {limit} bytes")


async def _read_capped(stream: StreamReader | BodyPartReader, limit: int) -> bytes:
    """The body, or ImageTooLarge as soon as it passes `limit` bytes (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await (stream.read_chunk(64 * 1024) if isinstance(stream, BodyPartReader) else stream.read(64 * 1024))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise ImageTooLarge(f"an image is at most {limit} bytes")
        chunks.append(chunk)


async def _read_form(request: web.Request, limit: int) -> tuple[bytes, str | None]:
    if request.content_length is not None and request.content_length > limit + MULTIPART_SLACK:
        raise ImageTooLarge(f"an image is at most {limit} bytes")
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.name == "image":
                return await _read_capped(part, limit), part.filename
    except (ValueError, HttpProcessingError) as exc:  # a form aiohttp cannot parse
        raise InvalidImage(f"not a multipart form: {type(exc).__name__}") from exc
    raise InvalidImage("the form has no part named image")


@api.put(
    "/rooms/{room_id}/images",
    summary="Order a room's photos",
    path_params={"room_id": RoomId},
    request=ImageOrder,
    response=Photos,
    auth="admin",
    errors=(401, 403, 404, 415, 422, 503),
)
async def order_images(request: web.Request) -> web.Response:
    require_admin(request)
    room_id = _room_id(request)
    body = await read_body(request, ImageOrder)
    ordered = await request.app[PHOTOS].reorder(room_id, body.order)
    await _forget_details(request, room_id)
    return json_response(Photos(items=ordered))


@api.delete(
    "/rooms/{room_id}/images/{image_id}",
    summary="Remove a photo from a room",
    path_params={"room_id": RoomId, "image_id": PhotoIdParam},
    status=204,
    auth="admin",
    errors=(401, 403, 404, 503),
)
async def delete_image(request: web.Request) -> web.Response:
    require_admin(request)
    room_id = _room_id(request)
    image_id = request.match_info["image_id"]
    if not PHOTO_ID.match(image_id):
        raise ProblemError(404, "not-found", "Not found", f"room {room_id} has no image {image_id}")
    await request.app[PHOTOS].remove(room_id, image_id)
    await _forget_details(request, room_id)
    return web.Response(status=204)


@routes.get(MEDIA_PATH + "/{key:.+}")
async def media(request: web.Request) -> web.Response:
    """A stored photo variant. Its name carries its content's hash, so it never changes: shared
    caches and browsers keep it a year."""
    key = request.match_info["key"]
    data = await request.app[OBJECTS].get(key) if OBJECT_KEY.match(key) else None
    if data is None:
        raise ProblemError(404, "not-found", "Not found", "no such photo")
    return web.Response(
        body=data,
        content_type="image/jpeg",
        headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "Content-Security-Policy": "default-src 'none'",
        },
    )
