"""The operator's RBAC rules: a sane list, and the chart's Role grants no more than it.

That the operator works with exactly these rules is shown by every test of test_operator_*.py:
they run it as a ServiceAccount bound to a Role made of operator/rbac-rules.yaml.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
import yaml
from operator_harness import RBAC_RULES, ROOT

CHART = ROOT / "charts" / "molstream"

Grant = tuple[str, str, str, str]  # apiGroup, resource, verb, resourceName ("" = any)


def _grants(rules: Iterable[dict[str, Any]]) -> set[Grant]:
    out: set[Grant] = set()
    for rule in rules:
        if rule.get("nonResourceURLs"):
            out.update(
                ("<url>", url, verb, "")
                for url in rule["nonResourceURLs"]
                for verb in rule.get("verbs", [])
            )
            continue
        names = rule.get("resourceNames") or [""]
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    out.update((group, resource, verb, name) for name in names)
    return out


def _allowed(grant: Grant, mine: set[Grant]) -> bool:
    group, resource, verb, name = grant
    return (group, resource, verb, "") in mine or (group, resource, verb, name) in mine


def test_rules_file_is_least_privilege() -> None:
    rules = yaml.safe_load(RBAC_RULES.read_text())
    assert isinstance(rules, list) and rules
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, rule
        assert rule["apiGroups"] and rule["resources"] and rule["verbs"]
    grants = _grants(rules)
    assert not any("*" in grant for grant in grants), "no wildcards"
    # credentials go to the fetcher via secretKeyRef only; the operator gets a Secret (its
    # metadata) to check its opt-in label, and may neither list nor watch them
    assert {verb for _, resource, verb, _ in grants if resource == "secrets"} == {"get"}
    # the fetcher Pods are read (why one cannot start), never written
    pod_verbs = {verb for _, resource, verb, _ in grants if resource == "pods"}
    assert pod_verbs <= {"get", "list", "watch"}
    assert not any(verb in {"escalate", "bind", "impersonate"} for _, _, verb, _ in grants)


def _operator_identity_rules(
    docs: list[dict[str, Any]],
) -> tuple[str, list[dict[str, Any]]] | None:
    """Rules granted to the ServiceAccount of the operator's Deployment (None: no operator)."""
    deployments = [
        d
        for d in docs
        if d.get("kind") == "Deployment"
        and (
            d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "operator"
            or "operator" in d["metadata"]["name"]
        )
    ]
    if not deployments:
        return None
    (deployment,) = deployments
    account = deployment["spec"]["template"]["spec"].get("serviceAccountName", "default")
    roles = {
        (d["kind"], d["metadata"]["name"]): d.get("rules") or []
        for d in docs
        if d.get("kind") in ("Role", "ClusterRole")
    }
    granted: list[dict[str, Any]] = []
    for binding in docs:
        if binding.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(
            s.get("kind") == "ServiceAccount" and s.get("name") == account
            for s in binding.get("subjects") or []
        ):
            continue
        ref = binding["roleRef"]
        key = (ref["kind"], ref["name"])
        assert key in roles, f"{binding['metadata']['name']} binds {key}, not in the chart"
        granted.extend(roles[key])
    return account, granted


# The default values and every value set the chart's own tests render (ci/*-values.yaml).
VALUE_SETS = [None, *sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))]


@pytest.mark.parametrize("values", VALUE_SETS)
def test_chart_grants_the_operator_no_more_than_its_rules(helm: Any, values: str | None) -> None:
    if not (CHART / "Chart.yaml").is_file():
        pytest.skip("charts/molstream is not there yet")
    args = ["template", "molstream", CHART, "--namespace", "molstream"]
    if values is not None:
        args += ["--values", CHART / "ci" / values]
    docs = [d for d in yaml.safe_load_all(helm(*args).stdout) if d]
    found = _operator_identity_rules(docs)
    if found is None:
        assert values is not None, "no operator Deployment in the chart's default rendering"
        pytest.skip(f"no operator with {values}")
    account, granted = found
    assert granted, f"the chart grants nothing to {account}"
    mine = _grants(yaml.safe_load(RBAC_RULES.read_text()))
    extra = sorted(g for g in _grants(granted) if not _allowed(g, mine))
    assert not extra, f"the chart grants {account} more than operator/rbac-rules.yaml: {extra}"
