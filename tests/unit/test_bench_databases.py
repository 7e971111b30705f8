"""bench.databases.connect gives up on a server that accepts a connection and never greets."""

from __future__ import annotations

import asyncio

import pytest

from bench import databases
from roombook.storage.sql.mysql_db import MysqlTarget


async def test_a_connection_with_no_greeting_is_tried_again_then_given_up(monkeypatch):
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # as a backlog overflow leaves it: connected, and no greeting ever

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setattr(databases, "CONNECT_TIMEOUT_S", 0.2)
    try:
        with pytest.raises(TimeoutError):
            await databases.connect(MysqlTarget(host="127.0.0.1", port=port, database="test"))
        assert len(accepted) == databases.CONNECT_ATTEMPTS
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
