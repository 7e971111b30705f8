"""Room photos: what an upload becomes, how a room refers to it, and the sizes it is served in.

A room's `images` list (stored with the room) holds, in display order, either a photo uploaded
through the API, as `img:<id>` (the id is the SHA-256 of the uploaded bytes, 32 hex digits), or
an image URL an admin gave. An upload is stored once per variant, under a name that contains its
content hash, so a stored object never changes: it is served with a year-long cache lifetime,
and uploading the same bytes again finds the photo already there.

    thumbnail  fits 320 x 320    gallery strips
    card       fits 800 x 800    search results
    full       fits 2048 x 2048  the room page
"""

from __future__ import annotations

import enum
import hashlib
import re

import msgspec

IMAGE_REF_PREFIX = "img:"
PHOTO_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_IMAGES_PER_ROOM = 20  # what a room's `images` list holds (rooms_routes.Images)


class Variant(enum.StrEnum):
    THUMBNAIL = "thumbnail"
    CARD = "card"
    FULL = "full"


VARIANT_BOX: dict[Variant, int] = {Variant.THUMBNAIL: 320, Variant.CARD: 800, Variant.FULL: 2048}


class Photo(msgspec.Struct, frozen=True, kw_only=True):
    """One image of a room as the API and the pages show it: a URL per variant (all three the
    same for an image given by URL)."""

    id: str
    thumbnail: str
    card: str
    full: str


def photo_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def url_photo_id(url: str) -> str:
    """The id of an image given by URL: a hash of it, so that it can be reordered and deleted too."""
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def image_ref(photo: str) -> str:
    return IMAGE_REF_PREFIX + photo


def ref_photo_id(entry: str) -> str | None:
    """The photo id of an `images` entry that refers to an upload, else None (a URL)."""
    if entry.startswith(IMAGE_REF_PREFIX) and PHOTO_ID.match(entry[len(IMAGE_REF_PREFIX) :]):
        return entry[len(IMAGE_REF_PREFIX) :]
    return None


def entry_id(entry: str) -> str:
    """The id of any `images` entry (an upload's or a URL's)."""
    return ref_photo_id(entry) or url_photo_id(entry)


def object_key(room_id: int, photo: str, variant: Variant) -> str:
    """Where one variant of an uploaded photo is stored: the content hash is in the name."""
    return f"rooms/{room_id}/{photo}-{variant.value}.jpg"


OBJECT_KEY = re.compile(r"^rooms/[1-9][0-9]{0,18}/[0-9a-f]{32}-(thumbnail|card|full)\.jpg$")
