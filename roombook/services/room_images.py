"""Room photos: uploads checked by decoding them, resized once into their variants, stored in the
object store, listed in the room's `images` (see roombook/domain/images.py), and served by URL.

Validation decodes the upload with Pillow: its declared type and file name are not believed. An
upload is refused (nothing stored) if it is over `max_bytes`, not a JPEG, PNG or WebP, smaller
than `min_side_px` or larger than `max_pixels`, or corrupt; a file name with a path in it is
refused too. The variants are JPEGs (EXIF orientation applied, metadata dropped, transparency
laid on white), rendered in a worker thread.

Writes, and what a failure leaves: the variants are put first, then the room's list changes by a
compare-and-set that commits room.updated with it (caches and the index follow). A process that
dies between the two leaves objects no room lists: harmless (their names are their content's
hash, so the upload's retry writes the same ones and then lists them). A removal changes the
list first and deletes the objects after, so a room never lists a photo that is gone.
"""

from __future__ import annotations

import asyncio
import io
import urllib.parse
import warnings
from collections.abc import Callable, Sequence

import msgspec
from PIL import Image, ImageOps, UnidentifiedImageError

from roombook.domain.errors import ImageTooLarge, InvalidImage, StoreUnavailable, UnknownImage, UnknownRoom
from roombook.domain.images import (
    MAX_IMAGES_PER_ROOM,
    VARIANT_BOX,
    Photo,
    Variant,
    entry_id,
    image_ref,
    object_key,
    photo_id,
    ref_photo_id,
)
from roombook.domain.rooms import Room
from roombook.storage.ports import AvailabilityStore, ObjectStore

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
JPEG_QUALITY = 85
_CHANGE_ATTEMPTS = 8  # compare-and-set rounds against concurrent edits of one room's list


class ImageLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_bytes: int = 10 * 2**20
    max_pixels: int = 40_000_000
    min_side_px: int = 64


def check_file_name(name: str | None) -> None:
    """A name is a label, never a path: separators, parent steps and control characters are refused,
    percent-encoded ones too (some clients encode the name, and a path in disguise is still one)."""
    if name is None:
        return
    name = urllib.parse.unquote(name)
    if not name or len(name) > 255 or any(c in name for c in "/\\\0") or name in (".", "..") or ".." in name:
        raise InvalidImage(f"the file name {name!r} must be a plain name, without a path")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidImage("the file name has control characters")


