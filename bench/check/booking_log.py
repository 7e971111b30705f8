"""The JSON lines bench/locustfile.py writes (one file per Locust process), read back as one log."""

from __future__ import annotations

import datetime as dt
import glob
from collections.abc import Iterable

import msgspec


class LoggedUser(msgspec.Struct, frozen=True, kw_only=True):
    user_id: int
    email: str
    password: str
    region: str
    token: str


class LoggedBooking(msgspec.Struct, frozen=True, kw_only=True):
    """A 201 a client received."""

    booking_id: str
    user_id: int
    room_id: int
    check_in: dt.date
    check_out: dt.date
    nights: int
    key: str = ""


class _Line(msgspec.Struct, kw_only=True):
    kind: str


class _Cancel(msgspec.Struct, kw_only=True):
    booking_id: str
    user_id: int


class _Outcomes(msgspec.Struct, kw_only=True):
    counts: dict[str, int]


class BookingLog(msgspec.Struct, kw_only=True):
    """Everything the clients were told, merged over every file."""

    files: list[str] = []
    users: dict[int, LoggedUser] = {}
    bookings: dict[str, LoggedBooking] = {}
    cancelling: set[str] = set()  # a cancel was sent (a run cut off mid-request may have applied it)
    cancelled: set[str] = set()  # a cancel was answered CANCELLED
    outcomes: dict[str, int] = {}  # booking answers by status, and replay_same / replay_mismatch
    problems: list[str] = []  # lines that contradict each other


_decode_line = msgspec.json.Decoder(_Line)
_decoders: dict[str, msgspec.json.Decoder[LoggedUser | LoggedBooking | _Cancel | _Outcomes]] = {
    "user": msgspec.json.Decoder(LoggedUser),
    "booking": msgspec.json.Decoder(LoggedBooking),
    "cancelling": msgspec.json.Decoder(_Cancel),
    "cancelled": msgspec.json.Decoder(_Cancel),
    "outcomes": msgspec.json.Decoder(_Outcomes),
}


def expand(patterns: Iterable[str]) -> list[str]:
    """Every file the glob patterns name, sorted, each once."""
    return sorted({path for pattern in patterns for path in glob.glob(pattern)})


def read_log(paths: Iterable[str]) -> BookingLog:
    log = BookingLog()
    for path in paths:
        log.files.append(path)
        with open(path, encoding="utf-8") as f:
            for number, raw in enumerate(f, 1):
                if raw.strip():
                    _add(log, raw, f"{path}:{number}")
    return log


def _add(log: BookingLog, raw: str, where: str) -> None:
    try:
        kind = _decode_line.decode(raw).kind
        record = _decoders[kind].decode(raw)
    except (msgspec.DecodeError, KeyError) as exc:
        log.problems.append(f"{where}: unreadable line ({exc})")
        return
    match record:
        case LoggedUser():
            log.users[record.user_id] = record
        case LoggedBooking():
            known = log.bookings.setdefault(record.booking_id, record)
            if known.user_id != record.user_id or known.room_id != record.room_id:
                log.problems.append(f"{where}: booking {record.booking_id} was answered to two users or rooms")
        case _Cancel() if kind == "cancelling":
            log.cancelling.add(record.booking_id)
        case _Cancel():
            log.cancelled.add(record.booking_id)
        case _Outcomes():
            for outcome, n in record.counts.items():
                log.outcomes[outcome] = log.outcomes.get(outcome, 0) + n
