"""Rounds -> one summary per (system, clients, H), the side-by-side table, the targets, and the
results folder (JSON, CSV, PNG charts)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec

from bench.core.rounds import SYSTEMS, RoundResult

B_SYSTEMS = ("B-pool", "B-conn", "B-pool-barging")  # A is compared with the best of those run
_CPU_KEYS = ("client", "db", "actors", "ray_other", "other")
ROUND_HEADER = (
    f"{'system':<8} {'N':>4} {'H':>5} {'attempts/s':>9} {'bookings/s':>9} {'conflicts':>8} {'per bk':>6} {'errors':>5} "
    f"{'locks':>5} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}  {'cores client/db/actors/ray/other':<29} verified"
)


class Summary(msgspec.Struct, kw_only=True):
    """A setting over all its rounds: counts add up, rates and percentiles are medians of rounds."""

    system: str
    clients: int
    hot: int
    rounds: int
    attempts: int
    bookings: int
    conflicts: int
    errors: int
    lock_errors: int
    attempts_per_s: float
    bookings_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_cores: dict[str, float | None]  # CPU seconds per second of the round, per process group
    verified: bool


def summarize(results: Sequence[RoundResult]) -> list[Summary]:
    groups: dict[tuple[str, int, int], list[RoundResult]] = {}
    for r in results:
        groups.setdefault((r.system, r.clients, r.hot), []).append(r)
    out = []
    for (system, clients, hot), rs in groups.items():
        cpu: dict[str, float | None] = {}
        for name in _CPU_KEYS:
            values = [cpu_s / r.elapsed_s for r in rs if (cpu_s := r.cpu_s.get(name)) is not None]
            cpu[name] = statistics.median(values) if values else None
        out.append(
            Summary(
                system=system,
                clients=clients,
                hot=hot,
                rounds=len(rs),
                attempts=sum(r.attempts for r in rs),
                bookings=sum(r.bookings for r in rs),
                conflicts=sum(r.conflicts for r in rs),
                errors=sum(r.errors for r in rs),
                lock_errors=sum(sum(r.lock_errors.values()) for r in rs),
                attempts_per_s=statistics.median(r.attempts_per_s for r in rs),
                bookings_per_s=statistics.median(r.bookings_per_s for r in rs),
                p50_ms=statistics.median(r.attempt_ms["p50"] for r in rs),
                p95_ms=statistics.median(r.attempt_ms["p95"] for r in rs),
                p99_ms=statistics.median(r.attempt_ms["p99"] for r in rs),
                cpu_cores=cpu,
                verified=all(r.verdict.ok for r in rs),
            )
        )
    return out


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def round_line(r: RoundResult) -> str:
    """One line per finished round, as the run goes."""
    cpu = "/".join(_cores(None if (cpu_s := r.cpu_s.get(k)) is None else cpu_s / r.elapsed_s) for k in _CPU_KEYS)
    return (
        f"{r.system:<8} {r.clients:>4} {r.hot:>5} {r.attempts_per_s:>9.0f} {r.bookings_per_s:>9.0f} "
        f"{r.conflicts:>8} {_per_booking(r.conflicts, r.bookings):>6} {r.errors:>5} {sum(r.lock_errors.values()):>5} "
        f"{r.attempt_ms['p50']:>7.1f} {r.attempt_ms['p95']:>7.1f} {r.attempt_ms['p99']:>7.1f}  {cpu:<29} "
        f"{'ok' if r.verdict.ok else 'FAILED'}"
    )


def _per_booking(count: int, bookings: int) -> str:
    """Conflicts per booking: the same for two systems only if they meet the same calendar (see
    workload.aged_start)."""
    return f"{count / bookings:.1f}" if bookings else "-"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def comparison_rows(summaries: Sequence[Summary]) -> list[dict[str, object]]:
    """One row per (clients, H): bookings/s and p99 of each system, and A against the others."""
    by = {(s.system, s.clients, s.hot): s for s in summaries}
    rows = []
    for clients, hot in sorted({(s.clients, s.hot) for s in summaries}):
        row: dict[str, object] = {"clients": clients, "hot": hot}
        for system in SYSTEMS:
            s = by.get((system, clients, hot))
            row[f"{system} bookings/s"] = None if s is None else s.bookings_per_s
            row[f"{system} p99 ms"] = None if s is None else s.p99_ms
        b_best = max(
            (by[(b, clients, hot)] for b in B_SYSTEMS if (b, clients, hot) in by),
            key=lambda s: s.bookings_per_s,
            default=None,
        )
        a = by.get(("A", clients, hot))
        a_rate = None if a is None else a.bookings_per_s
        row["B best"] = None if b_best is None else b_best.system
        row["A/B(best)"] = _ratio(a_rate, None if b_best is None else b_best.bookings_per_s)
        c, local = by.get(("C", clients, hot)), by.get(("A-local", clients, hot))
        row["A/C"] = _ratio(a_rate, None if c is None else c.bookings_per_s)
        row["A/A-local"] = _ratio(a_rate, None if local is None else local.bookings_per_s)
        rows.append(row)
    return rows


def _ratio_cell(row: Mapping[str, object], column: str) -> float | None:
    """A ratio column of a comparison row: a float, or None where a system did not run."""
    value = row.get(column)
    return value if isinstance(value, float) else None


def _cell(value: object, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def comparison_table(rows: Sequence[dict[str, object]]) -> str:
    """Markdown: bookings/s (p99 ms) per system, then the ratios."""
    systems = [s for s in SYSTEMS if any(row.get(f"{s} bookings/s") is not None for row in rows)]
    head = ["N", "H", *(f"{s} bookings/s (p99 ms)" for s in systems), "A/B(best)", "A/C", "A/A-local"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for row in rows:
        cells = [str(row["clients"]), str(row["hot"])]
        for s in systems:
            rate, p99 = row[f"{s} bookings/s"], row[f"{s} p99 ms"]
            cells.append("-" if rate is None else f"{rate:,.0f} ({p99:.0f})")
        best = row["B best"]
        a_b = _cell(row["A/B(best)"], ".1f")
        cells += [a_b if a_b == "-" else f"{a_b}x vs {best}", _cell(row["A/C"], ".1f"), _cell(row["A/A-local"], ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


class Target(msgspec.Struct, kw_only=True):
    name: str
    measured: str
    met: bool | None  # None: the setting it needs was not run


def evaluate_targets(summaries: Sequence[Summary], rows: Sequence[dict[str, object]]) -> list[Target]:
    by_row = {(row["clients"], row["hot"]): row for row in rows}
    targets = []
    for hot, at_least in ((1, 8.0), (1000, 4.0)):
        ratio = _ratio_cell(by_row.get((256, hot), {}), "A/B(best)")
        targets.append(
            Target(
                name=f"A/B(best) bookings/s >= {at_least:.0f}x at 256 clients, H={hot}",
                measured="-" if ratio is None else f"{ratio:.1f}x",
                met=None if ratio is None else ratio >= at_least,
            )
        )
    a256 = [s for s in summaries if s.system == "A" and s.clients == 256]
    worst = max((s.p99_ms for s in a256), default=None)
    targets.append(
        Target(
            name="A p99 <= 50 ms at 256 clients (every H)",
            measured="-" if worst is None else f"worst {worst:.1f} ms",
            met=None if worst is None else worst <= 50,
        )
    )
    local = [cell for row in rows if (cell := _ratio_cell(row, "A/A-local")) is not None]
    targets.append(
        Target(
            name="A >= 60% of A-local bookings/s (every setting)",
            measured="-" if not local else f"lowest {min(local):.2f}",
            met=None if not local else min(local) >= 0.6,
        )
    )
    targets.append(
        Target(
            name="every round verified: no double-booked night, none lost, no stranded hold",
            measured=f"{sum(not s.verified for s in summaries)} settings failed",
            met=all(s.verified for s in summaries),
        )
    )
    return targets


def write_results(
    out: Path,
    meta: dict[str, object],
    results: Sequence[RoundResult],
    summaries: Sequence[Summary],
    rows: Sequence[dict[str, object]],
    targets: Sequence[Target],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "rounds": results, "summary": summaries, "comparison": rows, "targets": targets}
    (out / "results.json").write_bytes(msgspec.json.format(msgspec.json.encode(document)))
    _write_csv(out / "rounds.csv", [_flat(msgspec.to_builtins(r)) for r in results])
    _write_csv(out / "summary.csv", [_flat(msgspec.to_builtins(s)) for s in summaries])
    _write_csv(out / "comparison.csv", list(rows))
    (out / "comparison.md").write_text(comparison_table(rows) + "\n")
    if importlib.util.find_spec("matplotlib") is None:
        print("charts left out: matplotlib is not installed (pip install -e '.[bench]')", file=sys.stderr)
    else:
        _charts(out, summaries)


def _flat(record: dict[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        elif isinstance(value, list):
            flat[prefix + key] = json.dumps(value)
        else:
            flat[prefix + key] = value
    return flat


def _write_csv(path: Path, records: Sequence[dict[str, object]]) -> None:
    fields = list(dict.fromkeys(key for record in records for key in record))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(records)


def _charts(out: Path, summaries: Sequence[Summary]) -> None:
    """bookings/s and p99 against H, one panel per client count, one line per system."""
    import matplotlib  # the `bench` extra: only the results folder needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    client_counts = sorted({s.clients for s in summaries})
    for metric, label, filename in (
        ("bookings_per_s", "bookings/s", "bookings_per_s.png"),
        ("p99_ms", "p99 latency per attempt (ms)", "p99_ms.png"),
    ):
        fig, axes = plt.subplots(1, len(client_counts), figsize=(6 * len(client_counts), 4.5), squeeze=False)
        for ax, clients in zip(axes[0], client_counts, strict=True):
            for system in SYSTEMS:
                points = sorted(
                    (s.hot, getattr(s, metric)) for s in summaries if s.system == system and s.clients == clients
                )
                if points:
                    ax.plot(*zip(*points, strict=True), marker="o", label=system)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("hot rooms H")
            ax.set_ylabel(label)
            ax.set_title(f"{clients} clients")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(out / filename, dpi=110)
        plt.close(fig)
