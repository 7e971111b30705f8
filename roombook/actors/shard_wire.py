"""The direct data path to a shard actor: framed msgpack over one TCP connection per shard.

Ray places the shard actors, restarts them and tells clients where they listen; the commands
themselves travel over this socket. A Ray actor call costs about a millisecond of CPU on each side
whatever it carries, and its threads contend with the shard's event loop for the GIL; a frame on
an open socket costs tens of microseconds. Nothing here imports Ray.

Protocol: every frame is a 4-byte big-endian length and a msgpack body. The client's first frame
is the endpoint's token (random, per actor incarnation, handed out only through Ray's own
authenticated channel); then each request is [call id, ring version or nil, [command, ...]] (the
version of the ring the commands were routed by). Replies come as
- [0, call id, [[index, reply], ...]]: refusals sent ahead while the shard commits the batch they
  ran in (none, one or, for a call cut across batches, two per call);
- [1, call id, [reply or nil, ...]]: the answer, one entry per command in command order, nil where
  the reply went ahead. A call is over with its answer.
Calls on one connection may be answered out of order (the id matches them). A lost connection
fails every call on it with ConnectionError: the caller finds the (restarted) actor again and
resends what has no reply yet, which is safe because every command is idempotent by hold id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import secrets
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

from roombook.actors.shard import EarlyReplies
from roombook.domain.commands import Command, Failure, Reply

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
MAX_FRAME_BYTES = 64 * 2**20
TOKEN_BYTES = 32
TOKEN_TIMEOUT_S = 5.0  # a connection that has not presented its token by then is dropped


class ShardEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """Where one incarnation of a shard listens, and the token it wants first."""

    host: str
    port: int
    token: bytes
    epoch: int


class _Ahead(msgspec.Struct, array_like=True, tag=0):
    call_id: int
    replies: list[tuple[int, Reply]]


class _Answer(msgspec.Struct, array_like=True, tag=1):
    call_id: int
    replies: list[Reply | None]


_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(tuple[int, int | None, list[Command]])
_reply_decoder = msgspec.msgpack.Decoder(_Ahead | _Answer)


class FrameWriter(Protocol):
    """The sending end of a connection: an asyncio.StreamWriter, or the simulation's."""

    def write(self, data: bytes) -> None: ...

    def is_closing(self) -> bool: ...

    def close(self) -> None: ...

    def get_extra_info(self, name: str, default: object = None) -> object: ...


def _frame(body: bytes) -> bytes:
    return _LENGTH.pack(len(body)) + body


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > MAX_FRAME_BYTES:
        raise ConnectionError(f"frame of {length} bytes is over the limit")
    return await reader.readexactly(length)


async def _read_token(reader: asyncio.StreamReader) -> bytes:
    """The client's first frame, which must be a token: before it, nothing bigger is read or held."""
    async with asyncio.timeout(TOKEN_TIMEOUT_S):
        (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        if length != TOKEN_BYTES:
            raise ConnectionError(f"first frame of {length} bytes is no token")
        return await reader.readexactly(length)


Apply = Callable[[list[Command], EarlyReplies | None, int | None], Awaitable[list[Reply]]]


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

    async def _serve(self, reader: asyncio.StreamReader, writer: FrameWriter) -> None:
        task = asyncio.current_task()
        if task is not None:  # always: asyncio runs each connection's handler as a task
            self._tasks.add(task)
        try:
            if not hmac.compare_digest(await _read_token(reader), self._token):
                log.warning("shard connection from %s refused: wrong token", writer.get_extra_info("peername"))
                return
            while True:
                call_id, ring_version, commands = _request_decoder.decode(await _read_frame(reader))
                answer = asyncio.get_running_loop().create_task(self._answer(writer, call_id, ring_version, commands))
                self._tasks.add(answer)
                answer.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, msgspec.DecodeError):
            pass  # the client went away, spoke nonsense or kept silent: drop the connection
        except asyncio.CancelledError:
            pass  # the server closed (its shard handed over): the client finds the next one
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _answer(
        self, writer: FrameWriter, call_id: int, ring_version: int | None, commands: list[Command]
    ) -> None:
        ahead: list[int] = []

        def send_ahead(refusals: list[tuple[int, Reply]]) -> None:
            if not writer.is_closing():
                writer.write(_frame(_encoder.encode(_Ahead(call_id, refusals))))
                ahead.extend(index for index, _ in refusals)

        replies: list[Reply | None] = list(await self._apply(commands, send_ahead, ring_version))
        for index in ahead:
            replies[index] = None
        if not writer.is_closing():
            writer.write(_frame(_encoder.encode(_Answer(call_id, replies))))


