"""A fault-injecting TCP proxy in front of a MySQL/MariaDB server, on loopback.

It forwards everything until told to inject one of three faults:

- `drop_commit_ack(n)`: the next n COMMITs (a COM_QUERY whose last statement is COMMIT) reach the
  server; once the server has answered one, the answer is swallowed and both sides are closed. The
  server did commit; the client sees "Lost connection" and cannot tell.
- `cut_mid_transaction(n)`: the next n writes (a COM_QUERY with an INSERT/UPDATE/DELETE/REPLACE and
  no COMMIT) that leave a transaction open are answered by closing both sides instead, so the COMMIT
  is never sent and the server rolls the transaction back.
- both take `only_if=b"..."`: then only a transaction whose text so far (every query since the last
  one that ended a transaction, this one included) contains those bytes is hit, e.g.
  `only_if=b"shard_leases"` for a shard's batch write, not the outbox relay's.
- `outage(True)`: the listening socket is closed (new connections are refused) and every live
  connection is cut; `outage(False)` listens again on the same port.

`counters` says what it did. Three ways to run it:

    async with MysqlFaultProxy("127.0.0.1", 3306) as proxy:      # in asyncio code
        dsn = proxy.through("mysql://root@127.0.0.1:3306/db")
        proxy.drop_commit_ack()
        await proxy.wait_for("acks_dropped", 1, timeout_s=10)

    with ProxyThread("127.0.0.1", 3306) as proxy:               # in sync code: same methods, sync
        proxy.drop_commit_ack(); proxy.outage(True)

    python -m bench.chaos.proxy --target 127.0.0.1:3306 --listen-port 13306 --control-port 13307

The command's control port takes one command per line and answers each with one JSON line (the
counters): `drop-commit-ack N [ONLY_IF]`, `cut-mid-transaction N [ONLY_IF]`, `outage on`,
`outage off`, `counters`; `control(13307, "outage on")` sends one from Python. It runs until
SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import signal
import socket
import threading
import urllib.parse
from collections.abc import Coroutine
from typing import Any, Literal

from bench.chaos import mysql_packets
from bench.chaos.mysql_packets import Packet, ResponseReader

Action = Literal["forward", "drop_ack", "cut"]


@dataclasses.dataclass
class ProxyCounters:
    """What the proxy did since it started."""

    connections: int = 0  # client connections accepted (and connected to the target)
    target_unreachable: int = 0  # accepted client connections closed because the target refused
    commits_forwarded: int = 0  # COMMITs answered OK to the client
    acks_dropped: int = 0  # COMMITs answered OK by the server but not to the client
    transactions_cut: int = 0  # connections closed with a write's transaction open
    outages: int = 0  # times outage(True) took effect
    cut_by_outage: int = 0  # live connections closed by an outage


class _Command:
    """A COM_QUERY in flight on one link and what to do with its answer."""

    def __init__(self, text: bytes, action: Action, only_if: bytes, *, deprecate_eof: bool) -> None:
        self.text = text
        self.action = action
        self.only_if = only_if
        self.reader = ResponseReader(deprecate_eof=deprecate_eof)
        self.held: list[bytes] = []


class MysqlFaultProxy:
    """Forwards 127.0.0.1:`port` to the target; at most the armed number of each fault happens."""

    def __init__(self, target_host: str, target_port: int, *, listen_port: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = listen_port
        self.counters = ProxyCounters()
        self._acks_to_drop: list[bytes] = []  # one `only_if` per armed fault (b"": any transaction)
        self._transactions_to_cut: list[bytes] = []
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # one per client connection, until it ends
        self._changed = asyncio.Event()
        self._in_outage = False

    async def __aenter__(self) -> MysqlFaultProxy:
        await self._listen()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._stop_listening()
        for link in list(self._links):
            link.cut()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def through(self, dsn: str) -> str:
        """`dsn` (mysql://user:pass@host:port/db?...) with its host and port replaced by this proxy's."""
        parts = urllib.parse.urlsplit(dsn)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    def drop_commit_ack(self, n: int = 1, *, only_if: bytes = b"") -> None:
        self._acks_to_drop += [only_if] * n

    def cut_mid_transaction(self, n: int = 1, *, only_if: bytes = b"") -> None:
        self._transactions_to_cut += [only_if] * n

    async def outage(self, on: bool) -> None:
        if on and not self._in_outage:
            self._in_outage = True
            self._stop_listening()
            for link in list(self._links):
                link.cut()
                self.counters.cut_by_outage += 1
            self._count("outages")
        elif not on and self._in_outage:
            self._in_outage = False
            await self._listen()

    async def wait_for(self, counter: str, at_least: int, *, timeout_s: float) -> None:
        """Until counters.<counter> reaches `at_least`; TimeoutError after `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            while getattr(self.counters, counter) < at_least:
                self._changed.clear()
                await self._changed.wait()

    def _count(self, counter: str) -> None:
        setattr(self.counters, counter, getattr(self.counters, counter) + 1)
        self._changed.set()

    def _plan(self, query: bytes, transaction: bytes) -> tuple[Action, bytes]:
        """What to do with a query, given its transaction's text so far (the query included), and
        the `only_if` of the fault it takes, to give back if the fault does not happen."""
        action: Action
        if mysql_packets.commits(query):
            armed, action = self._acks_to_drop, "drop_ack"
        elif mysql_packets.writes(query):
            armed, action = self._transactions_to_cut, "cut"
        else:
            return "forward", b""
        for i, only_if in enumerate(armed):
            if only_if in transaction:
                return action, armed.pop(i)
        return "forward", b""

    def _unplan(self, action: Action, only_if: bytes) -> None:
        """Give back a fault that did not happen (the server refused the COMMIT, no transaction was open)."""
        if action == "drop_ack":
            self._acks_to_drop.append(only_if)
        elif action == "cut":
            self._transactions_to_cut.append(only_if)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _on_client(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._link(client_reader, client_writer)
        finally:
            self._tasks.discard(task)

    async def _link(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            self._count("target_unreachable")
            client_writer.transport.abort()
            return
        link = _Link(self, client_reader, client_writer, server_reader, server_writer)
        self._links.add(link)
        self._count("connections")
        try:
            await link.run()
        finally:
            self._links.discard(link)


class _Link:
    """One client connection and its connection to the target, pumped both ways."""

    def __init__(
        self,
        proxy: MysqlFaultProxy,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        server_reader: asyncio.StreamReader,
        server_writer: asyncio.StreamWriter,
    ) -> None:
        self._proxy = proxy
        self._client_reader = client_reader
        self._client_writer = client_writer
        self._server_reader = server_reader
        self._server_writer = server_writer
        self._deprecate_eof = False
        self._command: _Command | None = None
        self._transaction: list[bytes] = []  # the queries of the open transaction

    async def run(self) -> None:
        pumps = [asyncio.create_task(self._client_to_server()), asyncio.create_task(self._server_to_client())]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        self.cut()
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)

    def cut(self) -> None:
        self._client_writer.transport.abort()
        self._server_writer.transport.abort()

    async def _client_to_server(self) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                packet = await mysql_packets.read_packet(self._client_reader)
                if packet.sequence_id == 1 and self._command is None and len(packet.payload) >= 4:
                    # the handshake response (or a later auth packet, which never carries the flag)
                    self._deprecate_eof = self._deprecate_eof or mysql_packets.deprecates_eof(packet)
                if packet.sequence_id == 0:
                    self._command = self._command_of(packet)
                self._server_writer.write(packet.raw)
                await self._server_writer.drain()

    def _command_of(self, packet: Packet) -> _Command | None:
        text = mysql_packets.query_text(packet)
        if text is None:
            return None
        self._transaction.append(text)
        action, only_if = self._proxy._plan(text, b";".join(self._transaction))
        return _Command(text, action, only_if, deprecate_eof=self._deprecate_eof)

    async def _server_to_client(self) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                packet = await mysql_packets.read_packet(self._server_reader)
                command = self._command
                if command is None:
                    await self._to_client(packet.raw)
                    continue
                ended = command.reader.feed(packet)
                if ended and not command.reader.status & mysql_packets.SERVER_STATUS_IN_TRANS:
                    self._transaction.clear()
                if command.action == "forward":
                    await self._to_client(packet.raw)
                    if ended and mysql_packets.commits(command.text) and not command.reader.failed:
                        self._proxy._count("commits_forwarded")
                    continue
                command.held.append(packet.raw)
                if not ended:
                    continue
                if self._fault_happens(command):
                    return
                self._proxy._unplan(command.action, command.only_if)
                for raw in command.held:
                    await self._to_client(raw)
                command.held.clear()

    def _fault_happens(self, command: _Command) -> bool:
        """Whether the held answer makes the planned fault real; if so it is counted and both sides cut."""
        if command.reader.failed:
            return False
        if command.action == "drop_ack":
            self._proxy._count("acks_dropped")
        elif command.reader.status & mysql_packets.SERVER_STATUS_IN_TRANS:
            self._proxy._count("transactions_cut")
        else:
            return False
        self.cut()
        return True

    async def _to_client(self, raw: bytes) -> None:
        self._client_writer.write(raw)
        await self._client_writer.drain()


class ProxyThread:
    """A MysqlFaultProxy on its own event loop in a daemon thread, with the same methods, sync."""

    def __init__(self, target_host: str, target_port: int, *, listen_port: int = 0) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mysql-fault-proxy", daemon=True)
        self._target = (target_host, target_port, listen_port)
        self.proxy: MysqlFaultProxy

    def __enter__(self) -> ProxyThread:
        self._thread.start()
        self.proxy = self._call(self._start())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._call(self.proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _start(self) -> MysqlFaultProxy:
        host, port, listen_port = self._target
        return await MysqlFaultProxy(host, port, listen_port=listen_port).__aenter__()

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def port(self) -> int:
        return self.proxy.port

    def through(self, dsn: str) -> str:
        return self.proxy.through(dsn)

    def drop_commit_ack(self, n: int = 1, *, only_if: bytes = b"") -> None:
        self._loop.call_soon_threadsafe(functools.partial(self.proxy.drop_commit_ack, n, only_if=only_if))

    def cut_mid_transaction(self, n: int = 1, *, only_if: bytes = b"") -> None:
        self._loop.call_soon_threadsafe(functools.partial(self.proxy.cut_mid_transaction, n, only_if=only_if))

    def outage(self, on: bool) -> None:
        self._call(self.proxy.outage(on))

    def counters(self) -> ProxyCounters:
        async def copy() -> ProxyCounters:
            return dataclasses.replace(self.proxy.counters)

        return self._call(copy())

    def wait_for(self, counter: str, at_least: int, *, timeout_s: float) -> None:
        self._call(self.proxy.wait_for(counter, at_least, timeout_s=timeout_s))


async def _serve_control(proxy: MysqlFaultProxy, control_port: int) -> asyncio.Server:
    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                reply = await _obey(proxy, line.decode().split())
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        writer.close()

    return await asyncio.start_server(on_connection, "127.0.0.1", control_port)


async def _obey(proxy: MysqlFaultProxy, words: list[str]) -> dict[str, object]:
    match words:
        case ["drop-commit-ack", n, *only_if]:
            proxy.drop_commit_ack(int(n), only_if=" ".join(only_if).encode())
        case ["cut-mid-transaction", n, *only_if]:
            proxy.cut_mid_transaction(int(n), only_if=" ".join(only_if).encode())
        case ["outage", ("on" | "off") as state]:
            await proxy.outage(state == "on")
        case ["counters"]:
            pass
        case _:
            return {"error": f"unknown command: {' '.join(words)}"}
    return dataclasses.asdict(proxy.counters)


def control(control_port: int, command: str, *, timeout_s: float = 10.0) -> dict[str, object]:
    """Send one command to a `python -m bench.chaos.proxy` control port; its counters after it."""
    with socket.create_connection(("127.0.0.1", control_port), timeout=timeout_s) as conn:
        conn.sendall(command.encode() + b"\n")
        return json.loads(conn.makefile().readline())


async def _main(target: str, listen_port: int, control_port: int) -> None:
    host, _, port = target.rpartition(":")
    async with MysqlFaultProxy(host, int(port), listen_port=listen_port) as proxy:
        control_server = await _serve_control(proxy, control_port)
        print(f"proxy 127.0.0.1:{proxy.port} -> {target}, control 127.0.0.1:{control_port}", flush=True)
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await stop.wait()
        control_server.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos.proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="host:port of the MySQL/MariaDB server")
    parser.add_argument("--listen-port", type=int, required=True, help="port on 127.0.0.1 the clients connect to")
    parser.add_argument("--control-port", type=int, required=True, help="port on 127.0.0.1 taking commands")
    args = parser.parse_args()
    asyncio.run(_main(args.target, args.listen_port, args.control_port))


if __name__ == "__main__":
    main()
