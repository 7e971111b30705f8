"""In-memory connections between shard_wire's client and server, through a network that fails.

Each connection is two one-way pipes of frames (every `write` shard_wire makes is one frame). A
pipe delivers in order after a drawn delay, as TCP does. Faults, while `faults_on`: a frame is
dropped, which breaks the connection (frames after it are lost and both ends see a reset a little
later: a stream with a hole in it is a dead stream); a frame is delivered twice, back to back; a
frame swaps places with the next one on the same pipe. `kill` resets a connection at once.
Delivery into the peer's asyncio.StreamReader is what the real code reads, so the framing, the
token check, the replies sent ahead and the resend after a lost connection all run as they are.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable

import msgspec

from roombook.actors.shard_wire import ShardConnection, ShardEndpoint, _frame

_STEP_S = 1e-6  # frames on one pipe are delivered at strictly increasing times, so in order


class NetFaults(msgspec.Struct, frozen=True, kw_only=True):
    drop_p: float = 0.0
    duplicate_p: float = 0.0
    reorder_p: float = 0.0
    latency_s: tuple[float, float] = (0.00005, 0.0005)
    spike_p: float = 0.0  # a frame (and those behind it) delayed by spike_s
    spike_s: tuple[float, float] = (0.01, 0.5)
    reset_after_s: tuple[float, float] = (0.001, 0.2)  # from a dropped frame to the reset both ends see


Accept = Callable[[asyncio.StreamReader, "SimWriter"], None]


class _Pipe:
    """Frames from one end's writer into the other end's reader."""

    def __init__(self, link: _Link) -> None:
        self.link = link
        self.reader = asyncio.StreamReader()
        self.closing = False
        self._last_at = 0.0
        self._held: bytes | None = None  # a frame waiting to swap places with the next one

    def send(self, data: bytes) -> None:
        link = self.link
        if self.closing or link.broken:
            return
        net = link.net
        if net.draw(net.faults.drop_p):
            net.trace("frame_dropped", link.id)
            link.break_later()
            return
        if self._held is not None:  # the swap: this frame first, the held one right behind it
            held, self._held = self._held, None
            self._schedule(data)
            self._schedule(held)
            return
        if net.draw(net.faults.reorder_p):
            self._held = data
            asyncio.get_running_loop().call_later(net.uniform(net.faults.latency_s), self._flush_held)
            return
        self._schedule(data)
        if net.draw(net.faults.duplicate_p):
            net.trace("frame_duplicated", link.id)
            self._schedule(data)

    def close(self) -> None:
        """The writer's end closes: the reader sees EOF after the frames already on their way."""
        if self.closing:
            return
        self._flush_held()
        self.closing = True
        loop = asyncio.get_running_loop()
        loop.call_at(max(loop.time(), self._last_at + _STEP_S), self._eof)

    def _flush_held(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._schedule(held)

    def _schedule(self, data: bytes) -> None:
        net = self.link.net
        loop = asyncio.get_running_loop()
        delay_s = net.uniform(net.faults.latency_s)
        if net.draw(net.faults.spike_p):
            delay_s += net.uniform(net.faults.spike_s)
        self._last_at = at = max(loop.time() + delay_s, self._last_at + _STEP_S)
        loop.call_at(at, self._deliver, data)

    def _deliver(self, data: bytes) -> None:
        if not self.link.dead:
            self.reader.feed_data(data)
            self.link.net.frames += 1

    def _eof(self) -> None:
        if not self.link.dead and not self.reader.at_eof():
            self.reader.feed_eof()


class SimWriter:
    """The part of asyncio.StreamWriter that shard_wire uses."""

    def __init__(self, pipe: _Pipe) -> None:
        self._pipe = pipe

    def write(self, data: bytes) -> None:
        self._pipe.send(bytes(data))

    def close(self) -> None:
        self._pipe.close()

    def is_closing(self) -> bool:
        return self._pipe.closing or self._pipe.link.dead

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


class _Link:
    """One connection: a pipe each way."""

    def __init__(self, net: SimNetwork, port: int) -> None:
        self.net = net
        self.id = next(net.link_ids)
        self.port = port
        self.dead = False
        self.broken = False  # a frame was dropped: the reset is on its way
        self.to_server = _Pipe(self)
        self.to_client = _Pipe(self)

    def break_later(self) -> None:
        if not self.broken:
            self.broken = True
            asyncio.get_running_loop().call_later(self.net.uniform(self.net.faults.reset_after_s), self.kill)

    def kill(self) -> None:
        if self.dead:
            return
        self.dead = True
        self.net.trace("connection_reset", self.id)
        for pipe in (self.to_server, self.to_client):
            pipe.reader.set_exception(ConnectionResetError("sim: connection reset"))
        self.net.links.pop(self.id, None)


class SimNetwork:
    """Listeners by port and the live connections between shard_wire clients and servers."""

    def __init__(self, rng: random.Random, faults: NetFaults, trace: Callable[..., None]) -> None:
        self.faults = faults
        self.faults_on = True
        self.trace = trace
        self.links: dict[int, _Link] = {}
        self.link_ids = itertools.count(1)
        self.frames = 0
        self._rng = rng
        self._ports = itertools.count(1)
        self._listeners: dict[int, Accept] = {}

    def listen(self, accept: Accept) -> int:
        port = next(self._ports)
        self._listeners[port] = accept
        return port

    def unlisten(self, port: int) -> None:
        """The listening process is gone: refuse new connections and reset its open ones."""
        self._listeners.pop(port, None)
        for link in [link for link in self.links.values() if link.port == port]:
            link.kill()

    async def open(self, endpoint: ShardEndpoint) -> ShardConnection:
        """What ShardConnection.open does, over this network."""
        await asyncio.sleep(self.uniform(self.faults.latency_s) * 3)  # the handshake's round trips
        accept = self._listeners.get(endpoint.port)
        if accept is None:
            raise ConnectionRefusedError(f"sim: nothing listens on port {endpoint.port}")
        link = _Link(self, endpoint.port)
        self.links[link.id] = link
        accept(link.to_server.reader, SimWriter(link.to_client))
        writer = SimWriter(link.to_server)
        writer.write(_frame(endpoint.token))
        return ShardConnection(link.to_client.reader, writer, endpoint)

    def kill_one(self) -> None:
        if self.links:
            self._rng.choice(sorted(self.links.values(), key=lambda link: link.id)).kill()

    def calm(self) -> None:
        self.faults_on = False

    def draw(self, p: float) -> bool:
        return self.faults_on and p > 0 and self._rng.random() < p

    def uniform(self, bounds: tuple[float, float]) -> float:
        return self._rng.uniform(*bounds)
