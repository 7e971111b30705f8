"""Real servers for the event tests (a pytest plugin, loaded by tests/conftest.py).

moto      an SNS+SQS server (`moto_server`, a subprocess on a free loopback port) started once
          per session and reset before each test that uses it; AWS credentials are dummies
smtp      an aiosmtpd server on a free loopback port, per test, keeping every message it got
"""

from __future__ import annotations

import email
import email.message
import email.policy
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, *, timeout_s: float = 15.0, interval_s: float = 0.05, what: str = "condition") -> None:
    """Poll a synchronous condition until it holds (for conditions of other processes)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint URL of a moto server shared by the session."""
    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert proc.poll() is None, f"moto_server exited: {proc.stderr.read().decode()[-2000:]}"
            try:
                with urllib.request.urlopen(url + "/moto-api/", timeout=1):
                    return True
            except OSError:
                return False

        wait_for(up, timeout_s=30, what="moto_server to listen")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()


@pytest.fixture
def moto(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto endpoint, emptied of every topic and queue, with dummy AWS credentials set."""
    request = urllib.request.Request(moto_server + "/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    return moto_server


class SmtpInbox:
    """What an SMTP server on loopback received, as parsed messages (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[email.message.EmailMessage] = []
        self.port = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's handler hook
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self._lock:
            self._messages.append(message)
        return "250 OK"

    @property
    def messages(self) -> list[email.message.EmailMessage]:
        with self._lock:
            return list(self._messages)


@pytest.fixture
def smtp() -> Iterator[SmtpInbox]:
    inbox = SmtpInbox()
    inbox.port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def event_env(**extra: str) -> dict[str, str]:
    """An environment for a roombook subprocess: this one without ROOMBOOK_* and RAY_*, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
    return env | AWS_TEST_ENV | extra
