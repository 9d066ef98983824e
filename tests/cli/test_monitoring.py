"""deploy/prometheus-alerts.yml, the example rules of docs/operations.md: valid YAML in
Prometheus' rule-file shape, and every ``gateway_*`` series an expression names is one a node
exports (a renamed metric would leave an alert that never fires)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client.metrics_core import Metric

from gateway.web.metrics import GatewayMetrics

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus-alerts.yml"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _exported() -> set[str]:
    families: list[Metric] = list(GatewayMetrics().registry.collect())
    return {f.name + suffix for f in families for suffix in SUFFIXES.get(f.type, ("",))}


def test_every_alert_names_a_series_the_node_exports() -> None:
    rules = yaml.safe_load(RULES.read_text("utf-8"))
    (group,) = rules["groups"]
    alerts = group["rules"]
    assert len(alerts) >= 5
    exported = _exported()
    for rule in alerts:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["alert"].startswith("Gateway") and rule["annotations"]["summary"]
        named = set(re.findall(r"\bgateway_[a-z_]+", rule["expr"]))
        assert named <= exported, (rule["alert"], named - exported)
    documented = (RULES.parents[1] / "docs" / "operations.md").read_text("utf-8")
    assert "deploy/prometheus-alerts.yml" in documented
