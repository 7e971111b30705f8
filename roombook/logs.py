"""How the processes log: one JSON object a line for machines, or plain text on a terminal.

`ROOMBOOK_LOG_FORMAT=auto` (the default) writes text when stderr is a terminal and JSON otherwise
(a container, a pipe, a file); `json` and `text` force one. Every record carries the id of the
request it was logged for (`request_id`, from services/request_context), so the API's request lines
(logger `roombook.access`), its shard-call lines and any other record of one request share it.

Whatever a record holds, what is written is scrubbed: access and refresh tokens, Bearer headers,
passwords and secrets given as `name=value`, extra fields named like a secret, and card numbers
never reach the output.

Logging never blocks the event loop: a record is queued (with its request id, taken in the
caller's context) and one thread writes the queue out. If the output stops draining (a full pipe
nobody reads), records beyond MAX_QUEUED are dropped and counted rather than stalling requests.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import re
import sys
import threading
import time
from typing import IO, Any

from pythonjsonlogger.msgspec import MsgspecFormatter

from roombook.services.payments import looks_like_card_number
from roombook.services.request_context import current_request_id

ACCESS_LOGGER = "roombook.access"
REDACTED = "[redacted]"
MAX_QUEUED = 10_000  # records waiting for the writer thread; more are dropped

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+")
_REFRESH_TOKEN = re.compile(r"\b(?:eu|us)\.[A-Za-z0-9_-]{20,}")
_NAMED_SECRET = re.compile(
    r"(?i)\b(password|passwd|secret|token|authorization|cookie|card_number)(\"?\s*[:=]\s*\"?)[^\s\"',;&]+"
)
_DIGIT_RUN = re.compile(r"[0-9][0-9 _.-]{10,}[0-9]")
_SECRET_FIELD = re.compile(r"(?i)password|passwd|secret|token|authorization|cookie|card")


_NAMES = ("password", "passwd", "secret", "token", "authorization", "cookie", "card_number")


def scrub(text: str) -> str:
    """text without the secrets it may hold (see the module's docstring). Each pattern runs only
    where a cheap look for its marker finds one: most lines (a request line) hold none."""
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    lowered = text.lower()
    if "bearer" in lowered:
        text = _BEARER.sub(rf"\1 {REDACTED}", text)
    if "eu." in text or "us." in text:
        text = _REFRESH_TOKEN.sub(REDACTED, text)
    if any(name in lowered for name in _NAMES):
        text = _NAMED_SECRET.sub(rf"\1\2{REDACTED}", text)
    if _DIGIT_RUN.search(text):
        text = _DIGIT_RUN.sub(lambda m: "[card number]" if looks_like_card_number(m.group()) else m.group(), text)
    return text


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class ScrubbingJsonFormatter(MsgspecFormatter):
    """python-json-logger's formatter (msgspec encodes); fields named like a secret dropped, every
    value scrubbed."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for key in list(log_data):
            if key != "request_id" and _SECRET_FIELD.search(key):
                log_data[key] = REDACTED
        return super().process_log_record(log_data)

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class ScrubbingTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def json_formatter() -> logging.Formatter:
    return ScrubbingJsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def text_formatter() -> logging.Formatter:
    return ScrubbingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    """Queues records for the writer thread; a full queue drops the record instead of waiting."""

    def __init__(self, records: queue.Queue[logging.LogRecord | None]) -> None:
        super().__init__(records)
        self.dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The writer formats it: this is the record's only handler, and its arguments are values
        # already (the request id was attached by the filter, in the caller's context).
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


class _Output(logging.StreamHandler):
    """The stream the records go to. A failed write is counted, not reported: the report would go
    to the same stream (stderr) that just failed."""

    failed = 0

    def handleError(self, record: logging.LogRecord) -> None:
        type(self).failed += 1


class _Writer:
    """The thread that writes queued records out through `handler`, until it is told to stop."""

    def __init__(self, handler: logging.Handler) -> None:
        self.handler = handler
        self.records: queue.Queue[logging.LogRecord | None] = queue.Queue(MAX_QUEUED)
        self.front = _DroppingQueueHandler(self.records)
        self.front.addFilter(_RequestIdFilter())  # in the caller's thread, where its context is
        self._thread = threading.Thread(target=self._drain, name="roombook-log-writer", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            record = self.records.get()
            try:
                if record is None:
                    return
                self.handler.handle(record)
            finally:
                self.records.task_done()

    def flush(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.records.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def stop(self, timeout_s: float) -> None:
        """Write out what is queued (for up to timeout_s: the output may be stuck), then end."""
        try:
            self.records.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)


_writer: _Writer | None = None


def configure_logging(log_format: str, *, verbose: bool = False, stream: IO[str] | None = None) -> logging.Handler:
    """Send every record of this process to `stream` (stderr) in `log_format` ("auto", "json" or
    "text"): WARNING and above, INFO with `verbose`, and always the access lines. Returns the
    handler that formats and writes them (on the writer thread)."""
    global _writer
    stream = sys.stderr if stream is None else stream
    as_json = log_format == "json" or (log_format == "auto" and not _is_terminal(stream))
    handler = _Output(stream)
    handler.setFormatter(json_formatter() if as_json else text_formatter())
    stop_logging()
    _writer = _Writer(handler)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(_writer.front)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)
    return handler


def flush_logs(timeout_s: float = 5.0) -> None:
    """Wait until every record logged so far is written (tests; the process's end does it too)."""
    if _writer is not None:
        _writer.flush(timeout_s)


def dropped_records() -> int:
    """Records dropped because the output did not drain (see MAX_QUEUED)."""
    return _writer.front.dropped if _writer is not None else 0


@atexit.register
def stop_logging(timeout_s: float = 2.0) -> None:
    """Stop the writer thread of configure_logging, after it wrote what is queued."""
    global _writer
    if _writer is not None:
        root = logging.getLogger()
        if _writer.front in root.handlers:
            root.removeHandler(_writer.front)
        _writer.stop(timeout_s)
        _writer = None


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a file
        return False
