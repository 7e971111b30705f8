"""Where a server process spends its time during a round: py-spy samples it (`--profile`), and the
collapsed stacks are summed per function, inclusive (every sample a function is on the stack of)
and own (the samples it is at the top of), as shares of the samples taken while it was busy.

py-spy is an optional tool (`pip install py-spy`); without it --profile says so and the round runs
unprofiled. The raw stacks stay in the results folder for a flame graph (`flamegraph.pl`,
speedscope).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

RATE_HZ = 200
# a sample whose innermost frame is one of these is a thread waiting, not working: the event loop
# in its poll (uvloop's loop is C, so its innermost Python frame is run_app), a thread on a queue
_IDLE = ("select (selectors.py", "run_app (aiohttp/web.py", "Condition.wait (threading.py")
_THREAD = "Thread._bootstrap (threading.py"  # the outermost frame of every thread but the main one
_FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:)]+)")


def py_spy() -> str | None:
    return shutil.which("py-spy") or (
        str(Path(sys.executable).with_name("py-spy")) if Path(sys.executable).with_name("py-spy").exists() else None
    )


@contextlib.contextmanager
def sampled(pid: int, seconds: float, out: Path) -> Iterator[Path | None]:
    """py-spy on pid for `seconds` (started now, ended after the block at the latest); yields the
    collapsed-stacks file it writes, or None without py-spy."""
    tool = py_spy()
    if tool is None:
        print("--profile: py-spy is not installed (pip install py-spy); not profiled", flush=True)
        yield None
        return
    command = [tool, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(RATE_HZ)]
    command += ["--format", "raw", "--nonblocking", "--output", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield out
    finally:
        try:
            proc.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def summarize(path: Path, top: int = 30) -> str:
    """The busiest functions of a collapsed-stacks file, inclusive and own, as shares of the busy
    samples of the event loop's thread (the one that decides what a single server process
    serves), then the other threads' (the log writer, the executor's file writes) on their own."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    threads_own: Counter[str] = Counter()
    busy = threads_busy = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";") if frame]
        if frames and frames[-1].startswith(_IDLE):
            idle += count
            continue
        if frames and frames[0].startswith(_THREAD):
            threads_busy += count
            threads_own[frames[-1]] += count
            continue
        busy += count
        for name in set(frames):
            inclusive[name] += count
        if frames:
            own[frames[-1]] += count
    if not busy:
        return f"{path.name}: no busy samples of the event loop's thread"
    lines = [
        f"{path.name}: the event loop's thread {busy} busy samples, other threads {threads_busy},"
        f" {idle} idle (the loop polling, threads waiting)",
        "the event loop's thread, as shares of its busy samples:",
        f"{'inclusive':>9} {'own':>6}  function",
    ]
    for name, count in inclusive.most_common(top):
        lines.append(f"{100 * count / busy:>8.1f}% {100 * own[name] / busy:>5.1f}%  {name}")
    lines.append("top own:")
    for name, count in own.most_common(15):
        lines.append(f"{100 * count / busy:>8.1f}%  {name}")
    if threads_busy:
        lines.append("other threads, top own, as shares of their busy samples:")
        for name, count in threads_own.most_common(8):
            lines.append(f"{100 * count / threads_busy:>8.1f}%  {name}")
    return "\n".join(lines)


def _short(frame: str) -> str:
    """`func (path/to/file.py:line)` -> `func (file.py)`, with the package for ours and aiohttp's."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    file = match["file"]
    parts = Path(file).parts
    for root in ("roombook", "aiohttp", "asyncmy", "msgspec", "asyncio", "jwt"):
        if root in parts:
            file = "/".join(parts[parts.index(root) :])
            break
    else:
        file = Path(file).name
    return f"{match['func']} ({file})"
