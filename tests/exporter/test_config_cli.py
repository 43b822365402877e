"""Layered configuration and the `mlfootprint exporter` command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlfootprint.cli import main
from mlfootprint.exporter.config import ConfigError, load_config


def test_layers_later_wins(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("gpu_source: sim\nport: 9000\nsim_gpus: 2\nnode_name: from-file\n")
    env = {"MLFOOTPRINT_EXPORTER_PORT": "9100", "MLFOOTPRINT_EXPORTER_IDLE_POLICY": "allocation", "OTHER": "x"}
    cfg = load_config(cfg_file, env, {"port": "9200", "sim_gpus": None})
    assert (cfg.gpu_source, cfg.port, cfg.sim_gpus, cfg.idle_policy, cfg.node_name) == ("sim", 9200, 2, "allocation", "from-file")
    assert load_config(None, {"NODE_NAME": "n7"}).node_name == "n7"
    assert load_config(None, {}).sample_interval_s == 0.1


@pytest.mark.parametrize(
    ("env", "flags", "needle"),
    [
        ({"MLFOOTPRINT_EXPORTER_PORT": "0"}, {}, "MLFOOTPRINT_EXPORTER_PORT: Input should be greater than or equal to 1"),
        ({}, {"gpu_source": "cuda"}, "--gpu-source: Input should be 'nvml', 'dcgm', 'sim' or 'none'"),
        ({}, {"pod_source": "file", "gpu_source": "sim"}, "pods_file is required"),
        ({}, {"pod_source": "kubernetes"}, "needs gpu_source=sim"),
        ({}, {"sample_interval_s": "2", "attribution_interval_s": "1"}, "attribution_interval_s must be >="),
        ({}, {"sample_interval_s": "0.5", "swing_window_s": "0.5"}, "sample_interval_s must be shorter than swing_window_s"),
        ({"MLFOOTPRINT_EXPORTER_NO_SUCH": "1"}, {}, "MLFOOTPRINT_EXPORTER_NO_SUCH: unknown setting"),
    ],
)
def test_errors_name_field_and_layer(env: dict, flags: dict, needle: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as err:
        load_config(None, env, flags)
    assert needle in str(err.value)


def test_cli_bad_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exporter", "--swing-fraction", "2"]) == 2
    assert "mlfootprint exporter: error: --swing-fraction: Input should be less than or equal to 1" in capsys.readouterr().err


def test_cli_help_explains_each_option() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mlfootprint", "exporter", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    for flag in ("--gpu-source", "--pod-resources-dir", "--metrics-level", "--idle-policy", "--state-file", "--sim-time-factor"):
        assert flag in out
    assert "MLFOOTPRINT_EXPORTER_" in out


def test_cli_once_prints_metrics(tmp_path: Path) -> None:
    pods = tmp_path / "pods.yaml"
    pods.write_text("pods:\n  - {namespace: ml, name: train, profile: training, containers: [{name: t, gpus: 1}]}\n")
    result = subprocess.run(
        [sys.executable, "-m", "mlfootprint", "exporter", "--once", "--gpu-source", "sim", "--sim-gpus", "2",
         "--pod-source", "file", "--pods-file", str(pods), "--host-source", "sim", "--sim-time-factor", "60",
         "--attribution-interval-s", "0.3", "--node-name", "n1", "--state-file", str(tmp_path / "s.json")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert 'mlfootprint_pod_gpu_energy_joules_total{container="t"' in result.stdout
    assert (tmp_path / "s.json").exists()
