"""The ObjectStore contract on both adapters: files under a directory, and S3 as moto serves it
over HTTP on loopback (with pre-signed and public URLs)."""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import pytest

from roombook.storage.objects.file_objects import FileObjectStore
from roombook.storage.objects.s3_objects import S3ObjectStore, S3Settings
from roombook.storage.ports import ObjectStore

KEY = "rooms/7/" + "ab" * 16 + "-card.jpg"


@pytest.fixture(params=["file", "s3"])
async def objects(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[ObjectStore]:
    if request.param == "file":
        async with FileObjectStore(tmp_path / "objects") as store:
            yield store
    else:
        moto = request.getfixturevalue("moto")
        settings = S3Settings(bucket=f"b-{secrets.token_hex(4)}", endpoint_url=moto, create_bucket=True)
        async with S3ObjectStore(settings) as store:
            yield store


async def test_an_object_put_is_read_back_replaced_whole_and_deleted(objects: ObjectStore) -> None:
    assert await objects.get(KEY) is None
    await objects.put(KEY, b"first", content_type="image/jpeg")
    assert await objects.get(KEY) == b"first"
    await objects.put(KEY, b"second, longer", content_type="image/jpeg")
    assert await objects.get(KEY) == b"second, longer"
    await objects.delete([KEY, "rooms/7/missing.jpg"])  # a missing key is ignored
    assert await objects.get(KEY) is None


async def test_the_file_store_refuses_keys_that_leave_its_directory(tmp_path) -> None:
    async with FileObjectStore(tmp_path / "objects") as store:
        for key in (
            "../outside.jpg",
            "rooms/../../x",
            "/etc/passwd",
            "rooms//x.jpg",
            "rooms/.hidden",
            "Rooms/X.JPG",
            "",
        ):
            with pytest.raises(ValueError):
                await store.put(key, b"x", content_type="image/jpeg")
        assert list((tmp_path / "objects").iterdir()) == []
        assert await store.url(KEY) is None  # the app serves it


def fetch(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read(), answer.headers.get("Cache-Control", "")
    except urllib.error.HTTPError as exc:
        return exc.code, b"", ""


async def test_s3_hands_out_presigned_urls_a_browser_can_fetch(moto) -> None:
    settings = S3Settings(bucket=f"b-{secrets.token_hex(4)}", endpoint_url=moto, create_bucket=True, presign_s=600)
    async with S3ObjectStore(settings) as store:
        await store.put(KEY, b"jpeg bytes", content_type="image/jpeg")
        url = await store.url(KEY)
        assert url is not None and url.startswith(f"{moto}/{settings.bucket}/{KEY}?")
        assert await store.url(KEY) == url  # signed once, reused for half its lifetime
        assert fetch(url) == (200, b"jpeg bytes", "public, max-age=31536000, immutable")
        await store.delete([KEY])
        assert fetch(url)[0] == 404


async def test_s3_with_a_public_url_names_objects_under_it_unsigned(moto) -> None:
    settings = S3Settings(bucket="b", endpoint_url=moto, public_url="https://cdn.example.com/media/")
    async with S3ObjectStore(settings) as store:
        assert await store.url(KEY) == f"https://cdn.example.com/media/{KEY}"
