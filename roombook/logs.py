"""How the processes log: one JSON object a line for machines, or plain text on a terminal.

`ROOMBOOK_LOG_FORMAT=auto` (the default) writes text when stderr is a terminal and JSON otherwise
(a container, a pipe, a file); `json` and `text` force one. Every record carries the id of the
request it was logged for (`request_id`, from services/request_context), so the API's request lines
(logger `roombook.access`), its shard-call lines and any other record of one request share it.

Whatever a record holds, what is written is scrubbed: access and refresh tokens, Bearer headers,
passwords and secrets given as `name=value`, extra fields named like a secret, and card numbers
never reach the output.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

from roombook.services.payments import looks_like_card_number
from roombook.services.request_context import current_request_id

ACCESS_LOGGER = "roombook.access"
REDACTED = "[redacted]"

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+")
_REFRESH_TOKEN = re.compile(r"\b(?:eu|us)\.[A-Za-z0-9_-]{20,}")
_NAMED_SECRET = re.compile(
    r"(?i)\b(password|passwd|secret|token|authorization|cookie|card_number)(\"?\s*[:=]\s*\"?)[^\s\"',;&]+"
)
_DIGIT_RUN = re.compile(r"[0-9][0-9 _.-]{10,}[0-9]")
_SECRET_FIELD = re.compile(r"(?i)password|passwd|secret|token|authorization|cookie|card")


def scrub(text: str) -> str:
    """text without the secrets it may hold (see the module's docstring)."""
    text = _JWT.sub(REDACTED, text)
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    text = _REFRESH_TOKEN.sub(REDACTED, text)
    text = _NAMED_SECRET.sub(rf"\1\2{REDACTED}", text)
    if any(char.isdigit() for char in text):
        text = _DIGIT_RUN.sub(lambda m: "[card number]" if looks_like_card_number(m.group()) else m.group(), text)
    return text


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class ScrubbingJsonFormatter(JsonFormatter):
    """python-json-logger's formatter; fields named like a secret dropped, every value scrubbed."""

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
        json_ensure_ascii=False,
    )


def text_formatter() -> logging.Formatter:
    return ScrubbingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def configure_logging(log_format: str, *, verbose: bool = False, stream: IO[str] | None = None) -> logging.Handler:
    """Send every record of this process to `stream` (stderr) in `log_format` ("auto", "json" or
    "text"): WARNING and above, INFO with `verbose`, and always the access lines. Returns the handler."""
    stream = sys.stderr if stream is None else stream
    as_json = log_format == "json" or (log_format == "auto" and not _is_terminal(stream))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter() if as_json else text_formatter())
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)
    return handler


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a file
        return False
