"""MailSender that writes each message to `<directory>/<key>.eml`: the embedded default.

One file per key (the event id), written to a temporary name and renamed into place, so a reader
never sees half a message and a second send of the same key replaces the first instead of adding
a copy. Any mail client opens .eml files; a deployment that wants real delivery configures SMTP.
"""

from __future__ import annotations

import asyncio
import os
import re
from email.message import Message
from pathlib import Path

_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class FileMailSender:
    """Writes messages as .eml files into one directory (created on first use)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    async def __aenter__(self) -> FileMailSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def send(self, message: Message, *, key: str) -> None:
        if not _KEY.match(key) or key.startswith("."):
            raise ValueError(f"not a usable mail key: {key!r}")
        await asyncio.to_thread(self._write, bytes(message), key)

    def _write(self, data: bytes, key: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{key}.eml"
        tmp = self.directory / f".{key}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def paths(self) -> list[Path]:
        """The messages written so far, by name."""
        return sorted(self.directory.glob("*.eml")) if self.directory.exists() else []
