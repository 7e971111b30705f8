"""The edge's Prometheus metrics, in a registry of its own so that /metrics shows the edge only
(a test process may hold a front's metrics too). Labels are bounded: region, status, reason."""

from __future__ import annotations

import prometheus_client

REGISTRY = prometheus_client.CollectorRegistry(auto_describe=True)

REQUESTS = prometheus_client.Counter(
    "roombook_edge_requests_total",
    "Requests the edge answered, by the region they went to ('edge': answered by the edge itself)",
    ["region", "status", "reason"],
    registry=REGISTRY,
)
UPSTREAM_SECONDS = prometheus_client.Histogram(
    "roombook_edge_upstream_seconds",
    "Time from sending a request to a front to its response headers",
    ["region"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
    registry=REGISTRY,
)
UPSTREAM_ERRORS = prometheus_client.Counter(
    "roombook_edge_upstream_errors_total",
    "Requests a front did not answer (connect, timeout, broken), and refused as its region was down",
    ["region", "kind"],
    registry=REGISTRY,
)
REGION_UP = prometheus_client.Gauge(
    "roombook_edge_region_up", "1 while the region's front answers its health check", ["region"], registry=REGISTRY
)


def exposition() -> tuple[bytes, str]:
    return prometheus_client.generate_latest(REGISTRY), prometheus_client.CONTENT_TYPE_LATEST
