"""The alert rules load in Prometheus and each alert fires when it should (promtool, from
Debian's prometheus package), and every metric the rules and the dashboard use is documented."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services.registry.requests.rules import RESPONSE_WINDOW
from services.router.metrics import RouterMetrics
from tests.deploy.topology import DEPLOY

RULES = DEPLOY / "prometheus" / "alerts.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts.test.yaml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "caseshare.json"
REQUIRED = {
    "CaseshareDeliveryFailed",
    "CaseshareConsumerLag",
    "CaseshareOutboxStale",
    "CaseshareAuditSequencerHalted",
    "CaseshareAuditQueueStale",
    "CaseshareDeadlineBreached",
    "CaseshareWebhookEndpointsDisabled",
}
METRIC = re.compile(r"\bcaseshare_[a-z0-9_]+")
# Series a histogram or counter adds to the name it is documented under.
SUFFIXES = ("_bucket", "_sum", "_count")


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: run `python -m tests.system_deps`")
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, check=False)


def alerts(path: Path = RULES) -> dict[str, str]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return {r["alert"]: r["expr"] for g in groups for r in g["rules"]}


def test_the_rules_load() -> None:
    done = promtool("check", "rules", RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(alerts()) >= REQUIRED


def test_every_alert_fires_in_its_unit_tests() -> None:
    done = promtool("test", "rules", RULE_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr
    tested = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tested
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == set(alerts())


def copy_rules(tmp_path: Path, old: str, new: str) -> Path:
    text = RULES.read_text()
    assert old in text
    (tmp_path / "alerts.yaml").write_text(text.replace(old, new))
    shutil.copy(RULE_TESTS, tmp_path / "alerts.test.yaml")
    return tmp_path


def test_a_broken_rule_fails_the_check(tmp_path: Path) -> None:
    broken = copy_rules(tmp_path, "max(caseshare_router_lag) > 1000", "max(caseshare_router_lag >")
    assert promtool("check", "rules", broken / "alerts.yaml").returncode != 0


def test_an_alert_that_no_longer_fires_fails_its_unit_test(tmp_path: Path) -> None:
    broken = copy_rules(
        tmp_path,
        "caseshare_outbox_oldest_unpublished_age_seconds) > 300",
        "caseshare_outbox_oldest_unpublished_age_seconds) > 3000",
    )
    done = promtool("test", "rules", broken / "alerts.test.yaml")
    assert done.returncode != 0
    assert "CaseshareOutboxStale" in done.stdout + done.stderr


def documented_metrics() -> set[str]:
    readme = (DEPLOY / "README.md").read_text()
    section = readme[readme.index("## Metrics") :]
    section = section[: section.index("\n## ", 4)]
    return set(re.findall(r"^\| `(caseshare_[a-z0-9_]+)`", section, flags=re.MULTILINE))


def base_name(series: str) -> str:
    for suffix in SUFFIXES:
        if series.endswith(suffix):
            return series.removesuffix(suffix)
    return series


def test_every_metric_the_rules_and_dashboard_use_is_documented() -> None:
    used = {m for expr in alerts().values() for m in METRIC.findall(expr)}
    dashboard = json.loads(DASHBOARD.read_text())
    used |= {
        m
        for panel in dashboard["panels"]
        for t in panel["targets"]
        for m in METRIC.findall(t["expr"])
    }
    assert {base_name(m) for m in used} - documented_metrics() == set()


def test_the_metrics_the_router_exports_are_documented_under_their_exported_names() -> None:
    exported = {
        sample.name
        for family in RouterMetrics().registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }
    assert exported
    assert exported - documented_metrics() == set()


def test_the_dashboard_is_provisioned_from_prometheus() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "caseshare-overview"
    sources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"]
    uids = {s["uid"] for s in sources}
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] in uids
        assert panel["targets"]


def test_the_compose_prometheus_config_loads_with_the_rules(tmp_path: Path) -> None:
    """compose mounts the rules at /etc/prometheus/alerts.yaml; check the config against them."""
    config = DEPLOY / "compose" / "prometheus" / "prometheus.yml"
    shutil.copy(RULES, tmp_path / "alerts.yaml")
    local = config.read_text().replace("/etc/prometheus/alerts.yaml", "alerts.yaml")
    assert local != config.read_text()
    (tmp_path / "prometheus.yml").write_text(local)
    done = promtool("check", "config", tmp_path / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


def test_the_router_counters_the_alerts_count_start_at_zero() -> None:
    """`increase()` sees nothing of a series born at its first event, so every counter an alert
    counts must be exported at 0, for each label value that can fire, before anything happens."""
    counted = {m for e in alerts().values() for m in re.findall(r"increase\((caseshare_\w+)", e)}
    families = list(RouterMetrics().registry.collect())
    router_counters = {f.name + "_total" for f in families if f.type == "counter"}
    at_start: dict[str, list[dict[str, str]]] = {}
    for family in families:
        for sample in family.samples:
            if sample.name.endswith("_total"):
                assert sample.value == 0, sample
                at_start.setdefault(sample.name, []).append(sample.labels)
    assert "caseshare_deadline_breaches_total" in counted & router_counters
    assert [name for name in sorted(counted & router_counters) if name not in at_start] == []
    kinds = {labels["kind"] for labels in at_start["caseshare_deadline_breaches_total"]}
    assert kinds == {kind.value for kind in RESPONSE_WINDOW}


# Gauges read from the database (or, for the webhook endpoints, counted by whichever router
# leads): every replica reports the same value, so summing them counts it once per replica.
SHARED_GAUGES = (
    "caseshare_outbox_backlog",
    "caseshare_outbox_oldest_unpublished_age_seconds",
    "caseshare_audit_queue_depth",
    "caseshare_audit_queue_oldest_age_seconds",
    "caseshare_deliveries",
    "caseshare_webhook_endpoints",
)
MAX_OF = re.compile(r"max(?: by \([^)]*\))? ?\($")


def summed_shared_gauges(exprs: list[str]) -> list[str]:
    """The expressions that aggregate a shared gauge with anything but max."""
    return [
        expr
        for expr in exprs
        for name in SHARED_GAUGES
        for found in re.finditer(rf"\b{name}\b", expr)
        if not MAX_OF.search(expr[: found.start()])
    ]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_gauges_every_replica_reports_alike_are_aggregated_with_max() -> None:
    exprs = [*alerts().values(), *dashboard_exprs()]
    assert any("caseshare_webhook_endpoints" in e for e in exprs)
    assert summed_shared_gauges(exprs) == []
    assert summed_shared_gauges(["sum by (state) (caseshare_deliveries)"])