class ShardConnection:
    """One client connection to a shard endpoint, bound to the event loop that opened it."""

    def __init__(self, reader: asyncio.StreamReader, writer: FrameWriter, endpoint: ShardEndpoint) -> None:
        self.endpoint = endpoint
        self.loop = asyncio.get_running_loop()
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count()
        self._waiting: dict[int, _Waiting] = {}
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

    async def call(
        self, commands: list[Command], early: EarlyReplies | None = None, ring_version: int | None = None
    ) -> list[Reply]:
        """The replies to `commands`; ConnectionError if the connection is (or gets) lost first.
        `early` hears of the refusals the shard sends ahead (they are in the returned list too)."""
        if self._lost is not None:
            raise ConnectionError(f"connection to shard lost: {self._lost}")
        call_id = next(self._ids)
        waiting = _Waiting(self.loop.create_future(), early)
        self._waiting[call_id] = waiting
        self._writer.write(_frame(_encoder.encode((call_id, ring_version, commands))))
        try:
            return await waiting.answer
        finally:
            self._waiting.pop(call_id, None)

    async def close(self) -> None:
        # Fail the calls here, not in the reader: a reader task cancelled before its first step
        # never runs at all, and its calls would wait for an answer no one reads
        self._fail(ConnectionError("connection closed"))
        self._writer.close()
        self._reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reading

    async def _read_replies(self) -> None:
        try:
            while True:
                frame = _reply_decoder.decode(await _read_frame(self._reader))
                waiting = self._waiting.get(frame.call_id)
                if waiting is not None:
                    waiting.received(frame)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, msgspec.DecodeError) as exc:
            self._fail(ConnectionError(f"{type(exc).__name__}: {exc}"))
        except asyncio.CancelledError:
            self._fail(ConnectionError("connection closed"))
            raise
        finally:
            self._writer.close()

    def _fail(self, exc: ConnectionError) -> None:
        if self._lost is None:  # the first cause is the one to tell
            self._lost = exc
        for waiting in self._waiting.values():
            if not waiting.answer.done():
                waiting.answer.set_exception(exc)


# Replies from an actor that no longer owns its shard (it handed it over, or a newer owner fenced
# it): the command did not run there, so it is sent again to whoever owns the shard now.
_RESEND_KINDS = frozenset({"shard_moved", "shard_fenced"})


async def call_until_answered(
    connect: Callable[[], Awaitable[ShardConnection]],
    commands: list[Command],
    early: EarlyReplies | None = None,
    *,
    timeout_s: float,
    pause_s: float = 0.05,
    ring_version: int | None = None,
    stale: Callable[[ShardConnection], Awaitable[bool]] | None = None,
    stall_s: float = 2.0,
) -> list[Reply]:
    """The replies to `commands` through `connect()`'s connection. When the connection is lost (the
    actor died or is restarting), connect again and resend only the commands with no reply yet:
    safe, as every command is idempotent by hold id, and a refusal already given stands (a resent
    hold that was refused could otherwise succeed with no one left to confirm it). A command the
    actor answers shard_moved or shard_fenced did not run: the connection is closed, so that
    connect() finds the shard's owner now, and the command is sent again. Gives up with the last
    error (or those replies) once timeout_s has passed.

    A call unanswered for stall_s asks `stale(connection)` whether the shard listens elsewhere now
    (its actor was restarted on another node, while the lost process neither answers nor closes
    the connection): if so, the connection is dropped and the unanswered commands resent."""
    deadline = time.monotonic() + timeout_s
    replies: dict[int, Reply] = {}  # by index into commands
    unanswered = list(range(len(commands)))  # what the current call carries, as indices into commands
    moved_pause_s = 0.002

    def ahead(refusals: list[tuple[int, Reply]]) -> None:
        refusals = [(unanswered[index], reply) for index, reply in refusals]
        replies.update(refusals)
        if early is not None:
            early(refusals)

    while True:
        try:
            connection = await connect()
            answer = await _answer_unless_stale(
                connection,
                connection.call([commands[index] for index in unanswered], ahead, ring_version),
                stale,
                stall_s,
                deadline,
            )
        except (ConnectionError, OSError, TimeoutError):
            unanswered = [index for index in unanswered if index not in replies]
            if not unanswered:  # every reply went ahead before the loss
                break
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(pause_s)
            continue
        replies.update(zip(unanswered, answer, strict=True))
        moved = [i for i in unanswered if isinstance(reply := replies[i], Failure) and reply.kind in _RESEND_KINDS]
        if not moved or time.monotonic() > deadline:
            break
        await connection.close()
        for index in moved:
            del replies[index]  # no reply yet: they are sent again
        unanswered = moved
        await asyncio.sleep(moved_pause_s)
        moved_pause_s = min(moved_pause_s * 2, pause_s)
    return [replies[index] for index in range(len(commands))]


async def _answer_unless_stale(
    connection: ShardConnection,
    call: Awaitable[list[Reply]],
    stale: Callable[[ShardConnection], Awaitable[bool]] | None,
    stall_s: float,
    deadline: float,
) -> list[Reply]:
    """The call's answer; ConnectionError once `stale` says its connection leads nowhere now."""
    task = asyncio.ensure_future(call)
    if stale is None:
        return await task
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=stall_s)
            if done:
                return task.result()
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from the shard")
            moved = False
            with contextlib.suppress(Exception):  # no answer on whether it moved: keep waiting
                moved = await stale(connection)
            if moved:
                await connection.close()
                raise ConnectionError("the shard listens elsewhere now")
    finally:
        task.cancel()


class _Waiting:
    """A call on a connection: its answer to come, and the replies that went ahead of it."""

    __slots__ = ("ahead", "answer", "early")

    def __init__(self, answer: asyncio.Future[list[Reply]], early: EarlyReplies | None) -> None:
        self.answer = answer
        self.early = early
        self.ahead: list[tuple[int, Reply]] = []

    def received(self, frame: _Ahead | _Answer) -> None:
        if self.answer.done():
            return
        if isinstance(frame, _Ahead):
            self.ahead.extend(frame.replies)
            if self.early is not None:
                try:
                    self.early(frame.replies)
                except Exception:  # the listener's bug must not end the connection: the answer follows
                    log.exception("shard connection: early replies listener failed")
            return
        replies = frame.replies
        for index, reply in self.ahead:
            replies[index] = reply
        given = [reply for reply in replies if reply is not None]
        if len(given) < len(replies):
            self.answer.set_exception(ConnectionError("the shard's answer left some commands without a reply"))
        else:
            self.answer.set_result(given)
