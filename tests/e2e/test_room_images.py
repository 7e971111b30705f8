"""Room photos over real HTTP: an admin uploads, orders and removes them; the app serves the
variants (embedded store) or hands out pre-signed S3 URLs (moto); bad uploads are 4xx and store
nothing; the room's details, searches and pages show them."""

from __future__ import annotations

import asyncio
import io
import secrets
from pathlib import Path

import aiohttp
import msgspec
import pytest
from booking_harness import API, add_rooms, app_for, local_settings, room, sign_up, sign_up_admin
from PIL import Image

from roombook.storage.objects.s3_objects import S3ObjectStore, S3Settings


def picture(size: tuple[int, int] = (1200, 800), fmt: str = "JPEG", color: tuple[int, ...] = (200, 80, 40)) -> bytes:
    mode = "RGBA" if len(color) == 4 else "RGB"
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt)
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def upload(client, admin, room_id: int, data: bytes, content_type: str = "image/jpeg", **headers: str):
    return await client.post(
        f"{API}/rooms/{room_id}/images",
        data=io.BytesIO(data),
        headers=admin.headers | {"Content-Type": content_type} | headers,
    )


async def until(condition, timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll what a consumer did (room.updated reaching the index): there is nothing to wait on."""
    try:
        async with asyncio.timeout(timeout_s):
            while not await condition():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def stored_objects(tmp_path: Path) -> list[Path]:
    root = tmp_path / "objects"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(app_for(local_settings(tmp_path)), cookie_jar=aiohttp.DummyCookieJar())


async def test_an_uploaded_photo_is_served_in_three_sizes_and_shown_everywhere(client, tmp_path):
    (room_id,) = await add_rooms(client, room(title="Harbour loft"))
    admin = await sign_up_admin(client)
    response = await upload(client, admin, room_id, picture((3000, 2000)))
    assert response.status == 201, await response.text()
    photo = await response.json()
    assert set(photo) == {"id", "thumbnail", "card", "full"}
    sizes = {}
    for variant, box in (("thumbnail", 320), ("card", 800), ("full", 2048)):
        assert photo[variant] == f"/media/rooms/{room_id}/{photo['id']}-{variant}.jpg"
        served = await client.get(photo[variant])
        assert served.status == 200
        assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert served.content_type == "image/jpeg"
        image = decoded(await served.read())
        assert image.format == "JPEG" and max(image.size) == box
        sizes[variant] = image.size
    assert sizes["full"] == (2048, 1365)  # the aspect ratio kept

    details = await (await client.get(f"{API}/rooms/{room_id}")).json()
    assert details["images"] == [photo["full"]]
    assert details["photos"] == [photo]

    async def searchable() -> bool:
        found = await (await client.get(f"{API}/rooms", params={"q": "harbour"})).json()
        return [item["photos"] for item in found["items"]] == [[photo]]

    await until(searchable, what="room.updated to reach the index and the cached search pages")
    page = await (await client.get(f"/rooms/{room_id}")).text()
    assert f'src="{photo["card"]}"' in page and f'href="{photo["full"]}"' in page
    listing = await (await client.get("/search", params={"q": "harbour"})).text()
    assert f'src="{photo["thumbnail"]}"' in listing


async def test_the_same_photo_twice_is_listed_once_and_photos_are_ordered_and_removed(client, tmp_path):
    (room_id,) = await add_rooms(client)
    admin = await sign_up_admin(client)
    red = await (await upload(client, admin, room_id, picture(color=(255, 0, 0)))).json()
    again = await upload(client, admin, room_id, picture(color=(255, 0, 0)))
    assert again.status == 201 and await again.json() == red
    form = aiohttp.FormData()
    form.add_field("image", picture((640, 480), "PNG", (0, 0, 255, 128)), filename="blue.png", content_type="image/png")
    blue = await client.post(f"{API}/rooms/{room_id}/images", data=form, headers=admin.headers)
    assert blue.status == 201, await blue.text()
    blue = await blue.json()
    details = await (await client.get(f"{API}/rooms/{room_id}")).json()
    assert [p["id"] for p in details["photos"]] == [red["id"], blue["id"]]

    order = {"order": [blue["id"], red["id"]]}
    ordered = await client.put(f"{API}/rooms/{room_id}/images", json=order, headers=admin.headers)
    assert ordered.status == 200
    assert [p["id"] for p in (await ordered.json())["items"]] == [blue["id"], red["id"]]
    for bad in ({"order": [blue["id"]]}, {"order": [blue["id"], blue["id"]]}, {"order": [blue["id"], "0" * 32]}):
        refused = await client.put(f"{API}/rooms/{room_id}/images", json=bad, headers=admin.headers)
        assert refused.status == 422, bad
    assert len(stored_objects(tmp_path)) == 6  # two photos, three variants each

    gone = await client.delete(f"{API}/rooms/{room_id}/images/{blue['id']}", headers=admin.headers)
    assert gone.status == 204
    assert (await client.get(blue["card"])).status == 404
    assert len(stored_objects(tmp_path)) == 3
    assert (await client.delete(f"{API}/rooms/{room_id}/images/{blue['id']}", headers=admin.headers)).status == 404
    details = await (await client.get(f"{API}/rooms/{room_id}")).json()
    assert details["photos"] == [red]


@pytest.mark.parametrize(
    ("body", "content_type", "headers", "status"),
    [
        (b"not an image at all", "image/jpeg", {}, 422),
        (b"GIF89a" + bytes(100), "image/png", {}, 422),
        (picture(fmt="GIF"), "image/webp", {}, 422),  # a real image of a type not accepted
        (picture()[:2000], "image/jpeg", {}, 422),  # cut short
        (picture((40, 40)), "image/jpeg", {}, 422),  # too small to show
        (picture(), "image/jpeg", {"Content-Disposition": 'attachment; filename="../../etc/passwd.jpg"'}, 422),
        (picture(), "image/jpeg", {"Content-Disposition": 'attachment; filename="C:\\\\photos\\\\a.jpg"'}, 422),
        (picture(), "text/plain", {}, 415),
        (bytes(50 * 2**20), "image/jpeg", {}, 413),
    ],
    ids=["text", "gif-bytes", "gif", "truncated", "tiny", "path", "windows-path", "text-plain", "50MB"],
)
async def test_a_bad_upload_is_a_4xx_problem_and_stores_nothing(client, tmp_path, body, content_type, headers, status):
    (room_id,) = await add_rooms(client)
    admin = await sign_up_admin(client)
    response = await upload(client, admin, room_id, body, content_type, **headers)
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    assert stored_objects(tmp_path) == []
    assert (await (await client.get(f"{API}/rooms/{room_id}")).json())["images"] == []


async def test_a_form_with_a_path_in_its_file_name_or_without_an_image_part_stores_nothing(client, tmp_path):
    (room_id,) = await add_rooms(client)
    admin = await sign_up_admin(client)
    for name, field in (("../x.jpg", "image"), ("dir/x.jpg", "image"), ("x.jpg", "photo")):
        form = aiohttp.FormData()
        form.add_field(field, picture(), filename=name, content_type="image/jpeg")
        response = await client.post(f"{API}/rooms/{room_id}/images", data=form, headers=admin.headers)
        assert response.status == 422, name
    big = aiohttp.FormData()
    big.add_field("image", io.BytesIO(bytes(11 * 2**20)), filename="big.jpg", content_type="image/jpeg")
    assert (await client.post(f"{API}/rooms/{room_id}/images", data=big, headers=admin.headers)).status == 413
    assert stored_objects(tmp_path) == []


async def test_photos_are_for_admins_and_of_rooms_that_exist(client):
    (room_id,) = await add_rooms(client)
    guest = await sign_up(client)
    assert (await upload(client, guest, room_id, picture())).status == 403
    anonymous = await client.post(
        f"{API}/rooms/{room_id}/images", data=picture(), headers={"Content-Type": "image/jpeg"}
    )
    assert anonymous.status == 401
    admin = await sign_up_admin(client)
    assert (await upload(client, admin, room_id + 1000, picture())).status == 404
    assert (await client.get("/media/rooms/1/../../global.db")).status == 404
    assert (await client.get(f"/media/rooms/{room_id}/{'a' * 32}-card.jpg")).status == 404


# -- on S3 (moto) ------------------------------------------------------------------------------------


async def test_on_s3_photos_are_served_from_the_bucket_by_presigned_urls(aiohttp_client, tmp_path, moto):
    bucket = f"rooms-{secrets.token_hex(4)}"
    async with S3ObjectStore(S3Settings(bucket=bucket, endpoint_url=moto, create_bucket=True)):
        pass
    settings = msgspec.structs.replace(
        local_settings(tmp_path), object_store="s3", s3_bucket=bucket, s3_endpoint_url=moto
    )
    client = await aiohttp_client(app_for(settings), cookie_jar=aiohttp.DummyCookieJar())
    (room_id,) = await add_rooms(client)
    admin = await sign_up_admin(client)
    response = await upload(client, admin, room_id, picture((1000, 1000), "WEBP"))
    assert response.status == 201, await response.text()
    photo = await response.json()
    assert photo["card"].startswith(f"{moto}/{bucket}/rooms/{room_id}/{photo['id']}-card.jpg?")
    assert "Signature=" in photo["card"] or "X-Amz-Signature=" in photo["card"]
    async with aiohttp.ClientSession() as browser, browser.get(photo["card"]) as fetched:
        assert fetched.status == 200
        assert decoded(await fetched.read()).size == (800, 800)
        assert fetched.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert stored_objects(tmp_path) == []  # nothing on the local disk
    assert (await client.delete(f"{API}/rooms/{room_id}/images/{photo['id']}", headers=admin.headers)).status == 204
    async with aiohttp.ClientSession() as browser, browser.get(photo["card"]) as fetched:
        assert fetched.status == 404


async def test_an_upload_of_unknown_length_is_cut_off_at_the_limit(client, tmp_path):
    """Sent chunked (no Content-Length), a 50 MB body is refused once it passes the limit."""
    (room_id,) = await add_rooms(client)
    admin = await sign_up_admin(client)
    sent = 0

    async def fifty_megabytes():
        nonlocal sent
        for _ in range(50):
            sent += 2**20
            yield bytes(2**20)

    response = await client.post(
        f"{API}/rooms/{room_id}/images",
        data=fifty_megabytes(),
        headers=admin.headers | {"Content-Type": "image/jpeg"},
    )
    assert response.status == 413
    assert response.content_type == "application/problem+json"
    assert stored_objects(tmp_path) == []


@pytest.mark.parametrize(
    "body",
    [
        # a part header that does not parse
        b'--x\r\nContent-Disposition: form-data; name="\x10\xc3\xb1"\r\n\r\ndata\r\n--x--\r\n',
        b"no boundary anywhere",
        b"--x--\r\n",  # a form without parts
    ],
    ids=["bad-header", "no-boundary", "empty"],
)
async def test_a_malformed_form_is_422_and_stores_nothing(client, tmp_path, body):
    (room_id,) = await add_rooms(client)
    admin = await sign_up_admin(client)
    headers = admin.headers | {"Content-Type": "multipart/form-data; boundary=x"}
    response = await client.post(f"{API}/rooms/{room_id}/images", data=body, headers=headers)
    assert response.status == 422, await response.text()
    assert stored_objects(tmp_path) == []
