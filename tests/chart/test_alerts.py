"""The alert rules: promtool check and unit tests, and a real Prometheus loading them."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import CHART, one, render, tool_path
from tests.prometheus_server import RealPrometheus

pytestmark = pytest.mark.prometheus

RULES = CHART / "files" / "alerts.yaml"
RULE_TESTS = CHART / "files" / "tests" / "alerts_test.yaml"


def _alert_names() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules() -> None:
    proc = subprocess.run([tool_path("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(_alert_names())} rules found" in proc.stdout


def test_promtool_check_rendered_prometheusrule(tmp_path: Path) -> None:
    """What the chart ships in its PrometheusRule is a valid rules file too."""
    rule = one(render((), "--api-versions", "monitoring.coreos.com/v1"), "PrometheusRule")
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    proc = subprocess.run([tool_path("promtool"), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests() -> None:
    proc = subprocess.run(
        [tool_path("promtool"), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_is_unit_tested() -> None:
    doc = yaml.safe_load(RULE_TESTS.read_text())
    fired = {
        case["alertname"]
        for test in doc["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert set(_alert_names()) <= fired, f"alerts with no firing test: {set(_alert_names()) - fired}"


def _get_json(url: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.loads(resp.read())


def test_real_prometheus_loads_rules_healthy(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES.read_text())
    prom = RealPrometheus(
        tmp_path,
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{rules}']\n"
        "scrape_configs: []\n",
    )
    expected = set(_alert_names())
    last: object = None
    try:
        deadline = time.monotonic() + 45
        prom.start()
        while time.monotonic() < deadline:
            prom.assert_running()
            try:
                body = _get_json(f"{prom.url}/api/v1/rules?type=alert")
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
                continue
            rules_seen = [r for g in body["data"]["groups"] for r in g["rules"]]
            last = rules_seen
            evaluated = [r for r in rules_seen if not r["lastEvaluation"].startswith("0001-")]
            if {r["name"] for r in evaluated} == expected:
                bad = [(r["name"], r["health"], r.get("lastError")) for r in evaluated if r["health"] != "ok"]
                assert not bad, f"unhealthy rules: {bad}"
                return
            time.sleep(0.3)
        raise AssertionError(f"rules not all evaluated in time; last answer: {last}")
    finally:
        prom.stop()
