"""python -m bench.shard_commands: its scenarios are what they say, and a run prints every stage."""

from __future__ import annotations

from bench.shard_commands import WINDOW, main, measure, run_batch, scenarios
from roombook.domain.nights import NightStatus


def test_the_windows_are_booked_as_the_scenarios_say():
    cases = scenarios(10)
    full = cases["refused, window full"].calendar.rows()
    jammed = cases["refused, 75% booked"].calendar.rows()
    rooms = {night.room_id for night in full}
    assert len(full) == WINDOW * len(rooms)
    assert all(night.status is NightStatus.BOOKED for night in full + jammed)
    for room_id in rooms:
        booked = sum(1 for night in jammed if night.room_id == room_id)
        assert 0.75 * WINDOW <= booked < WINDOW


def test_a_repeatable_scenario_leaves_its_calendar_as_it_found_it():
    case = scenarios(500)["refused, 75% booked"]
    before = sorted(case.calendar.rows(), key=lambda n: (n.room_id, n.date))
    first = run_batch(case.calendar, case.commands, undo=True)
    again = run_batch(case.calendar, case.commands, undo=True)
    assert sorted(case.calendar.rows(), key=lambda n: (n.room_id, n.date)) == before
    assert first == again
    assert any(getattr(reply, "status", None) == "held" for reply in first)  # some stays still fit


def test_every_stage_is_measured_with_the_replies_it_is_named_for():
    results = {name: (micros, kinds) for name, micros, kinds in measure(600, 1)}
    assert list(results) == [
        "decode a call's frame",
        "refused, window full",
        "refused, 75% booked",
        "hold placed",
        "hold confirmed",
        "encode the replies",
    ]
    assert all(micros > 0 for micros, _ in results.values())
    assert results["refused, window full"][1] == {"nights_unavailable": 600}
    assert results["hold placed"][1] == {"held": 600}
    assert results["hold confirmed"][1] == {"booked": 600}
    jammed = results["refused, 75% booked"][1]
    assert jammed["nights_unavailable"] > jammed["held"] > 0


def test_the_command_prints_a_line_per_stage(capsys):
    main(["--commands", "300", "--repeat", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["stage", "µs/command"]
    assert len(lines) == 7
    assert "nights_unavailable 300" in lines[2]
