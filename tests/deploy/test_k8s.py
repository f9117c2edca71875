"""Every Kubernetes manifest of every overlay, as kustomize renders it, is valid for the
Kubernetes API and has what the deploy promises (probes, resources, budgets, policies, jobs)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.topology import (
    K8S,
    OVERLAYS,
    k8s_policy_problems,
    k8s_schema_problems,
    mutated,
    render,
)


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(K8S / "overlays" / request.param)


def test_every_manifest_is_valid_for_the_kubernetes_api(rendered: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in rendered}
    assert {"Deployment", "Job", "HorizontalPodAutoscaler", "NetworkPolicy"} <= kinds
    assert k8s_schema_problems(rendered) == []


def test_every_manifest_has_what_the_deploy_promises(rendered: list[dict[str, Any]]) -> None:
    assert k8s_policy_problems(rendered) == []


def first(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def container(doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = doc["spec"]["template"]["spec"]["containers"][0]
    return found


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(
            lambda d: container(first(d, "Deployment", "intake"))["ports"][0].update(
                containerPort="8000"
            ),
            id="port-as-string",
        ),
        pytest.param(
            lambda d: container(first(d, "Deployment", "router")).update(livenesProbe={}),
            id="misspelt-field",
        ),
        pytest.param(
            lambda d: first(d, "HorizontalPodAutoscaler", "intake")["spec"].pop("maxReplicas"),
            id="missing-required",
        ),
    ],
)
def test_a_broken_manifest_fails_validation(rendered: list[dict[str, Any]], breakage: Any) -> None:
    assert k8s_schema_problems(mutated(rendered, breakage))


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(
            lambda d: container(first(d, "Deployment", "registry")).pop("readinessProbe"),
            id="no-readiness",
        ),
        pytest.param(lambda d: d.remove(first(d, "PodDisruptionBudget", "router")), id="no-pdb"),
        pytest.param(
            lambda d: d.remove(first(d, "HorizontalPodAutoscaler", "router")), id="no-hpa"
        ),
        pytest.param(
            lambda d: d.append(
                {"kind": "Secret", "metadata": {"name": "x"}, "stringData": {"url": "pg://"}}
            ),
            id="inlined-secret",
        ),
        pytest.param(lambda d: d.remove(first(d, "Job", "caseshare-migrate")), id="no-migrate"),
    ],
)
def test_a_manifest_missing_a_promise_fails(rendered: list[dict[str, Any]], breakage: Any) -> None:
    assert k8s_policy_problems(mutated(rendered, breakage))


def test_an_overlay_that_does_not_build_fails(tmp_path: Path) -> None:
    shutil.copytree(K8S, tmp_path / "k8s")
    (tmp_path / "k8s" / "base" / "jobs.yaml").unlink()
    with pytest.raises(RuntimeError, match="kustomize failed"):
        render(tmp_path / "k8s" / "overlays" / "prod")


def test_secrets_are_referenced_by_name_and_documented(rendered: list[dict[str, Any]]) -> None:
    readme = (K8S.parent / "README.md").read_text()
    referenced = {
        var["valueFrom"]["secretKeyRef"]["name"]
        for doc in rendered
        if doc["kind"] in ("Deployment", "Job")
        for var in container(doc).get("env", [])
        if "valueFrom" in var
    }
    assert referenced
    assert [name for name in sorted(referenced) if f"`{name}`" not in readme] == []


PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8")


def egress(rendered: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], rule)
        for d in rendered
        if d["kind"] == "NetworkPolicy"
        for rule in d["spec"].get("egress", [])
    ]


def test_no_egress_rule_opens_every_port(rendered: list[dict[str, Any]]) -> None:
    assert [name for name, rule in egress(rendered) if not rule.get("ports")] == []


def test_the_router_calls_webhook_receivers_on_443_at_public_addresses_only(
    rendered: list[dict[str, Any]],
) -> None:
    policy = first(rendered, "NetworkPolicy", "router-webhooks")
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "router"}}
    (rule,) = policy["spec"]["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 443}]
    blocks = [peer["ipBlock"] for peer in rule["to"]]
    assert blocks
    assert all(set(peer) == {"ipBlock"} for peer in rule["to"])
    ipv4 = next(b for b in blocks if b["cidr"] == "0.0.0.0/0")
    assert set(PRIVATE) <= set(ipv4["except"])
    assert all(b["except"] for b in blocks)
