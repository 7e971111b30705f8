"""One bounded Locust run against roombook, checked, with the CPU of both sides.

    python -m bench.load --scenario hot --users 100 --seconds 30 [--server-workers 2] [--processes 2]
    python -m bench.load --scenario mixed --host http://127.0.0.1:8080 [--server-pid PID]

Without --host it starts `roombook serve` on a free loopback port in a temporary data dir (the
given runtime, shards and demo rooms) and ends it by its PID afterwards. It runs Locust headless
as a subprocess (bench/locustfile.py, the scenario's tag, -t and a request cap, so it stops by
itself), then `python -m bench.check` over the run's booking logs (and the stores, when it started
the server), then prints throughput (from Locust's JSON, not the lagging CSV), failures, p50, p95,
p99 per route, and the CPU of Locust (every process of it, from rusage once it is reaped) against
the server's (its process tree, Ray included, from /proc) and the whole machine's. `--wrk-seconds`
adds wrk's ceiling on /healthz. Exit status: the checker's, or 2 if a step could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.check.booking_log import expand, read_log
from bench.latency import percentile
from bench.process_cpu import CpuMeter, descendants, start_time, still_running

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = {"hot": "hot", "search": "search", "browse": "browse", "cancel": "cancel", "mixed": "mixed"}
AUTH_ROUTES = ("/api/v1/auth/",)  # sign-ups: argon2, once per account, not the API under test
READY_TIMEOUT_S = 120.0
SATURATED_CORES = 0.85  # a Locust process is single-threaded: near one core, it is the limit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=0, help="users/s (default: all within 2 s)")
    parser.add_argument("--seconds", type=int, default=30, help="Locust's -t")
    parser.add_argument("--max-requests", type=int, default=0, help="request cap (default 5,000 per second of -t)")
    parser.add_argument("--processes", type=int, default=1, help="Locust processes (--processes)")
    parser.add_argument("--accounts", type=int, default=5, help="accounts per Locust process (0: one per user)")
    parser.add_argument("--hot-rooms", type=int, default=5)
    parser.add_argument("--host", help="an already running server (else one is started here)")
    parser.add_argument("--server-pid", type=int, help="with --host: measure this process tree's CPU")
    parser.add_argument("--server-workers", type=int, default=1, help="roombook serve --workers")
    parser.add_argument("--runtime", choices=["ray", "local"], default="ray")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--seed-rooms", type=int, default=200)
    parser.add_argument("--wrk-seconds", type=int, default=0, help="also run wrk on /healthz this long")
    parser.add_argument("--out", type=Path, help="default bench/results/load-<time>-<scenario>")
    parser.add_argument("--locust-arg", action="append", default=[], help="passed to Locust as is; repeatable")
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`roombook serve` in a temporary data dir; stop() ends it and what it started, by PID."""

    def __init__(self, args: argparse.Namespace, out: Path) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="rb-load-data-"))
        self.ray_tmp = tempfile.mkdtemp(prefix="rb-load-ray-")  # short: Ray's socket paths are limited
        self.port = free_port()
        self.host = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "roombook", "--data-dir", str(self.data_dir), "--runtime", args.runtime]
        command += ["--shards", str(args.shards), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--workers", str(args.server_workers), "--seed-rooms", str(args.seed_rooms)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOMBOOK_", "RAY_"))}
        env |= {"RAY_TMPDIR": self.ray_tmp, "RAY_AUTH_MODE": "disabled"}
        self.log = (out / "server.log").open("w")
        self.proc = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.tree: dict[int, str | None] = {}  # pid -> its start time, to never signal a recycled pid

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"roombook serve exited with {self.proc.returncode}: see {self.log.name}")
            try:
                with urllib.request.urlopen(self.host + "/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        self.tree = {pid: start_time(pid) for pid in [self.proc.pid, *descendants(self.proc.pid)]}
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"roombook serve was not ready within {READY_TIMEOUT_S} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(45)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid, started in self.tree.items():  # what a hard stop could leave behind (Ray's processes)
            if pid != self.proc.pid and still_running(pid, started):
                os.kill(pid, signal.SIGKILL)
        self.log.close()
        shutil.rmtree(self.ray_tmp, ignore_errors=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_locust(args: argparse.Namespace, host: str, out: Path, server_pids: list[int]) -> dict:
    """Locust headless as a subprocess; its CPU (every process it forked, once reaped) and the
    server's over the same interval."""
    spawn_rate = args.spawn_rate or max(1.0, args.users / 2)
    cap = args.max_requests or 5000 * args.seconds
    command = [sys.executable, "-m", "locust", "-f", str(REPO / "bench" / "locustfile.py"), "--headless"]
    command += ["-u", str(args.users), "-r", str(spawn_rate), "-t", f"{args.seconds}s", "--host", host]
    command += ["--tags", SCENARIOS[args.scenario], "--max-requests", str(cap), "--only-summary"]
    command += ["--accounts", str(args.accounts), "--hot-rooms", str(args.hot_rooms), "--stop-timeout", "5"]
    command += ["--booking-log", str(out / "bookings-{pid}.jsonl"), "--json-file", str(out / "locust")]
    command += ["--csv", str(out / "locust"), "--html", str(out / "locust.html"), "--exit-code-on-error", "0"]
    if args.processes > 1:
        command += ["--processes", str(args.processes)]
    command += args.locust_arg
    meter = CpuMeter({"server": server_pids, **{str(pid): [pid] for pid in server_pids}})
    labels = {str(pid): _label(pid) for pid in server_pids}
    before = _children_cpu_s()
    meter.start()
    with (out / "locust.log").open("w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        try:
            code = proc.wait(args.seconds + 90)
        except subprocess.TimeoutExpired:
            code = _kill_group(proc)
        except BaseException:  # interrupted: Locust has a session of its own, so no Ctrl-C reached it
            _kill_group(proc)
            raise
    cpu = meter.stop()
    cpu["locust"] = _children_cpu_s() - before
    busiest = sorted(((cpu[str(pid)] or 0.0, labels[str(pid)], pid) for pid in server_pids), reverse=True)
    server_processes = [{"pid": pid, "label": label, "cpu_s": used} for used, label, pid in busiest[:4]]
    return {
        "exit_code": code,
        "cpu": {k: cpu[k] for k in ("wall", "client", "machine", "server", "locust")},
        "server_processes": server_processes,
    }


def _kill_group(proc: subprocess.Popen) -> int:
    os.killpg(proc.pid, signal.SIGKILL)  # the group this runner started, and nothing else
    return proc.wait()


def _label(pid: int) -> str:
    """What a process is, shortly: `roombook serve`, `ray::RoomShard...`, `raylet`, ..."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [w.decode(errors="replace") for w in argv if w]
    if "roombook" in words:
        return "roombook serve" if "serve" in words else "roombook"
    if any("multiprocessing" in w for w in words):
        return "roombook serve worker"
    return Path(words[0]).name[:40] if words else "?"


def route_stats(path: Path) -> tuple[list[dict], list[float]]:
    """Per route from Locust's JSON: requests, failures, req/s over the whole run's span, and
    percentiles of its response-time histogram (Locust's rounded buckets); and every API (not
    sign-up) response time, sorted, for the percentiles over all routes."""
    routes, api_times = [], []
    entries = json.loads(path.read_text())
    span = max(1e-9, max(e["last_request_timestamp"] for e in entries) - min(e["start_time"] for e in entries))
    for entry in entries:
        times = sorted(float(ms) for ms, n in entry["response_times"].items() for _ in range(n))
        if not entry["name"].startswith(AUTH_ROUTES):
            api_times += times
        routes.append(
            {
                "route": f"{entry['method']} {entry['name']}",
                "requests": entry["num_requests"],
                "failures": entry["num_failures"],
                "rps": entry["num_requests"] / span,
                "start": entry["start_time"],
                "end": entry["last_request_timestamp"],
                **{f"p{q}": percentile(times, q / 100) for q in (50, 95, 99)},
            }
        )
    return sorted(routes, key=lambda r: -r["requests"]), sorted(api_times)


def summarize(
    routes: list[dict], api_times: list[float], run: dict, bookings: dict[str, int], args: argparse.Namespace
) -> dict:
    """The run in one row: throughput over the span of the API requests (sign-ups excluded)."""
    api = [r for r in routes if "/auth/" not in r["route"]]
    span = max(1e-9, max(r["end"] for r in api) - min(r["start"] for r in api)) if api else 1e-9
    cpu = run["cpu"]
    wall = cpu["wall"]
    return {
        "scenario": args.scenario,
        "users": args.users,
        "server_workers": args.server_workers,
        "locust_processes": args.processes,
        "api_requests": sum(r["requests"] for r in api),
        "api_rps": sum(r["requests"] for r in api) / span,
        "api_p50_ms": percentile(api_times, 0.5),
        "api_p99_ms": percentile(api_times, 0.99),
        "failures": sum(r["failures"] for r in routes),
        "sign_ups": sum(r["requests"] for r in routes if r["route"].endswith("/auth/register")),
        "bookings_201": bookings.get("201", 0),
        "bookings_per_s": bookings.get("201", 0) / span,
        "locust_cores": cpu["locust"] / wall,
        "server_cores": None if cpu.get("server") is None else cpu["server"] / wall,
        "machine_cores": cpu["machine"] / wall,
        "other_cores": (cpu["machine"] - cpu["locust"] - (cpu.get("server") or 0.0) - cpu["client"]) / wall,
        "wall_s": wall,
        "server_processes": [{**p, "cores": p["cpu_s"] / wall} for p in run["server_processes"]],
        "locust_exit_code": run["exit_code"],
    }


def print_report(routes: list[dict], summary: dict, args: argparse.Namespace) -> None:
    print(f"\n{'route':<48} {'requests':>9} {'fails':>6} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")
    for r in routes:
        print(
            f"{r['route']:<48} {r['requests']:>9} {r['failures']:>6} {r['rps']:>8.1f} "
            f"{r['p50']:>7.0f} {r['p95']:>7.0f} {r['p99']:>7.0f}"
        )
    s = summary
    server = "not measured" if s["server_cores"] is None else f"{s['server_cores']:.2f} cores"
    print(
        f"\n{s['scenario']}: {s['api_rps']:.0f} API req/s ({s['api_requests']} requests, sign-ups excluded), "
        f"p50 {s['api_p50_ms']:.0f} ms, p99 {s['api_p99_ms']:.0f} ms, {s['bookings_per_s']:.1f} bookings/s, "
        f"{s['failures']} failures, {s['sign_ups']} sign-ups"
    )
    print(
        f"CPU over {s['wall_s']:.1f} s: Locust {s['locust_cores']:.2f} cores ({args.processes} process(es)), "
        f"server {server}, whole machine {s['machine_cores']:.2f} of {os.cpu_count()} "
        f"(other work: {s['other_cores']:.2f})"
    )
    if s["server_processes"]:
        print("busiest server processes: " + ", ".join(f"{p['label']} {p['cores']:.2f}" for p in s["server_processes"]))
    if s["locust_cores"] / args.processes >= SATURATED_CORES:
        print("=> Locust was the bottleneck (its process(es) ran at a full core): the server figure is a lower bound")
    elif any(p["cores"] >= SATURATED_CORES for p in s["server_processes"]):
        print("=> a server process ran at a full core: the server was the bottleneck, not Locust")
    elif s["machine_cores"] >= 0.9 * (os.cpu_count() or 1):
        print("=> the machine was CPU-bound (see other work); Locust's share of it is above")


def run_wrk(host: str, seconds: int, out: Path) -> None:
    if shutil.which("wrk") is None:
        print("wrk: not installed (apt-get install wrk)")
        return
    before = _children_cpu_s()
    done = subprocess.run(
        ["wrk", "-t", "2", "-c", "64", "-d", f"{seconds}s", "--timeout", "5s", f"{host}/healthz"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )
    (out / "wrk.txt").write_text(done.stdout + done.stderr)
    rate = next((line for line in done.stdout.splitlines() if line.startswith("Requests/sec")), "no result")
    cores = (_children_cpu_s() - before) / seconds
    print(f"wrk GET /healthz for {seconds} s: {rate.strip()}; wrk CPU {cores:.2f} cores")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # `kill` as Ctrl-C: either way the server and Locust this run started are stopped, then exit 130
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = (args.out or REPO / "bench" / "results" / f"load-{stamp}-{args.scenario}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    server = None
    try:
        if args.host:
            host, check_stores = args.host, []
            server_pids = [args.server_pid, *descendants(args.server_pid)] if args.server_pid else []
        else:
            server = Server(args, out)
            server.wait_ready()
            host, server_pids = server.host, list(server.tree)
            check_stores = ["--data-dir", str(server.data_dir)]
        print(f"bench.load: {args.scenario}, {args.users} users, {args.seconds} s against {host}; output in {out}")
        run = run_locust(args, host, out, server_pids)
        check = [sys.executable, "-m", "bench.check", "--host", host, "--booking-log", str(out / "bookings-*.jsonl")]
        checked = subprocess.run([*check, *check_stores], cwd=REPO, timeout=300, check=False)
        if args.wrk_seconds:
            run_wrk(host, args.wrk_seconds, out)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"bench.load: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench.load: interrupted; stopping what this run started", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.stop()
    if not (out / "locust.json").exists():
        print(f"bench.load: Locust wrote no results: see {out / 'locust.log'}", file=sys.stderr)
        return 2
    routes, api_times = route_stats(out / "locust.json")
    bookings = read_log(expand([str(out / "bookings-*.jsonl")])).outcomes
    summary = summarize(routes, api_times, run, bookings, args)
    (out / "summary.json").write_text(json.dumps({"summary": summary, "routes": routes}, indent=2))
    print_report(routes, summary, args)
    return checked.returncode


if __name__ == "__main__":
    sys.exit(main())
