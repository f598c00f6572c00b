"""The chart's metrics values (metrics.*), without a cluster: what renders when, the port and
environment of each component, and that the monitors and NetworkPolicies reach the Pods that
serve /metrics, the fetcher Pods the operator builds included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chartlib import (
    CHART,
    Helm,
    Render,
    env_of,
    find,
    operator_built_job,
    pod_spec,
    refused,
    selects,
)

ON = {"metrics.enabled": "true"}
MONITORS = {"ServiceMonitor", "PodMonitor"}
EVERYTHING = {
    **ON,
    "metrics.serviceMonitor.enabled": "true",
    "metrics.podMonitor.enabled": "true",
    "metrics.dashboard.enabled": "true",
}


def _metrics_objects(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """What metrics.* adds: monitors, metrics Services, the dashboard ConfigMap."""
    return {
        (o["kind"], o["metadata"]["name"])
        for o in objects
        if o["kind"] in MONITORS
        or (o["kind"] == "Service" and o["metadata"]["name"].endswith("-metrics"))
        or (o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard"))
    }


def _container(objects: list[dict[str, Any]], component: str) -> dict[str, Any]:
    spec = pod_spec(find(objects, "Deployment", f"molstream-{component}"))
    assert spec is not None
    return next(c for c in spec["containers"] if c["name"] == component)


def _ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def _pod_labels(objects: list[dict[str, Any]], component: str) -> dict[str, str]:
    return find(objects, "Deployment", f"molstream-{component}")["spec"]["template"]["metadata"][
        "labels"
    ]


def _fetcher_pod(objects: list[dict[str, Any]], tmp_path: Path) -> dict[str, Any]:
    """The Pod template of a Job the operator would build from the chart's environment and
    fetcher template file."""
    job = operator_built_job(objects, tmp_path,
                             {"url": "ftp://molstream-ftp:2121/activities.csv.gz"})
    return job["spec"]["template"]


def test_metrics_off_by_default(render: Render, tmp_path: Path) -> None:
    objects = render()
    assert _metrics_objects(objects) == set()
    assert not any(o["metadata"]["name"] == "molstream-metrics" for o in objects)
    for component in ("worker", "operator"):
        container = _container(objects, component)
        assert "metrics" not in _ports(container)
        assert not {k for k in env_of(container) if "METRICS" in k}
    fetcher = _fetcher_pod(objects, tmp_path)["spec"]["containers"][0]
    assert "ports" not in fetcher and "MOLSTREAM_METRICS_PORT" not in env_of(fetcher)


def test_metrics_enabled_serves_from_every_component(render: Render, tmp_path: Path) -> None:
    objects = render(set={**ON, "metrics.port": 9500, "metrics.fetcherLingerSeconds": 90})
    # metrics.enabled alone creates nothing that needs the Prometheus Operator's CRDs.
    assert _metrics_objects(objects) == set()
    for component in ("worker", "operator"):
        container = _container(objects, component)
        assert _ports(container)["metrics"] == 9500
        assert env_of(container)["MOLSTREAM_METRICS_PORT"] == "9500"
    operator_env = env_of(_container(objects, "operator"))
    assert operator_env["MOLSTREAM_FETCHER_METRICS_PORT"] == "9500"
    assert operator_env["MOLSTREAM_FETCHER_METRICS_LINGER_S"] == "90"
    # What the operator makes of it: the fetcher container serves on the same named port.
    fetcher = _fetcher_pod(objects, tmp_path)["spec"]["containers"][0]
    assert _ports(fetcher) == {"metrics": 9500}
    assert env_of(fetcher)["MOLSTREAM_METRICS_PORT"] == "9500"
    assert env_of(fetcher)["MOLSTREAM_METRICS_LINGER_S"] == "90"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"metrics.serviceMonitor.enabled": "true"},
            {
                ("ServiceMonitor", "molstream"),
                ("Service", "molstream-worker-metrics"),
                ("Service", "molstream-operator-metrics"),
            },
        ),
        ({"metrics.podMonitor.enabled": "true"}, {("PodMonitor", "molstream")}),
        ({"metrics.dashboard.enabled": "true"}, {("ConfigMap", "molstream-dashboard")}),
    ],
    ids=["serviceMonitor", "podMonitor", "dashboard"],
)
def test_each_metrics_object_renders_only_when_asked(
    render: Render, values: dict[str, str], expected: set[tuple[str, str]]
) -> None:
    assert _metrics_objects(render(set={**ON, **values})) == expected


def test_metrics_services_follow_the_components(render: Render) -> None:
    objects = render(
        set={**ON, "metrics.serviceMonitor.enabled": "true", "worker.enabled": "false"}
    )
    assert _metrics_objects(objects) == {
        ("ServiceMonitor", "molstream"),
        ("Service", "molstream-operator-metrics"),
    }


def test_service_monitor_reaches_worker_and_operator(render: Render) -> None:
    objects = render(set={**EVERYTHING, "metrics.serviceMonitor.labels.release": "kps"})
    monitor = find(objects, "ServiceMonitor", "molstream")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kps"  # what Prometheus selects by
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "30s"}
    services = [o for o in objects if o["kind"] == "Service"]
    selected = {
        s["metadata"]["name"]
        for s in services
        if selects(monitor["spec"]["selector"], s["metadata"]["labels"])
        and any(p["name"] == endpoint["port"] for p in s["spec"]["ports"])
    }
    assert selected == {"molstream-worker-metrics", "molstream-operator-metrics"}
    for component in ("worker", "operator"):
        service = find(objects, "Service", f"molstream-{component}-metrics")
        assert service["spec"]["clusterIP"] == "None"
        assert selects(
            {"matchLabels": service["spec"]["selector"]}, _pod_labels(objects, component)
        )
        assert service["spec"]["ports"][0]["targetPort"] == "metrics"
        assert "metrics" in _ports(_container(objects, component))


@pytest.mark.parametrize(
    ("service_monitor", "scraped"),
    [("false", {"worker", "operator", "fetcher"}), ("true", {"fetcher"})],
    ids=["alone", "beside-servicemonitor"],
)
def test_pod_monitor_reaches_fetchers(
    render: Render, tmp_path: Path, service_monitor: str, scraped: set[str]
) -> None:
    """The fetcher Jobs' Pods always; the worker and the operator only when no ServiceMonitor
    scrapes them already (else every series would be there twice)."""
    objects = render(
        set={
            **ON,
            "metrics.podMonitor.enabled": "true",
            "metrics.podMonitor.interval": "15s",
            "metrics.serviceMonitor.enabled": service_monitor,
        }
    )
    monitor = find(objects, "PodMonitor", "molstream")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "15s"}
    pods = {c: _pod_labels(objects, c) for c in ("worker", "operator")}
    fetcher = _fetcher_pod(objects, tmp_path)
    pods["fetcher"] = fetcher["metadata"]["labels"]
    assert {
        c for c, labels in pods.items() if selects(monitor["spec"]["selector"], labels)
    } == scraped
    assert "metrics" in _ports(fetcher["spec"]["containers"][0])


def test_empty_interval_leaves_it_to_prometheus(render: Render) -> None:
    objects = render(set={**EVERYTHING, "metrics.serviceMonitor.interval": ""})
    (endpoint,) = find(objects, "ServiceMonitor", "molstream")["spec"]["endpoints"]
    assert "interval" not in endpoint


def _admitted_ports(objects: list[dict[str, Any]], labels: dict[str, str]) -> set[int]:
    """Ports the NetworkPolicies selecting a Pod admit from everywhere (rules without `from`)."""
    ports: set[int] = set()
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        if selects(policy["spec"]["podSelector"], labels):
            for rule in policy["spec"].get("ingress", []):
                if not rule.get("from"):
                    ports |= {p["port"] for p in rule.get("ports", [])}
    return ports


@pytest.mark.parametrize("enabled", [False, True], ids=["off", "on"])
def test_network_policies_admit_scrapes(render: Render, tmp_path: Path, enabled: bool) -> None:
    objects = render(
        set={"metrics.enabled": str(enabled).lower(), "metrics.port": 9600, "ftp.enabled": "true"}
    )
    pods = {c: _pod_labels(objects, c) for c in ("worker", "operator")}
    pods["fetcher"] = _fetcher_pod(objects, tmp_path)["metadata"]["labels"]
    for component, labels in pods.items():
        # Every Pod is covered by a policy (ingress is restricted) ...
        assert any(
            selects(o["spec"]["podSelector"], labels)
            for o in objects
            if o["kind"] == "NetworkPolicy"
        ), component
        # ... which admits the metrics port exactly when metrics are on.
        assert (9600 in _admitted_ports(objects, labels)) is enabled, component
    # Nothing else is opened: the FTP server's policy is unchanged.
    assert 9600 not in _admitted_ports(objects, _pod_labels(objects, "ftp"))


def test_dashboard_config_map(render: Render) -> None:
    objects = render(
        set={"metrics.dashboard.enabled": "true", "metrics.dashboard.namespace": "monitoring"}
    )
    config_map = find(objects, "ConfigMap", "molstream-dashboard")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"  # the sidecar's label
    (text,) = config_map["data"].values()
    on_disk = json.loads((CHART / "dashboards" / "molstream.json").read_text())
    assert json.loads(text) == on_disk
    default = find(
        render(set={"metrics.dashboard.enabled": "true"}), "ConfigMap", "molstream-dashboard"
    )
    assert default["metadata"]["namespace"] == "molstream"


def test_lint_with_metrics(helm_offline: Helm) -> None:
    args = [a for k, v in EVERYTHING.items() for a in ("--set", f"{k}={v}")]
    assert "0 chart(s) failed" in helm_offline("lint", "--strict", CHART, *args).stdout


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"metrics.port": 0}, "/metrics/port"),
        ({"metrics.port": "abc"}, "/metrics/port"),
        ({"metrics.port": 80}, "/metrics/port"),  # the non-root user cannot bind it
        ({"metrics.fetcherLingerSeconds": -1}, "/metrics/fetcherLingerSeconds"),
        ({"metrics.serviceMonitor.interval": "30 seconds"}, "/metrics/serviceMonitor/interval"),
        ({"metrics.dashboard.labels.grafana_dashboard": 1}, "/metrics/dashboard/labels"),
        ({"metrics.podMonitr.enabled": "true"}, "podMonitr"),
        (
            {"metrics.serviceMonitor.enabled": "true"},
            "metrics.serviceMonitor.enabled=true needs metrics.enabled=true",
        ),
        (
            {"metrics.podMonitor.enabled": "true"},
            "metrics.podMonitor.enabled=true needs metrics.enabled=true",
        ),
        ({**ON, "metrics.port": 8080}, "metrics.port=8080 is operator.healthPort too"),
    ],
    ids=[
        "port-0",
        "port-abc",
        "port-80",
        "linger",
        "interval",
        "label-not-string",
        "typo",
        "servicemonitor-without-metrics",
        "podmonitor-without-metrics",
        "port-is-health-port",
    ],
)
def test_metrics_values_refused(helm_offline: Helm, values: dict[str, Any], message: str) -> None:
    assert message in refused(helm_offline, values)
