"""Prometheus metrics: HTTP requests, booking outcomes, shard calls and group commits.

The metrics live in prometheus-client's default registry, defined once at import (defining a
metric connects to nothing). Other modules count their own events, e.g.

    from roombook.http.metrics import BOOKINGS
    BOOKINGS.labels(outcome="confirmed").inc()

Request labels use the matched route's canonical path (/api/v1/rooms/{room_id}), never the raw
URL, so the number of series stays bounded; requests no route matched share "unmatched".

Across processes: `serve --workers N` sets PROMETHEUS_MULTIPROC_DIR for its workers (under the data
dir), so each worker writes its samples to files there and /metrics, answered by any worker,
aggregates them all (prometheus-client's multiprocess mode): counters and histograms summed, the
shard gauges the most recent value any worker read, per-process gauges labelled by pid.
"""

from __future__ import annotations

import gc
import math
import os
import time

import prometheus_client
from aiohttp import web
from prometheus_client import multiprocess

from roombook.actors.shard import ShardStatus

# prometheus-client chooses where values live when it is first imported: read the same variable.
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _shard_gauge(name: str, documentation: str) -> prometheus_client.Gauge:
    """A gauge read from the shards' statuses: whichever worker read them last is right."""
    return prometheus_client.Gauge(name, documentation, ["shard"], multiprocess_mode="mostrecent")


