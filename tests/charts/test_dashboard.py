"""The Grafana dashboard (charts/molstream/dashboards/molstream.json): every query is PromQL that
Prometheus' grammar accepts, names only series molstream exports, with labels those series
carry; the panels the runbook relies on are there; datasource and namespace are variables."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest
from chartlib import CHART
from molstream.metrics import FETCHER, WORKER, names
from molstream_operator.metrics import OPERATOR
from prometheus_client import CollectorRegistry

DASHBOARD = json.loads((CHART / "dashboards" / "molstream.json").read_text())
REGISTRIES = (WORKER, FETCHER, OPERATOR)
KNOWN = set().union(*(names(r) for r in REGISTRIES))
# Labels the Prometheus Operator gives every target of a ServiceMonitor or a PodMonitor.
TARGET_LABELS = {"namespace", "pod", "container", "service", "endpoint", "job", "instance"}
VARIABLE = "grafana-variable"
TOPICS = {
    "Throughput per stage",
    "Rejections by reason",
    "Consumer lag per partition",
    "Apply latency percentiles",
    "Database errors by kind",
    "Ingests completed / failed",
    "IngestRequests by phase",
    "Operator reconcile errors",
    "Operator event lag",
    "Downloaded bytes rate",
    "Process memory",
}


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those of rows (collapsed ones keep theirs inside) included."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


TARGETS = [
    (panel["title"], target)
    for panel in _panels(DASHBOARD["panels"])
    for target in panel.get("targets", [])
]


def _series_labels(*registries: CollectorRegistry) -> dict[str, set[str]]:
    """Series name → its label names. prometheus_client has no public API for the label names
    of a metric that has no sample yet: read its collectors' own."""
    out: dict[str, set[str]] = {}
    for registry in registries:
        for collector, series in registry._collector_to_names.items():  # noqa: SLF001
            labels = set(getattr(collector, "_labelnames", ()))
            for family in collector.collect():
                for sample in family.samples:
                    labels |= set(sample.labels)
            for name in series:
                extra = {"le"} if name.endswith("_bucket") else set()
                out.setdefault(name, set()).update(labels | extra)
    return out


LABELS = _series_labels(*REGISTRIES)


def _promql(expr: str) -> str:
    """`expr` with Grafana's variables replaced, as Grafana would before sending it."""
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)\}?", "5m", expr)
    return re.sub(r"\$\{?\w+(:\w+)?\}?", VARIABLE, expr)


def _nodes(expr: Any, kind: type) -> list[Any]:
    found: list[Any] = []
    promql_parser.walk(expr, lambda node: found.append(node) if isinstance(node, kind) else None)
    return found


def test_promql_walk_sees_nested_selectors() -> None:
    """The AST walk the checks below rely on reaches selectors inside every kind of node."""
    expr = promql_parser.parse(
        "histogram_quantile(0.9, sum by (le) (rate(a_bucket[5m]))) / on () -(b)"
        " + max_over_time(c[10m:1m]) + d offset 5m"
    )
    assert {s.name for s in _nodes(expr, promql_parser.VectorSelector)} == {
        "a_bucket",
        "b",
        "c",
        "d",
    }


def test_dashboard_shape() -> None:
    assert 36 <= DASHBOARD["schemaVersion"] <= 41
    assert DASHBOARD["uid"] and DASHBOARD["title"]
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    namespace = variables["namespace"]
    assert namespace["datasource"]["uid"] == "${datasource}"
    # label_values(<series>, namespace): a series molstream exports, with that label.
    match = re.fullmatch(r"label_values\((\w+), namespace\)", namespace["query"]["query"])
    assert match and match[1] in KNOWN
    panels = list(_panels(DASHBOARD["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
    assert TARGETS


def test_panel_topics_present() -> None:
    titles = {p["title"] for p in _panels(DASHBOARD["panels"])}
    assert TOPICS <= titles, TOPICS - titles


def test_latency_panels_show_percentiles() -> None:
    panel = next(
        p for p in _panels(DASHBOARD["panels"]) if p["title"] == "Apply latency percentiles"
    )
    quantiles = set()
    for target in panel["targets"]:
        for call in _nodes(promql_parser.parse(_promql(target["expr"])), promql_parser.Call):
            if call.func.name == "histogram_quantile":
                (metric,) = {s.name for s in _nodes(call, promql_parser.VectorSelector)}
                quantiles.add((metric, call.args[0].val))
    assert quantiles == {
        (f"molstream_worker_{m}_seconds_bucket", q)
        for m in ("batch_apply", "commit")
        for q in (0.5, 0.95, 0.99)
    }


@pytest.mark.parametrize(
    ("title", "target"), TARGETS, ids=[f"{t}-{x['refId']}" for t, x in TARGETS]
)
def test_query_uses_exported_series_and_labels(title: str, target: dict[str, Any]) -> None:
    assert target["datasource"]["uid"] == "${datasource}"
    expr = promql_parser.parse(_promql(target["expr"]))  # raises on anything but PromQL
    selectors = _nodes(expr, promql_parser.VectorSelector)
    assert selectors
    for selector in selectors:
        assert selector.name in KNOWN, f"{selector.name}: not a series molstream exports"
        allowed = LABELS[selector.name] | TARGET_LABELS
        matchers = {m.name: m.value for m in selector.matchers.matchers}
        assert set(matchers) <= allowed, f"{selector.name}: {set(matchers) - allowed}"
        # Every query follows the dashboard's namespace variable.
        assert matchers.get("namespace") == VARIABLE, selector.name
    grouped: set[str] = set()
    for aggregation in _nodes(expr, promql_parser.AggregateExpr):
        if aggregation.modifier is None:
            continue
        labels = set(aggregation.modifier.labels)
        inner = {s.name for s in _nodes(aggregation.expr, promql_parser.VectorSelector)}
        allowed = set().union(*(LABELS[name] for name in inner)) | TARGET_LABELS
        assert labels <= allowed, f"by ({', '.join(sorted(labels - allowed))}) of {inner}"
        grouped |= labels
    # A legend can only show labels the result still has.
    legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
    assert legend <= grouped, f"legend {legend - grouped} not in by (...)"
