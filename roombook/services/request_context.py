"""The request a piece of work is done for, as the API process sees it: its id travels with the task
(and the tasks it starts) into log lines and the events the work records, so one request can be
followed from the front's log through the outbox to the consumers."""

from __future__ import annotations

import contextvars
import re
import secrets

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("roombook_request_id", default=None)

REQUEST_ID_MAX_CHARS = 128
# Printable, no spaces, quotes or separators a log or header parser could trip on.
_ACCEPTED = re.compile(rf"^[A-Za-z0-9._:@+=/-]{{1,{REQUEST_ID_MAX_CHARS}}}$")


def accepted_request_id(given: str | None) -> str:
    """The caller's id if it is a sane one (a proxy's or a client's), else a new random one."""
    if given is not None and _ACCEPTED.match(given):
        return given
    return "req_" + secrets.token_hex(12)


def current_request_id() -> str | None:
    return REQUEST_ID.get()
