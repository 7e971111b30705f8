"""The embedded object store: one file per object under a directory (by default <data>/objects).

A put writes a temporary file beside the target, flushes it to disk and renames it over the
target, so a reader (or a crash) sees the old object or the new one, never half of one. The app
serves these objects itself (url() is None).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_./")


class FileObjectStore:
    """Objects as files; a key is a relative path of lower-case names (checked, never trusted)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    async def __aenter__(self) -> FileObjectStore:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or not set(key) <= KEY_CHARS or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            raise ValueError(f"not an object key: {key!r}")
        return self.root.joinpath(*parts)

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        await asyncio.to_thread(self._write, self.path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(temporary, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    async def get(self, key: str) -> bytes | None:
        path = self.path(key)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return await asyncio.to_thread(path.read_bytes)
        return None

    async def delete(self, keys: Sequence[str]) -> None:
        paths = [self.path(key) for key in keys]

        def unlink() -> None:
            for path in paths:
                path.unlink(missing_ok=True)

        await asyncio.to_thread(unlink)

    async def url(self, key: str) -> str | None:
        return None
