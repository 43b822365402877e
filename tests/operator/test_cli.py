"""`mlfootprint operator`: help documents every option, bad flags exit 2 naming the flag,
configuration layers defaults <- --config YAML <- environment <- flags (docs/operator.md)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlfootprint.cli import build_parser
from mlfootprint.operator.cli import config_from_args
from mlfootprint.operator.config import OperatorConfig

ENV_VARS = (
    "POD_NAMESPACE", "MLFOOTPRINT_OPERATOR_NAMESPACE", "MLFOOTPRINT_PROMETHEUS_URL",
    "MLFOOTPRINT_ELECTRICITYMAPS_TOKEN", "MLFOOTPRINT_WATTTIME_USERNAME", "MLFOOTPRINT_WATTTIME_PASSWORD",
)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    return subprocess.run(
        [sys.executable, "-m", "mlfootprint", "operator", *args],
        capture_output=True, text=True, timeout=60, env={**base, **(env or {})},
    )


def _operator_parser() -> argparse.ArgumentParser:
    parser = build_parser(["operator"])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["operator"]


def _config(monkeypatch: pytest.MonkeyPatch, *argv: str, env: dict[str, str] | None = None) -> Any:
    for k in ENV_VARS:
        monkeypatch.delenv(k, raising=False)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    args = build_parser(["operator", *argv]).parse_args(["operator", *argv])
    return config_from_args(args)


def test_help_documents_every_option() -> None:
    proc = _cli("--help")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    options = [a for a in _operator_parser()._actions if a.option_strings]
    assert len(options) >= 20
    for action in options:
        assert action.help and action.help != argparse.SUPPRESS, action.option_strings
        for opt in action.option_strings:
            assert opt in out, opt
    for text in ("--energy-source prometheus", "TrainingRun", "InferenceService", "docs/factors.md",
                 "MLFOOTPRINT_ELECTRICITYMAPS_TOKEN", "MLFOOTPRINT_WATTTIME_USERNAME", "MLFOOTPRINT_PROMETHEUS_URL",
                 "{scrape,prometheus}", "default: 30"):
        assert text in out, text


def test_top_level_help_lists_the_operator() -> None:
    proc = subprocess.run([sys.executable, "-m", "mlfootprint", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "operator" in proc.stdout and "kopf operator" in proc.stdout


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--interval", "0"], "--interval"),
        (["--interval", "-5"], "--interval"),
        (["--interval", "abc"], "--interval"),
        (["--interval", "inf"], "--interval"),
        (["--energy-source", "kafka"], "--energy-source"),
        (["--energy-source", "prometheus"], "--prometheus-url"),
        (["--prometheus-lag", "-1"], "--prometheus-lag"),
        (["--prometheus-lag", "nan"], "--prometheus-lag"),
        (["--metrics-port", "70000"], "--metrics-port"),
        (["--metrics-port", "http"], "--metrics-port"),
        (["--log-format", "xml"], "--log-format"),
        (["--log-level", "loud"], "--log-level"),
        (["--serving-rate-scale", "0.5"], "--serving-rate-scale"),
        (["--serving-rate-scale", "nan"], "--serving-rate-scale"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(argv: list[str], flag: str) -> None:
    proc = _cli(*argv)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert flag in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config(monkeypatch)
    assert cfg == OperatorConfig()  # the flags' defaults are the configuration's defaults
    assert cfg.energy_source == "scrape" and cfg.interval_s == 30.0 and cfg.live_providers is False
    assert cfg.clusterwide and cfg.discovery and cfg.namespace == "mlfootprint"


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "POD_NAMESPACE": "from-pod", "MLFOOTPRINT_PROMETHEUS_URL": "http://prom-env:9090",
        "MLFOOTPRINT_ELECTRICITYMAPS_TOKEN": "em", "MLFOOTPRINT_WATTTIME_USERNAME": "u",
        "MLFOOTPRINT_WATTTIME_PASSWORD": "p",
    }
    cfg = _config(monkeypatch, "--energy-source", "prometheus", env=env)
    # the environment completes the flags: --energy-source prometheus needs no --prometheus-url
    assert cfg.namespace == "from-pod" and cfg.prometheus_url == "http://prom-env:9090"
    assert (cfg.electricitymaps_token, cfg.watttime_username, cfg.watttime_password) == ("em", "u", "p")
    assert cfg.exporter_ns == "from-pod"

    env["MLFOOTPRINT_OPERATOR_NAMESPACE"] = "from-env"  # wins over POD_NAMESPACE
    assert _config(monkeypatch, env=env).namespace == "from-env"

    cfg = _config(
        monkeypatch, "--operator-namespace", "from-flag", "--prometheus-url", "http://prom-flag:9090",
        "--energy-source", "prometheus", "-n", "a", "--namespace", "b", "--interval", "7.5",
        "--exporter-url", "http://x/metrics", "--exporter-url", "http://y/metrics", "--live-providers",
        "--no-discovery", "--metrics-port", "-1", "--prometheus-lag", "0", env=env,
    )
    assert cfg.namespace == "from-flag" and cfg.prometheus_url == "http://prom-flag:9090"  # flags win
    assert cfg.watch_namespaces == ("a", "b") and not cfg.clusterwide
    assert cfg.interval_s == 7.5 and cfg.prometheus_lag_s == 0.0 and cfg.metrics_port == -1
    assert cfg.exporter_urls == ("http://x/metrics", "http://y/metrics")
    assert cfg.live_providers is True and cfg.discovery is False


def test_env_url_satisfies_prometheus_mode_in_the_cli() -> None:
    """The real command with $MLFOOTPRINT_PROMETHEUS_URL and a bad port: it gets past the URL
    check (docs: environment <- flags) and stops at the port, exit 2."""
    proc = _cli("--energy-source", "prometheus", "--metrics-port", "99999", env={"MLFOOTPRINT_PROMETHEUS_URL": "http://p:9090"})
    assert proc.returncode == 2
    assert "--metrics-port" in proc.stderr and "--prometheus-url" not in proc.stderr


def test_config_file_and_systematic_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every setting has a YAML key and MLFOOTPRINT_OPERATOR_<KEY>, including those that had no
    flag or variable before; the systematic variable wins over the older name."""
    file = tmp_path / "operator.yaml"
    file.write_text("watch_namespaces: [a, b]\nscrape_timeout_s: 3\nstandalone: false\nprometheus_url: http://file:9090\n")
    env = {"MLFOOTPRINT_PROMETHEUS_URL": "http://legacy:9090", "MLFOOTPRINT_OPERATOR_CONFIGMAP_CACHE_S": "0",
           "MLFOOTPRINT_OPERATOR_EXPORTER_URLS": "http://x/metrics, http://y/metrics"}
    cfg = _config(monkeypatch, "--config", str(file), env=env)
    assert cfg.watch_namespaces == ("a", "b") and cfg.scrape_timeout_s == 3.0 and cfg.standalone is False
    assert cfg.prometheus_url == "http://legacy:9090"  # the environment wins over the file
    assert cfg.configmap_cache_s == 0.0 and cfg.exporter_urls == ("http://x/metrics", "http://y/metrics")
    cfg = _config(monkeypatch, env={**env, "MLFOOTPRINT_OPERATOR_PROMETHEUS_URL": "http://new:9090"})
    assert cfg.prometheus_url == "http://new:9090"
    assert _config(monkeypatch, "-n", "c", "--config", str(file)).watch_namespaces == ("c",)  # flags replace
    # an empty variable is not given (an optional setting: unset), so the older name still counts
    env = {"MLFOOTPRINT_OPERATOR_NAMESPACE": "", "POD_NAMESPACE": "from-pod", "MLFOOTPRINT_OPERATOR_PROMETHEUS_URL": "",
           "MLFOOTPRINT_PROMETHEUS_URL": "http://legacy:9090"}
    cfg = _config(monkeypatch, "--config", str(file), env=env)
    assert cfg.namespace == "from-pod" and cfg.prometheus_url is None


def test_bad_environment_exits_2_naming_the_variable() -> None:
    proc = _cli(env={"MLFOOTPRINT_OPERATOR_INTERVAL_S": "nan"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "mlfootprint operator: error: MLFOOTPRINT_OPERATOR_INTERVAL_S: Input should be a finite number" in proc.stderr
