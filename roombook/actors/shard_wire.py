"""The direct data path to a shard actor: framed msgpack over one TCP connection per shard.

Ray places the shard actors, restarts them and tells clients where they listen; the commands
themselves travel over this socket. A Ray actor call costs about a millisecond of CPU on each side
whatever it carries, and its threads contend with the shard's event loop for the GIL; a frame on
an open socket costs tens of microseconds. Nothing here imports Ray.

Protocol: every frame is a 4-byte big-endian length and a msgpack body. The client's first frame
is the endpoint's token (random, per actor incarnation, handed out only through Ray's own
authenticated channel); then each request is [call id, [command, ...]] and each reply [call id,
[reply, ...]], one reply per command, in command order. Calls on one connection may be answered
out of order (the id matches them). A lost connection fails every call on it with ConnectionError:
the caller finds the (restarted) actor again and resends, which is safe because every command is
idempotent by hold id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import secrets
import struct
from collections.abc import Awaitable, Callable

import msgspec

from roombook.domain.commands import Command, Reply

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
MAX_FRAME_BYTES = 64 * 2**20
TOKEN_BYTES = 32


class ShardEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """Where one incarnation of a shard listens, and the token it wants first."""

    host: str
    port: int
    token: bytes
    epoch: int


_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(tuple[int, list[Command]])
_reply_decoder = msgspec.msgpack.Decoder(tuple[int, list[Reply]])


def _frame(body: bytes) -> bytes:
    return _LENGTH.pack(len(body)) + body


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > MAX_FRAME_BYTES:
        raise ConnectionError(f"frame of {length} bytes is over the limit")
    return await reader.readexactly(length)


Apply = Callable[[list[Command]], Awaitable[list[Reply]]]


class ShardServer:
    """Serves `apply` to clients that present the token. Each request runs as its own task, so a
    connection can carry several calls at once; the shard orders the commands itself."""

    def __init__(self, apply: Apply, *, epoch: int) -> None:
        self._apply = apply
        self._epoch = epoch
        self._token = secrets.token_bytes(TOKEN_BYTES)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # connections and calls under way (the loop keeps weak refs)
        self.endpoint: ShardEndpoint | None = None

    async def start(self, host: str) -> ShardEndpoint:
        self._server = await asyncio.start_server(self._serve, host, 0)
        port = self._server.sockets[0].getsockname()[1]
        self.endpoint = ShardEndpoint(host=host, port=port, token=self._token, epoch=self._epoch)
        return self.endpoint

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if not hmac.compare_digest(await _read_frame(reader), self._token):
                log.warning("shard connection from %s refused: wrong token", writer.get_extra_info("peername"))
                return
            while True:
                call_id, commands = _request_decoder.decode(await _read_frame(reader))
                answer = asyncio.get_running_loop().create_task(self._answer(writer, call_id, commands))
                self._tasks.add(answer)
                answer.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError, msgspec.DecodeError):
            pass  # the client went away or spoke nonsense: drop the connection
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, call_id: int, commands: list[Command]) -> None:
        replies = await self._apply(commands)
        if not writer.is_closing():
            writer.write(_frame(_encoder.encode((call_id, replies))))


class ShardConnection:
    """One client connection to a shard endpoint, bound to the event loop that opened it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, endpoint: ShardEndpoint) -> None:
        self.endpoint = endpoint
        self.loop = asyncio.get_running_loop()
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[list[Reply]]] = {}
        self._lost: Exception | None = None
        self._reading = self.loop.create_task(self._read_replies())

    @classmethod
    async def open(cls, endpoint: ShardEndpoint, *, timeout_s: float = 5.0) -> ShardConnection:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(endpoint.host, endpoint.port), timeout_s)
        writer.write(_frame(endpoint.token))
        return cls(reader, writer, endpoint)

    @property
    def usable(self) -> bool:
        return self._lost is None and not self._writer.is_closing()

    async def call(self, commands: list[Command]) -> list[Reply]:
        """The replies to `commands`; ConnectionError if the connection is (or gets) lost first."""
        if self._lost is not None:
            raise ConnectionError(f"connection to shard lost: {self._lost}")
        call_id = next(self._ids)
        future: asyncio.Future[list[Reply]] = self.loop.create_future()
        self._waiting[call_id] = future
        self._writer.write(_frame(_encoder.encode((call_id, commands))))
        try:
            return await future
        finally:
            self._waiting.pop(call_id, None)

    async def close(self) -> None:
        self._reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reading

    async def _read_replies(self) -> None:
        try:
            while True:
                call_id, replies = _reply_decoder.decode(await _read_frame(self._reader))
                future = self._waiting.get(call_id)
                if future is not None and not future.done():
                    future.set_result(replies)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, msgspec.DecodeError) as exc:
            self._fail(ConnectionError(f"{type(exc).__name__}: {exc}"))
        except asyncio.CancelledError:
            self._fail(ConnectionError("connection closed"))
            raise
        finally:
            self._writer.close()

    def _fail(self, exc: ConnectionError) -> None:
        self._lost = exc
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(exc)
