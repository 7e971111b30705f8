"""Just enough of the MySQL client/server protocol for a fault-injecting proxy.

A packet is a 3-byte little-endian payload length, a 1-byte sequence id, then the payload. A client
command starts at sequence id 0 (handshake packets never do), its first payload byte is the command
(COM_QUERY = 0x03, followed by the query text). The server answers a COM_QUERY with, per statement,
an OK, an ERR, or a result set; the OK or EOF closing each carries status flags saying whether more
results follow and whether a transaction is open. ResponseReader follows that to tell where one
command's answer ends and what state it left the session in.
"""

from __future__ import annotations

import asyncio
import re

HEADER_BYTES = 4
MAX_PAYLOAD = 0xFFFFFF
COM_QUERY = 0x03
CLIENT_DEPRECATE_EOF = 1 << 24
SERVER_STATUS_IN_TRANS = 0x0001
SERVER_MORE_RESULTS_EXISTS = 0x0008

_LAST_STATEMENT_IS_COMMIT = re.compile(rb"(?:^|;)\s*COMMIT\s*;?\s*$", re.IGNORECASE)
_A_STATEMENT_WRITES = re.compile(rb"(?:^|;)\s*(?:INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


class Packet:
    """One protocol packet: its raw bytes (header included), sequence id and payload."""

    __slots__ = ("payload", "raw", "sequence_id")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.sequence_id = raw[3]
        self.payload = memoryview(raw)[HEADER_BYTES:]


async def read_packet(reader: asyncio.StreamReader) -> Packet:
    """The next packet; asyncio.IncompleteReadError at end of stream."""
    header = await reader.readexactly(HEADER_BYTES)
    length = int.from_bytes(header[:3], "little")
    return Packet(header + await reader.readexactly(length))


def query_text(packet: Packet) -> bytes | None:
    """The text of a COM_QUERY command packet, None for any other packet."""
    if packet.sequence_id == 0 and len(packet.payload) >= 1 and packet.payload[0] == COM_QUERY:
        return bytes(packet.payload[1:])
    return None


def commits(query: bytes) -> bool:
    """Whether a query's last statement is COMMIT (asyncmy's commit() sends exactly `COMMIT`)."""
    return _LAST_STATEMENT_IS_COMMIT.search(query) is not None


def writes(query: bytes) -> bool:
    """Whether any statement of a query is an INSERT, UPDATE, DELETE or REPLACE."""
    return _A_STATEMENT_WRITES.search(query) is not None


def deprecates_eof(handshake_response: Packet) -> bool:
    """Whether the client's handshake response asks for result sets without EOF packets."""
    flags = int.from_bytes(handshake_response.payload[:4], "little")
    return bool(flags & CLIENT_DEPRECATE_EOF)


def _lenenc_size(payload: memoryview, at: int) -> int:
    first = payload[at]
    return {0xFC: 3, 0xFD: 4, 0xFE: 9}.get(first, 1)


def _ok_status(payload: memoryview) -> int:
    """Status flags of an OK packet (header 0x00, or 0xFE closing a result set without EOF)."""
    at = 1
    at += _lenenc_size(payload, at)  # affected rows
    at += _lenenc_size(payload, at)  # last insert id
    return int.from_bytes(payload[at : at + 2], "little")


class ResponseReader:
    """Follows the server's answer to one COM_QUERY, packet by packet.

    `feed` returns True on the packet that ends the answer; `status` then holds the last status
    flags the server sent, and `failed` whether it ended with an ERR (which ends a multi-statement
    query: its later statements are not run)."""

    def __init__(self, *, deprecate_eof: bool) -> None:
        self._deprecate_eof = deprecate_eof
        self._state = "start"
        self._columns_left = 0
        self.status = 0
        self.failed = False

    def feed(self, packet: Packet) -> bool:
        payload = packet.payload
        head = payload[0] if payload else None
        if self._state == "start":
            if head == 0x00:
                return self._ended(_ok_status(payload))
            if head == 0xFF:
                return self._failed()
            if head == 0xFB:  # LOAD DATA LOCAL: not something this proxy follows
                return self._ended(0)
            self._columns_left = payload[0]  # a column count; lenenc, but never above 250 here
            self._state = "columns"
            return False
        if self._state == "columns":
            self._columns_left -= 1
            if self._columns_left == 0:
                self._state = "rows" if self._deprecate_eof else "eof_after_columns"
            return False
        if self._state == "eof_after_columns":
            self._state = "rows"
            return False
        # rows: a row never starts with 0xFE unless it is longer than a packet can be
        if head == 0xFF:
            return self._failed()
        if head == 0xFE and len(payload) < MAX_PAYLOAD:
            status = _ok_status(payload) if self._deprecate_eof else int.from_bytes(payload[3:5], "little")
            return self._ended(status)
        return False

    def _failed(self) -> bool:
        self.failed = True
        self.status = 0
        return True

    def _ended(self, status: int) -> bool:
        self.status = status
        if status & SERVER_MORE_RESULTS_EXISTS:
            self._state = "start"
            return False
        return True