REQUESTS = prometheus_client.Counter(
    "roombook_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
REQUEST_SECONDS = prometheus_client.Histogram(
    "roombook_http_request_duration_seconds", "Time to answer an HTTP request", ["method", "route"]
)
BOOKINGS = prometheus_client.Counter(
    "roombook_bookings", "Booking attempts by outcome (confirmed, unavailable, declined, failed, ...)", ["outcome"]
)
SHARD_CALL_SECONDS = prometheus_client.Histogram(
    "roombook_shard_call_duration_seconds",
    "Round trip of one call to a room shard (it may carry many commands)",
    ["shard"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
SHARD_CALL_COMMANDS = prometheus_client.Histogram(
    "roombook_shard_call_commands", "Commands carried by one shard call", buckets=(1, 2, 4, 8, 16, 64, 256, 512)
)
SHARD_CALL_FAILURES = prometheus_client.Counter(
    "roombook_shard_call_failures", "Shard calls that raised (shard unavailable)", ["shard"]
)
# Read from the shards' own statuses at scrape time: they count since the shard started.
SHARD_COMMIT_BATCHES = _shard_gauge("roombook_shard_commit_batches", "Group-commit batches the shard has written")
SHARD_COMMANDS = _shard_gauge("roombook_shard_commands", "Commands the shard has applied")
SHARD_ROWS_WRITTEN = _shard_gauge("roombook_shard_rows_written", "Room-night rows the shard has persisted")
SHARD_MEAN_BATCH = _shard_gauge("roombook_shard_commit_batch_mean_commands", "Mean commands per group-commit batch")
SHARD_ROWS = _shard_gauge("roombook_shard_rows", "Room-night rows the shard holds in memory")
SHARD_STATUS_FAILURES = prometheus_client.Counter(
    "roombook_shard_status_failures", "Scrapes that could not read the shards' statuses"
)
SHARD_PENDING = _shard_gauge("roombook_shard_pending", "Commands queued in the shard now")
SHARD_RELOADS = _shard_gauge(
    "roombook_shard_reloads", "Times a write without an answer made the shard reload from the store"
)
SHARD_EPOCH = _shard_gauge("roombook_shard_epoch", "The shard owner's current lease epoch")
SHARD_SERVING = _shard_gauge("roombook_shard_serving", "1 while the shard takes commands")
# The shards' own histograms (since each owner started), as Prometheus histogram series.
SHARD_COMMIT_SECONDS = prometheus_client.Gauge(
    "roombook_shard_commit_seconds_bucket",
    "The shard's write transactions (group commits) by duration, cumulative by bucket",
    ["shard", "le"],
    multiprocess_mode="mostrecent",
)
SHARD_COMMIT_SECONDS_COUNT = _shard_gauge("roombook_shard_commit_seconds_count", "The shard's write transactions")
SHARD_COMMIT_SECONDS_SUM = _shard_gauge(
    "roombook_shard_commit_seconds_sum", "Seconds spent in the shard's write transactions"
)
SHARD_BATCH_COMMANDS = prometheus_client.Gauge(
    "roombook_shard_batch_commands_bucket",
    "The shard's committed batches by the commands they carried, cumulative by bucket",
    ["shard", "le"],
    multiprocess_mode="mostrecent",
)
SHARD_RING_VERSION = _shard_gauge(
    "roombook_shard_ring_version", "Version of the ring the shard serves by (a resize makes the next)"
)
SHARD_STATE = prometheus_client.Gauge(
    "roombook_shard_state",
    "1 for the state the shard is in (serving, starting, handing_over, handed_over, fenced, unavailable)",
    ["shard", "state"],
    multiprocess_mode="mostrecent",
)
SHARD_STATES = ("serving", "starting", "handing_over", "handed_over", "fenced", "unavailable")
STALE_PENDING_BOOKINGS = prometheus_client.Gauge(
    "roombook_bookings_pending_past_hold_ttl",
    "PENDING bookings created more than the hold TTL ago, at the last scrape (the reconciler settles them)",
    ["region"],
    multiprocess_mode="mostrecent",
)
GC_FROZEN_OBJECTS = prometheus_client.Gauge(
    "roombook_gc_frozen_objects",
    "Objects this process froze out of the cyclic GC after start-up (ROOMBOOK_GC_FREEZE)",
    multiprocess_mode="liveall",  # one series per live worker (label pid)
)
if MULTIPROCESS_DIR is None:
    GC_FROZEN_OBJECTS.set_function(gc.get_freeze_count)


def observe_shard_call(shard_id: int, commands: int, seconds: float, failed: bool) -> None:
    """An AvailabilityClient observer."""
    SHARD_CALL_SECONDS.labels(shard=str(shard_id)).observe(seconds)
    SHARD_CALL_COMMANDS.observe(commands)
    if failed:
        SHARD_CALL_FAILURES.labels(shard=str(shard_id)).inc()


def start_shard_series(shard_count: int) -> None:
    """Every shard's failure counter from zero, so the first failure is a visible increase."""
    for shard in range(shard_count):
        SHARD_CALL_FAILURES.labels(shard=str(shard))


def record_shard_statuses(statuses: list[ShardStatus]) -> None:
    for s in statuses:
        shard = str(s.shard_id)
        SHARD_COMMIT_BATCHES.labels(shard=shard).set(s.batches)
        SHARD_COMMANDS.labels(shard=shard).set(s.commands)
        SHARD_ROWS_WRITTEN.labels(shard=shard).set(s.rows_written)
        SHARD_MEAN_BATCH.labels(shard=shard).set(s.commands / s.batches if s.batches else 0)
        SHARD_PENDING.labels(shard=shard).set(s.pending)
        SHARD_RELOADS.labels(shard=shard).set(s.reloads)
        SHARD_EPOCH.labels(shard=shard).set(s.epoch)
        SHARD_SERVING.labels(shard=shard).set(1 if s.serving else 0)
        SHARD_RING_VERSION.labels(shard=shard).set(s.ring_version)
        if s.commit_seconds is not None:
            for bound, count in zip(s.commit_seconds.bounds, s.commit_seconds.counts, strict=True):
                SHARD_COMMIT_SECONDS.labels(shard=shard, le=_le(bound)).set(count)
            SHARD_COMMIT_SECONDS_COUNT.labels(shard=shard).set(s.commit_seconds.count)
            SHARD_COMMIT_SECONDS_SUM.labels(shard=shard).set(s.commit_seconds.total)
        if s.batch_commands is not None:
            for bound, count in zip(s.batch_commands.bounds, s.batch_commands.counts, strict=True):
                SHARD_BATCH_COMMANDS.labels(shard=shard, le=_le(bound)).set(count)
        SHARD_ROWS.labels(shard=shard).set(s.rows)
        for state in {*SHARD_STATES, s.state}:
            SHARD_STATE.labels(shard=shard, state=state).set(1 if state == s.state else 0)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def record_process_gauges() -> None:
    """Per-process values that files, unlike callbacks, carry to another worker's scrape."""
    if MULTIPROCESS_DIR is not None:
        GC_FROZEN_OBJECTS.set(gc.get_freeze_count())


def exposition() -> tuple[bytes, str]:
    """The text exposition of this process's registry, or of every worker's, and its content type."""
    if MULTIPROCESS_DIR is None:
        return prometheus_client.generate_latest(), prometheus_client.CONTENT_TYPE_LATEST
    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=MULTIPROCESS_DIR)
    return prometheus_client.generate_latest(registry), prometheus_client.CONTENT_TYPE_LATEST


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource  # None when no route matched
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Counts and times every request; sits outside the problem middleware to see final statuses."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = _route_of(request)
        REQUEST_SECONDS.labels(method=request.method, route=route).observe(time.perf_counter() - started)
        REQUESTS.labels(method=request.method, route=route, status=str(status)).inc()
