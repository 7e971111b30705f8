"""A refusal crosses from the shard to the client as a Failure reply and is raised again as itself."""

from __future__ import annotations

import datetime as dt
import decimal

import msgspec
import pytest

from roombook.domain import errors
from roombook.domain.bookings import BookingRequest, Refusal, pending_booking, stay_quote
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


def _every_error_class() -> list[type[errors.RoombookError]]:
    found, todo = [], [errors.RoombookError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_each_kind_names_one_error_class_and_leads_back_to_it():
    declared = {cls: cls.__dict__["kind"] for cls in _every_error_class() if "kind" in cls.__dict__}
    assert len(set(declared.values())) == len(declared)
    for cls, kind in declared.items():
        assert errors.error_of_kind(kind) is (cls if cls is not errors.RoombookError else errors.RoombookError)
    assert errors.error_of_kind("a kind from a newer version") is errors.RoombookError


def test_a_subclass_answers_as_its_parent_unless_it_says_otherwise():
    assert (errors.ShardFenced.status, errors.ShardFenced.problem, errors.ShardFenced.outcome) == (
        503,
        "unavailable",
        "shard_unavailable",
    )
    assert errors.ShardFenced.kind == "shard_fenced" and errors.ShardDiverged.kind == "shard_unavailable"
    assert errors.RefreshTokenReused.status == 401


def test_two_classes_cannot_claim_one_kind():
    with pytest.raises(TypeError, match="hold_expired"):

        class Late(errors.RoombookError, kind="hold_expired"):
            pass


def test_every_error_answers_a_client_error_or_an_outage_with_a_problem_type():
    for cls in _every_error_class():
        assert 400 <= cls.status < 600 and cls.problem and cls.title and cls.outcome, cls


@pytest.mark.parametrize(
    "error",
    [
        errors.NightsUnavailable(7, [dt.date(2031, 1, 3), dt.date(2031, 1, 2)]),
        errors.PaymentDeclined("insufficient_funds"),
        errors.HoldExpired("late"),
        errors.ShardUnavailable("down"),
    ],
)
def test_a_refusal_kept_with_a_booking_is_raised_again_as_the_first_answer_was(error):
    request = BookingRequest(room_id=7, check_in=dt.date(2031, 1, 2), check_out=dt.date(2031, 1, 5), guests=1)
    booking = pending_booking(
        booking_id="bk_1",
        user_id=1,
        request=request,
        quote=stay_quote(request, price_per_night=decimal.Decimal("100.00"), currency="EUR"),
        idempotency_key="k",
        now=dt.datetime(2031, 1, 1, tzinfo=dt.UTC),
    )
    refusal = Refusal.of(error)
    again = msgspec.json.decode(msgspec.json.encode(refusal), type=Refusal).error(booking)
    assert type(again) is type(error)
    match error:
        case errors.NightsUnavailable():
            assert (again.room_id, again.nights) == (7, sorted(error.nights))
        case errors.PaymentDeclined():
            assert again.decline_code == error.decline_code
