"""Photos for the demo catalogue, drawn here (no files shipped, nothing fetched): a few rooms of
`roombook seed` get two of them each, uploaded through the same path an admin's upload takes.

Each picture is a room in flat colours: a wall, a floor, a window with sky, a bed. The same index
draws the same picture on any machine.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from roombook.services.room_images import RoomImages

DEMO_PHOTO_ROOMS = 12  # rooms that get photos: enough for the first pages, small on disk
PHOTOS_PER_ROOM = 2
_SIZE = (1600, 1066)
_PALETTES = [  # wall, floor, sky, bed cover
    ((235, 226, 210), (150, 110, 80), (150, 200, 240), (60, 90, 140)),
    ((210, 225, 220), (120, 100, 90), (250, 190, 140), (190, 70, 60)),
    ((245, 240, 232), (170, 140, 110), (120, 170, 220), (80, 130, 90)),
    ((225, 215, 235), (110, 90, 80), (200, 220, 250), (200, 160, 60)),
    ((240, 228, 215), (140, 120, 100), (90, 130, 190), (120, 80, 130)),
    ((230, 235, 240), (160, 150, 140), (255, 210, 170), (50, 60, 70)),
]


def demo_photo(index: int) -> bytes:
    """A JPEG of a room, one of len(_PALETTES) designs."""
    wall, floor, sky, cover = _PALETTES[index % len(_PALETTES)]
    width, height = _SIZE
    image = Image.new("RGB", _SIZE, wall)
    draw = ImageDraw.Draw(image)
    horizon = int(height * 0.68)
    draw.rectangle((0, horizon, width, height), fill=floor)
    left = int(width * (0.12 + 0.1 * (index % 3)))
    draw.rectangle((left, 160, left + 420, 560), fill=(255, 255, 255))  # the window's frame
    for row in range(2):
        for col in range(2):
            x, y = left + 20 + col * 200, 180 + row * 190
            draw.rectangle((x, y, x + 180, y + 170), fill=sky)
    bed_left = int(width * 0.45)
    draw.rectangle((bed_left, horizon - 170, bed_left + 760, horizon + 160), fill=(250, 250, 250))
    draw.rectangle((bed_left, horizon - 60, bed_left + 760, horizon + 160), fill=cover)
    draw.rectangle((bed_left - 30, horizon - 330, bed_left, horizon + 200), fill=floor)  # the headboard
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


async def add_demo_photos(photos: RoomImages, room_ids: list[int]) -> int:
    """Give the first DEMO_PHOTO_ROOMS rooms their photos in place of the demo's image URLs."""
    pictures = [demo_photo(i) for i in range(len(_PALETTES))]
    added = 0
    for n, room_id in enumerate(room_ids[:DEMO_PHOTO_ROOMS]):
        room = await photos.catalogue_room(room_id)
        for url in room.images:
            await photos.remove_entry(room_id, url)
        for k in range(PHOTOS_PER_ROOM):
            await photos.add(room_id, pictures[(n + k) % len(pictures)])
            added += 1
    return added
