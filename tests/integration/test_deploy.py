"""deploy/: the Prometheus alert rules load in promtool and fire on the series they watch, and every
metric the rules and the Grafana dashboard name exists on a running orchestrator's /metrics."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.support.debian import ensure_installed
from tests.support.metrics import scrape
from tests.support.servers import saga_process

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "saga-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "saga-alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "saga-dashboard.json"
ALERTS = {
    "SagaCompensationFailed",
    "SagaOutboxBacklogOld",
    "SagaDeadLettersGrowing",
    "SagaNoReadyEventConsumer",
    "SagaDatabaseUnreadable",
}
METRIC_NAME = re.compile(r"\bsaga_[a-z_]+")
SAMPLE_SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def family_name(metric: str) -> str:
    for suffix in SAMPLE_SUFFIXES:
        if metric.endswith(suffix):
            return metric.removesuffix(suffix)
    return metric


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_promtool_loads_the_alert_rules_and_each_alert_fires_when_it_should() -> None:
    promtool = ensure_installed("promtool", "prometheus")
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout
    tested = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent, capture_output=True, text=True, timeout=60
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tested_alerts = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert tested_alerts == ALERTS == set(re.findall(r"- alert: (\w+)", RULES.read_text()))


def test_every_metric_the_rules_and_the_dashboard_name_is_exposed(tmp_path: Path) -> None:
    named = {family_name(m) for m in METRIC_NAME.findall(RULES.read_text())}
    named |= {family_name(m) for expression in dashboard_expressions() for m in METRIC_NAME.findall(expression)}
    assert len(named) >= 10
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'saga.db'}", "SAGA_TRANSPORT": "memory"}
    with saga_process(["serve"], env, tmp_path / "serve.log") as base:
        exposed = set(scrape(base))
    assert named <= exposed, f"named but not exposed: {sorted(named - exposed)}"


def test_the_dashboard_is_grafana_json_over_one_prometheus_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["panels"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and all(target["expr"] for target in panel["targets"])
