"""What an upload must be, decided by decoding it: the variants of an accepted photo, and every
kind of refusal (nothing here touches a store)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from roombook.domain.errors import InvalidImage
from roombook.domain.images import VARIANT_BOX, Variant, entry_id, image_ref, object_key, photo_id, ref_photo_id
from roombook.services.room_images import ImageLimits, check_file_name, render_variants

LIMITS = ImageLimits()


def encoded(size: tuple[int, int], fmt: str, mode: str = "RGB", **save: object) -> bytes:
    out = io.BytesIO()
    color = {"RGBA": (10, 200, 30, 0), "L": 120}.get(mode, (10, 200, 30))
    Image.new(mode, size, color).save(out, fmt, **save)
    return out.getvalue()


@pytest.mark.parametrize(("fmt", "mode"), [("JPEG", "RGB"), ("PNG", "RGBA"), ("WEBP", "RGB"), ("PNG", "L")])
def test_an_accepted_photo_becomes_three_jpegs_that_fit_their_boxes(fmt: str, mode: str) -> None:
    variants = render_variants(encoded((2400, 1600), fmt, mode), LIMITS)
    assert set(variants) == set(Variant)
    for variant, data in variants.items():
        image = Image.open(io.BytesIO(data))
        assert (image.format, image.mode) == ("JPEG", "RGB")
        assert max(image.size) == min(VARIANT_BOX[variant], 2400)
        assert abs(image.size[0] / image.size[1] - 1.5) < 0.01  # 3:2 kept, to the pixel
    if mode == "RGBA":  # a transparent photo is laid on white, not black
        assert Image.open(io.BytesIO(variants[Variant.CARD])).getpixel((10, 10)) == (255, 255, 255)


def test_a_small_photo_is_not_enlarged() -> None:
    variants = render_variants(encoded((300, 200), "JPEG"), LIMITS)
    assert {Image.open(io.BytesIO(v)).size for v in variants.values()} == {(300, 200)}


def test_the_exif_orientation_is_applied_and_the_metadata_dropped() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    exif[0x010F] = "CameraMaker"
    data = encoded((400, 200), "JPEG", exif=exif.tobytes())
    full = Image.open(io.BytesIO(render_variants(data, LIMITS)[Variant.FULL]))
    assert full.size == (200, 400)
    assert not full.getexif()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, not an image",
        b"\xff\xd8\xff\xe0" + bytes(64),  # a JPEG's first bytes and nothing after
        encoded((800, 600), "JPEG")[:3000],  # cut short
        encoded((800, 600), "GIF"),
        encoded((800, 600), "BMP"),
        encoded((100, 30), "PNG"),  # a side under 64 pixels
    ],
    ids=["empty", "text", "jpeg-header", "truncated", "gif", "bmp", "too-small"],
)
def test_what_does_not_decode_as_an_accepted_photo_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidImage):
        render_variants(data, LIMITS)


def test_a_photo_with_more_pixels_than_allowed_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(InvalidImage, match="pixels"):
        render_variants(encoded((2000, 2000), "PNG"), ImageLimits(max_pixels=1_000_000))


@pytest.mark.parametrize(
    "name", ["../x.jpg", "a/b.jpg", "a\\b.jpg", "..", "x\0.jpg", "%2e%2e%2fx.jpg", "a%2Fb.jpg", "new\nline.jpg", ""]
)
def test_a_file_name_with_a_path_in_it_is_refused(name: str) -> None:
    with pytest.raises(InvalidImage):
        check_file_name(name)


@pytest.mark.parametrize("name", [None, "photo.jpg", "Chambre d'hôte (2).png", "IMG_2031-06-01.webp"])
def test_a_plain_file_name_is_accepted(name: str | None) -> None:
    check_file_name(name)


def test_an_upload_is_named_by_its_content_and_a_url_by_itself() -> None:
    data = encoded((100, 100), "JPEG")
    ref = image_ref(photo_id(data))
    assert ref_photo_id(ref) == photo_id(data) == entry_id(ref)
    assert object_key(7, photo_id(data), Variant.CARD) == f"rooms/7/{photo_id(data)}-card.jpg"
    url = "https://example.com/a.jpg"
    assert ref_photo_id(url) is None and len(entry_id(url)) == 32
    assert ref_photo_id("img:not-a-hash") is None  # a malformed reference is just a string
