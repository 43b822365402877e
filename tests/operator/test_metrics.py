"""The operator's metrics: per-run gauges and per-model lifecycle totals, valid exposition."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlfootprint.operator.metrics import OperatorMetrics, RunFigures


def _samples(metrics: OperatorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def _run(name: str, phase: str, model: str, j: float, g: float, kind: str = "TrainingRun") -> RunFigures:
    return RunFigures(namespace="ml", name=name, kind=kind, phase=phase, model=model,
                      facility_j=j, co2e_g=g, water_l=g / 10, gpu_allocation_s=3600.0)


def test_model_totals_by_lifecycle_phase() -> None:
    m = OperatorMetrics()
    m.set_run(_run("sweep-1", "development", "llama", 1.0e6, 100.0))
    m.set_run(_run("sweep-2", "development", "llama", 3.0e6, 300.0))
    m.set_run(_run("final", "training", "llama", 5.0e6, 500.0))
    m.set_run(_run("chat", "inference", "llama", 2.0e5, 20.0, kind="InferenceService"))
    m.set_run(_run("other", "training", "bert", 7.0, 1.0))
    got = _samples(m)
    dev = (("model", "llama"), ("phase", "development"))
    assert got[("mlfootprint_model_energy_joules", dev)] == 4.0e6
    assert got[("mlfootprint_model_co2e_grams", dev)] == 400.0
    assert got[("mlfootprint_model_water_liters", dev)] == pytest.approx(40.0)
    assert got[("mlfootprint_model_gpu_allocation_seconds", dev)] == 7200.0
    assert got[("mlfootprint_model_runs", dev)] == 2
    assert got[("mlfootprint_model_co2e_grams", (("model", "llama"), ("phase", "training")))] == 500.0
    assert got[("mlfootprint_model_runs", (("model", "llama"), ("phase", "inference")))] == 1
    assert got[("mlfootprint_model_co2e_grams", (("model", "bert"), ("phase", "training")))] == 1.0
    # a deleted run leaves the totals
    m.remove_run("TrainingRun", "ml", "sweep-2")
    assert _samples(m)[("mlfootprint_model_co2e_grams", dev)] == 100.0


@pytest.mark.prometheus
def test_exposition_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run `make tools` (hack/tools/30-prometheus.sh)"
    m = OperatorMetrics()
    m.set_run(_run("final", "training", "llama", 5.0e6, 500.0))
    m.set_factors_valid("ml", "mlfootprint-factors", True)
    m.set_source_up("scrape", True)
    proc = subprocess.run([promtool, "check", "metrics"], input=generate_latest(m.registry),
                          capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
