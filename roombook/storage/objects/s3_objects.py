"""The object store on Amazon S3 (or anything that speaks its API, e.g. moto), via aiobotocore.

Objects are served straight from the bucket: under `public_url` (a CDN or a public bucket in
front of it) when one is set, else as pre-signed GET URLs valid `presign_s`. A pre-signed URL is
signed here, without a request, and kept until half its lifetime is gone, so a page of rooms does
not sign its photos again on every read; it must outlive the cached room details that carry it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import msgspec
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from roombook.domain.errors import StoreUnavailable

_DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys


class S3Settings(msgspec.Struct, frozen=True, kw_only=True):
    bucket: str
    endpoint_url: str | None = None  # None: AWS itself
    region: str = "us-east-1"
    public_url: str | None = None  # e.g. https://cdn.example.com/rooms-media: no signing
    presign_s: int = 86_400
    create_bucket: bool = False  # for local stacks (moto): create it on open if it is missing


class S3ObjectStore:
    """Objects in one bucket; keys as given (ObjectStore's keys are already safe path names)."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._signed: dict[str, tuple[str, float]] = {}  # key -> (url, monotonic time to sign it again)

    async def __aenter__(self) -> S3ObjectStore:
        session = get_session()
        options = {"region_name": self.settings.region, "endpoint_url": self.settings.endpoint_url}
        try:
            self._client = await self._stack.enter_async_context(session.create_client("s3", **options))
            if self.settings.create_bucket:
                with contextlib.suppress(self._client.exceptions.BucketAlreadyOwnedByYou):
                    await self._client.create_bucket(Bucket=self.settings.bucket)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
        self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("the object store is not open")
        return self._client

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        with _unavailable():
            await self.client.put_object(
                Bucket=self.settings.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                CacheControl="public, max-age=31536000, immutable",  # keys carry their content's hash
            )

    async def get(self, key: str) -> bytes | None:
        try:
            with _unavailable():
                answer = await self.client.get_object(Bucket=self.settings.bucket, Key=key)
                async with answer["Body"] as body:
                    data: bytes = await body.read()
                    return data
        except _Missing:
            return None

    async def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            chunk = [{"Key": key} for key in keys[start : start + _DELETE_BATCH]]
            with _unavailable():
                await self.client.delete_objects(Bucket=self.settings.bucket, Delete={"Objects": chunk, "Quiet": True})
        for key in keys:
            self._signed.pop(key, None)

    async def url(self, key: str) -> str | None:
        if self.settings.public_url:
            return f"{self.settings.public_url.rstrip('/')}/{key}"
        now = time.monotonic()
        signed = self._signed.get(key)
        if signed is not None and signed[1] > now:
            return signed[0]
        url: str = await self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.settings.bucket, "Key": key}, ExpiresIn=self.settings.presign_s
        )
        self._signed[key] = (url, now + self.settings.presign_s / 2)
        return url


class _Missing(Exception):
    pass


@contextlib.contextmanager
def _unavailable() -> Any:
    """A missing object is _Missing; any other failure of S3 or the network is StoreUnavailable."""
    try:
        yield
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise _Missing() from exc
        raise StoreUnavailable(f"the object store refused: {exc}") from exc
    except (BotoCoreError, OSError, TimeoutError) as exc:
        raise StoreUnavailable(f"the object store is not answering: {type(exc).__name__}") from exc
