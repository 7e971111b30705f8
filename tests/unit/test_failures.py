"""A refusal crosses from the shard to the client as a Failure reply and is raised again as itself."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from roombook.domain import errors
from roombook.domain.commands import Reply, failure_of, raise_failure


@pytest.mark.parametrize(
    "error",
    [
        errors.NightsUnavailable(7, [dt.date(2031, 1, 2), dt.date(2031, 1, 3)]),
        errors.HoldExpired("hold h expired"),
        errors.UnknownHold("no hold h"),
        errors.HoldMismatch("h holds other nights"),
        errors.InvalidStay("too long"),
        errors.ShardFenced("epoch 3 was fenced"),
        errors.ShardUnavailable("store write failed"),
    ],
)
def test_every_refusal_is_raised_again_as_itself_after_the_wire(error):
    wire = msgspec.msgpack.encode(failure_of(error))
    reply = msgspec.msgpack.decode(wire, type=Reply)
    with pytest.raises(type(error)) as raised:
        raise_failure(reply)
    assert type(raised.value) is type(error) and str(raised.value) == str(error)
    if isinstance(error, errors.NightsUnavailable):
        assert (raised.value.room_id, raised.value.nights) == (error.room_id, error.nights)
