"""The shipped Grafana dashboard and Prometheus alert rules are well formed, cover what an operator
must be paged for, and query only metrics roombook defines (tests/e2e/test_serve_workers_shared.py
checks the same names against a live /metrics of a two-worker server)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import prometheus_client
import yaml

from roombook.http import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "deploy" / "grafana" / "roombook.json").read_text(encoding="utf-8"))
RULES = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yaml").read_text(encoding="utf-8"))
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def rules() -> list[dict]:
    return [rule for group in RULES["groups"] for rule in group["rules"]]


def expressions() -> list[str]:
    exprs = [rule["expr"] for rule in rules()]
    return exprs + [target["expr"] for panel in DASHBOARD["panels"] for target in panel["targets"]]


def defined_series() -> set[str]:
    """The sample names of every metric roombook.http.metrics defines."""
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, prometheus_client.metrics.MetricWrapperBase):
            (family,) = value.describe()
            names.add(family.name)
            names.update(family.name + suffix for suffix in SUFFIXES)
    return names


def balanced(expr: str) -> bool:
    depth = 0
    for char in re.sub(r'"[^"]*"', "", expr):
        depth += {"(": 1, ")": -1, "{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def test_every_rule_is_complete() -> None:
    assert rules()
    for rule in rules():
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"Roombook[A-Za-z0-9]+", rule["alert"])
        assert rule["labels"]["severity"] in ("page", "warn")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert len({rule["alert"] for rule in rules()}) == len(rules())


def test_the_rules_cover_shards_commit_latency_errors_and_stale_bookings() -> None:
    by_metric = {name: [r["alert"] for r in rules() if name in r["expr"]] for name in ("serving", "duration", "5..")}
    assert by_metric["serving"] and by_metric["duration"] and by_metric["5.."]
    assert any("roombook_bookings_pending_past_hold_ttl" in r["expr"] for r in rules())


def test_the_dashboard_is_well_formed() -> None:
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    variables = {variable["name"] for variable in DASHBOARD["templating"]["list"]}
    cells = set()
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and "datasource" in variables
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        grid = panel["gridPos"]
        area = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        assert grid["x"] + grid["w"] <= 24
        cells |= area


def test_every_query_is_balanced_and_uses_only_defined_metrics() -> None:
    defined = defined_series()
    for expr in expressions():
        assert balanced(expr), expr
        used = set(re.findall(r"\broombook_[a-z_]+", expr))
        assert used and used <= defined, (expr, sorted(used - defined))


def test_the_metric_check_sees_an_unknown_name() -> None:
    assert "roombook_shard_serving" in defined_series()
    assert "roombook_http_requests_total" in defined_series()
    assert "roombook_shard_serving_total" in defined_series()  # suffixes are allowed per family...
    assert "roombook_shard_servings" not in defined_series()  # ...but a misspelt name is not
    assert not balanced("sum(rate(x[5m])") and balanced('sum by (le) (rate(x{status=~"5.."}[5m]))')