def render_variants(data: bytes, limits: ImageLimits) -> dict[Variant, bytes]:
    """Each variant as a JPEG, or InvalidImage if `data` is not an image we accept."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on palettes and EXIF, not faults
            with Image.open(io.BytesIO(data)) as probe:
                _check_header(probe, limits)
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                upright = ImageOps.exif_transpose(image)
                flat = _on_white(upright)
    except InvalidImage:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(f"not an image we accept: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:  # Pillow's corrupt-file errors
        raise InvalidImage(f"the image is damaged: {type(exc).__name__}") from exc
    variants = {}
    for variant, box in VARIANT_BOX.items():
        copy = flat.copy()
        copy.thumbnail((box, box), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        copy.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
        variants[variant] = out.getvalue()
    return variants


def _check_header(image: Image.Image, limits: ImageLimits) -> None:
    if image.format not in ACCEPTED_FORMATS:
        raise InvalidImage(f"{image.format or 'this format'} is not accepted: send a JPEG, PNG or WebP")
    width, height = image.size
    if width * height > limits.max_pixels:
        raise InvalidImage(f"{width} x {height} pixels is over the limit of {limits.max_pixels}")
    if min(width, height) < limits.min_side_px:
        raise InvalidImage(f"{width} x {height} pixels: each side must be at least {limits.min_side_px}")


def _on_white(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return image.convert("RGB")


class RoomImages:
    """Adds, orders and removes a room's photos, and says where each variant is served."""

    def __init__(
        self,
        *,
        catalogue: AvailabilityStore,
        objects: ObjectStore,
        limits: ImageLimits | None = None,
        media_path: str = "/media",
    ) -> None:
        self._catalogue = catalogue
        self._objects = objects
        self.limits = limits or ImageLimits()
        self._media_path = media_path.rstrip("/")

    async def add(self, room_id: int, data: bytes, *, file_name: str | None = None) -> Photo:
        """Store the upload's variants and list it last on the room (the same bytes again: listed once)."""
        check_file_name(file_name)
        if len(data) > self.limits.max_bytes:
            raise ImageTooLarge(f"an image is at most {self.limits.max_bytes} bytes")
        room = await self._room(room_id)
        ref = image_ref(photo_id(data))
        if ref not in room.images and len(room.images) >= MAX_IMAGES_PER_ROOM:
            raise InvalidImage(f"a room has at most {MAX_IMAGES_PER_ROOM} images")
        variants = await asyncio.to_thread(render_variants, data, self.limits)
        for variant, blob in variants.items():
            await self._objects.put(object_key(room_id, photo_id(data), variant), blob, content_type="image/jpeg")

        def append(images: list[str]) -> list[str]:
            if ref in images:
                return images
            if len(images) >= MAX_IMAGES_PER_ROOM:
                raise InvalidImage(f"a room has at most {MAX_IMAGES_PER_ROOM} images")
            return [*images, ref]

        await self._change(room_id, append)
        return await self.photo(room_id, ref)

    async def reorder(self, room_id: int, order: Sequence[str]) -> list[Photo]:
        """Put the room's images in `order` (their ids, each exactly once)."""

        def arrange(images: list[str]) -> list[str]:
            by_id = {entry_id(entry): entry for entry in images}
            if sorted(order) != sorted(by_id) or len(by_id) != len(images):
                raise InvalidImage("order must list the id of every image of the room, each once")
            return [by_id[i] for i in order]

        room = await self._change(room_id, arrange)
        return await self.photos(room)

    async def remove(self, room_id: int, image_id: str) -> None:
        removed: list[str] = []

        def drop(images: list[str]) -> list[str]:
            kept = [entry for entry in images if entry_id(entry) != image_id]
            if len(kept) == len(images):
                raise UnknownImage(f"room {room_id} has no image {image_id}")
            removed[:] = [entry for entry in images if entry_id(entry) == image_id]
            return kept

        await self._change(room_id, drop)
        uploads = [p for entry in removed if (p := ref_photo_id(entry)) is not None]
        await self._objects.delete([object_key(room_id, p, v) for p in uploads for v in Variant])

    async def remove_entry(self, room_id: int, entry: str) -> None:
        """remove() by the entry itself (an image URL, say)."""
        await self.remove(room_id, entry_id(entry))

    async def catalogue_room(self, room_id: int) -> Room:
        """The room as stored (uploads as img:<id>), or UnknownRoom."""
        return await self._room(room_id)

    async def _room(self, room_id: int) -> Room:
        room = await self._catalogue.room(room_id)
        if room is None:
            raise UnknownRoom(f"no room {room_id}")
        return room

    async def _change(self, room_id: int, edit: Callable[[list[str]], list[str]]) -> Room:
        """Apply `edit` to the room's list by compare-and-set, again if another edit came first."""
        for _ in range(_CHANGE_ATTEMPTS):
            room = await self._room(room_id)
            images = edit(list(room.images))
            if images == room.images:
                return room
            swapped = await self._catalogue.set_room_images(room_id, room.images, images)
            if swapped is None:
                raise UnknownRoom(f"no room {room_id}")
            if swapped:
                return msgspec.structs.replace(room, images=images)
        raise StoreUnavailable(f"room {room_id}'s images kept changing: try again")

    # -- serving ---------------------------------------------------------------------------------

    async def photo(self, room_id: int, entry: str) -> Photo:
        photo = ref_photo_id(entry)
        if photo is None:
            return Photo(id=entry_id(entry), thumbnail=entry, card=entry, full=entry)
        urls = [await self._url(object_key(room_id, photo, v)) for v in (Variant.THUMBNAIL, Variant.CARD, Variant.FULL)]
        return Photo(id=photo, thumbnail=urls[0], card=urls[1], full=urls[2])

    async def photos(self, room: Room) -> list[Photo]:
        return [await self.photo(room.id, entry) for entry in room.images]

    async def served(self, room: Room) -> Room:
        """The room as the API and pages show it: `images` as the full variants' URLs, `photos` filled in."""
        if not room.images:
            return room
        photos = await self.photos(room)
        return msgspec.structs.replace(room, images=[p.full for p in photos], photos=photos)

    async def _url(self, key: str) -> str:
        return await self._objects.url(key) or f"{self._media_path}/{key}"
