"""CPU time of processes on this machine, read from /proc: the load generator, the database
server, the Ray actors and the rest of Ray, each measured over the same interval."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ")"
    return text.rpartition(")")[2].split()


def start_time(pid: int) -> str | None:
    """When the process started (in clock ticks since boot): with its pid, names it for good, as
    pids are reused. None if it is gone."""
    fields = _stat_fields(pid)
    return None if fields is None else fields[19]  # starttime (field 22)


def still_running(pid: int, started: str | None) -> bool:
    """Whether the process that had this pid and start time is still there, and not a zombie."""
    fields = _stat_fields(pid)
    return started is not None and fields is not None and fields[19] == started and fields[0] != "Z"


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds the process has used so far (None if it is gone or not local)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # utime, stime (fields 14, 15)


def descendants(pid: int) -> list[int]:
    """Every process below pid (children, their children, ...), as seen now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def pid_of(program: str) -> int | None:
    """The pid of a running program by name (`pidof`), e.g. mariadbd; None if not found."""
    if shutil.which("pidof") is None:
        return None
    out = subprocess.run(["pidof", "-s", program], capture_output=True, text=True, check=False).stdout.split()
    return int(out[0]) if out else None


def machine_busy_seconds() -> float:
    """CPU seconds all cores of this machine have spent busy (not idle, not waiting for I/O) since boot."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    guest = sum(fields[8:10])  # guest time is already counted in user and nice
    return (sum(fields) - guest - idle) / _TICKS_PER_S


class CpuMeter:
    """CPU seconds used by named groups of pids between start() and stop(), plus this process's own
    (time.process_time) and the wall time. A pid that exits meanwhile counts up to its last read."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._groups = groups
        self._before: dict[int, float] = {}
        self._wall0 = self._own0 = self._machine0 = 0.0

    def start(self) -> None:
        self._before = {}
        for pids in self._groups.values():
            for pid in pids:
                used = cpu_seconds(pid)
                if used is not None:
                    self._before[pid] = used
        self._machine0 = machine_busy_seconds()
        self._own0 = time.process_time()
        self._wall0 = time.perf_counter()

    def stop(self) -> dict[str, float | None]:
        """{"wall": seconds, "client": own CPU seconds, <group>: CPU seconds or None if unreadable,
        "machine": every process's CPU seconds (the rest is other work on the machine)}."""
        result: dict[str, float | None] = {
            "wall": time.perf_counter() - self._wall0,
            "client": time.process_time() - self._own0,
            "machine": machine_busy_seconds() - self._machine0,
        }
        for name, pids in self._groups.items():
            used = [(pid, cpu_seconds(pid)) for pid in pids if pid in self._before]
            readable = [(pid, now) for pid, now in used if now is not None]
            result[name] = sum(now - self._before[pid] for pid, now in readable) if readable else None
        return result
