"""bench.dated_search_scale: a small run answers exactly (it checks its own totals) and prints every row."""

from __future__ import annotations

from bench.dated_search_scale import run


async def test_a_small_run_checks_its_answers_and_prints_each_row(capsys):
    await run(rooms=3_000, shard_count=2, taken=0.3, searches=2, runtime="local")
    out = capsys.readouterr().out
    for row in ("exact, page 1", "exact, page 20 (of 100)", "per-room reads of every match", "first 1000 only"):
        assert row in out, out
    assert "total: exact 2100, first 1000 only" in out
