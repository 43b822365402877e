"""Prometheus mode and scrape mode give the same status for the same energy (issue 5).

A fixture exporter (a local HTTP server) publishes two pods' counters, one pod per namespace,
both following the same function of time: 0 until ``t0``, linear until ``t1``, then flat.
A real Prometheus (Debian package, loopback, temp TSDB) scrapes it; one operator, in scrape
mode, watches namespace A and scrapes the exporter itself; a second operator, in Prometheus
mode (``energy_source=prometheus``), watches namespace B and reads the same counters back
from Prometheus at grid points (``STEP_S``) and differences them in its ledger.

The figures must agree to float rounding (rel 1e-9): both ledgers difference the same
cumulative counters, which end flat at the same final values, and the page Prometheus
scrapes carries explicit timestamps snapped to its scrape grid, each value the function
evaluated at its own timestamp, so scheduling jitter of the test process changes neither
the spacing of the samples nor their values. ``t0`` and ``t1`` lie on the grid, and the
grid step is longer than the refresh interval, so consecutive refreshes never skip a point.

The scrape-mode ledger counts the final counter values exactly (its first observation of a
series counts it whole, and the counters are 0 when the runs are created). The carbon
intensity of namespace B comes from a PromQL query to the same Prometheus (a gauge on the
page), that of A is the same number as a constant, so equal CO2e also checks the Prometheus
carbon-intensity path end to end (its fallback would give a different figure).
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlfootprint import rfc3339
from mlfootprint.operator.energy.prometheus import PrometheusSource
from tests.conftest import Kubectl
from tests.operator.conftest import apply, configmap, get_json, make_pod, set_pod_phase, training_run, wait_for
from tests.prometheus_server import RealPrometheus
from tests.text_server import TextServer

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]

KWH = 3.6e6
STEP_S = 2.0  # the Prometheus-mode window grid
LAG_S = 1.0  # counters are read this far behind now (Prometheus has scraped by then)
SCRAPE_MS = 250  # Prometheus scrape interval
GROWTH_STEPS = 2  # t1 - t0 in grid steps
# Totals over [t0, t1]: nice decimals, so the 4-significant-digit status figures are exact.
TOTALS = {"gpu_j": 1.5 * KWH, "cpu_j": 0.3 * KWH, "dram_j": 0.06 * KWH, "alloc_s": 7200.0}
PEAK_W, MIN_W = 690.0, 95.0
CI = 400.0


class RampExporter:
    """Per-pod counters ``total * clamp((t - t0) / (t1 - t0), 0, 1)``.

    ``/metrics``: values at the time of the request (what the scrape-mode operator reads).
    ``/prom``: values at explicit timestamps snapped to Prometheus' scrape grid (the phase is
    learnt from the first request), so the samples are regular and exact.
    """

    def __init__(self, pods: list[tuple[str, str]]) -> None:
        self.pods = pods
        self.t0: float | None = None
        self.t1: float | None = None
        self.phase_ms: int | None = None
        self.lock = threading.Lock()
        self._http = TextServer(self._serve)

    def _serve(self, path: str) -> str:
        now_ms = int(time.time() * 1000)
        if not path.startswith("/prom"):
            return self.page(now_ms, explicit=False)
        with self.lock:
            if self.phase_ms is None:
                self.phase_ms = now_ms % SCRAPE_MS
            phase = self.phase_ms
        ts_ms = phase + round((now_ms - phase) / SCRAPE_MS) * SCRAPE_MS
        return self.page(ts_ms, explicit=True)

    @property
    def port(self) -> int:
        return self._http.port

    def fraction(self, t_ms: int) -> float:
        """In integer milliseconds, as Prometheus keeps timestamps: epoch seconds as floats
        carry ~2e-7 s of rounding, a 5e-8 relative error over a 4 s ramp."""
        with self.lock:
            t0, t1 = self.t0, self.t1
        if t0 is None or t1 is None:
            return 0.0
        t0_ms, t1_ms = round(t0 * 1000), round(t1 * 1000)
        return min(max(t_ms - t0_ms, 0), t1_ms - t0_ms) / (t1_ms - t0_ms)

    def page(self, t_ms: int, *, explicit: bool) -> str:
        f = self.fraction(t_ms)
        ts = f" {t_ms}" if explicit else ""
        lines = [f'grid_carbon_intensity{{zone="DE"}} {CI!r}{ts}', f'mlfootprint_exporter_build_info{{version="test"}} 1.0{ts}']
        for ns, pod in self.pods:
            base = f'node="kwok-gpu-0",namespace="{ns}",pod="{pod}",container=""'
            lines += [
                f'mlfootprint_pod_gpu_energy_joules_total{{{base},gpu_uuid="GPU-{pod}",gpu_model="H100"}} {TOTALS["gpu_j"] * f!r}{ts}',
                f'mlfootprint_pod_host_energy_joules_total{{{base},component="cpu"}} {TOTALS["cpu_j"] * f!r}{ts}',
                f'mlfootprint_pod_host_energy_joules_total{{{base},component="dram"}} {TOTALS["dram_j"] * f!r}{ts}',
                f'mlfootprint_pod_gpu_allocation_seconds_total{{{base},gpu_model="H100"}} {TOTALS["alloc_s"] * f!r}{ts}',
                f"mlfootprint_pod_power_swings_total{{{base}}} 0.0{ts}",
                f"mlfootprint_pod_gpu_power_peak_watts{{{base}}} {PEAK_W!r}{ts}",
                f"mlfootprint_pod_gpu_power_min_watts{{{base}}} {MIN_W!r}{ts}",
                f"mlfootprint_pod_start_time_seconds{{{base}}} 1700000000.5{ts}",
            ]
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self._http.close()


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Any]:
    """start(target_port, path) -> base URL of a real Prometheus scraping that target."""
    started: list[RealPrometheus] = []

    def start(target_port: int, path: str) -> str:
        prom = RealPrometheus(
            tmp_path,
            f"global: {{scrape_interval: {SCRAPE_MS}ms, scrape_timeout: {SCRAPE_MS - 50}ms, evaluation_interval: 1s}}\n"
            "scrape_configs:\n"
            f"  - job_name: fixture\n    metrics_path: {path}\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n",
        )
        started.append(prom)
        return prom.start()

    yield start
    for prom in started:
        prom.stop()


@pytest.fixture
def second_namespace(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    name = f"{namespace[:55]}-b"
    kubectl("create", "namespace", name)
    kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=30s")
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def _status(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any]:
    return get_json(kubectl, "trainingrun", name, "-n", ns).get("status") or {}


FACTORS = {"pue": "1.5", "wueOnsite": "0.5", "wueOffsite": "2", "embodiedGpu": "{H100: {co2eKg: 876, waterL: 87.6}}", "gpuLifetimeYears": "1"}
LEDGER_KEYS = ("gpuJ", "cpuJ", "dramJ", "itJ", "facilityJ", "co2eOpG", "co2eEmbG", "waterOnL", "waterOffL", "waterEmbL", "allocS")


def test_prometheus_mode_and_scrape_mode_give_the_same_status(
    kubectl: Kubectl, namespace: str, second_namespace: str, start_operator: Any, prometheus_for: Any
) -> None:
    check_modes_agree(kubectl, namespace, second_namespace, start_operator, prometheus_for)


def check_modes_agree(
    kubectl: Kubectl, ns_a: str, ns_b: str, start_operator: Any, store_for: Any, *, lag_s: float = LAG_S, step_s: float = STEP_S
) -> None:
    """Scrape mode in ``ns_a``, Prometheus mode in ``ns_b`` reading the store that
    ``store_for(port, path)`` starts scraping the ramp exporter; the same status (see above).
    ``lag_s``: how far behind now the store is read (it must have made the samples queryable);
    ``step_s``: the grid (longer than the store's query time, so that no refresh skips a point)."""
    exporter = RampExporter([(ns_a, "w-0"), (ns_b, "w-0")])
    try:
        prom_url = store_for(exporter.port, "/prom")
        apply(kubectl, ns_a, configmap("mlfootprint-factors", {**FACTORS, "carbonIntensity": str(CI)}))
        query = 'grid_carbon_intensity{zone="DE"}'
        apply(kubectl, ns_b, configmap("mlfootprint-factors", {
            **FACTORS, "carbonIntensity": json.dumps({"prometheus": {"query": query}, "fallback": 100}),
        }))
        for ns in (ns_a, ns_b):
            apply(kubectl, ns, training_run("run", app="w", model="m", final=True))
            make_pod(kubectl, ns, "w-0", {"app": "w"})
            set_pod_phase(kubectl, ns, "w-0", "Running")

        start_operator(ns_a, exporter_urls=(f"http://127.0.0.1:{exporter.port}/metrics",), interval_s=0.3)
        # Prometheus mode as configured (energy_source, prometheus_url for the carbon-intensity
        # query); the source is the one build_runtime makes, with a grid step longer than the
        # refresh interval so that no refresh skips a grid point (see the module docstring).
        source = PrometheusSource(prom_url, step_s=step_s, lag_s=lag_s)
        start_operator(ns_b, energy_source="prometheus", prometheus_url=prom_url, prometheus_lag_s=lag_s, interval_s=0.3, energy=source)
        for ns in (ns_a, ns_b):
            wait_for(lambda ns=ns: _status(kubectl, ns, "run").get("ledger", {}).get("observedAt"), what=f"first refresh in {ns}")

        # the ledger B continues from (written only when a figure changes: nothing changes before t0)
        before = rfc3339.parse(_status(kubectl, ns_b, "run")["ledger"]["observedAt"]) or 0.0
        t0 = math.ceil((time.time() + 1.0) / step_s) * step_s
        with exporter.lock:
            exporter.t0, exporter.t1 = t0, t0 + GROWTH_STEPS * step_s
        t1 = t0 + GROWTH_STEPS * step_s

        wait_for(
            lambda: _status(kubectl, ns_a, "run")["ledger"]["totals"].get("gpuJ") == TOTALS["gpu_j"],
            timeout_s=30, what="scrape mode: all the energy",
        )
        # all the energy, read at a grid point at or after t1 (usually t1 + step: the read at t1
        # sees a sample just before it; on a loaded machine the read at t1 may come late enough
        # to see the final one, and then nothing changes after it, so no later write)
        wait_for(
            lambda: (st := _status(kubectl, ns_b, "run")["ledger"])["totals"].get("gpuJ") == pytest.approx(TOTALS["gpu_j"], rel=1e-9)
            and (rfc3339.parse(st["observedAt"]) or 0) >= t1,
            timeout_s=30, what="Prometheus mode: all the energy, counters read at or past t1",
        )
        a, b = _status(kubectl, ns_a, "run"), _status(kubectl, ns_b, "run")
    finally:
        exporter.close()

    # The hand computation: 1.5 + 0.36 kWh IT, x 1.5 PUE, x 400 g/kWh; 2 GPU-hours of 876 kg/year.
    assert a["energy"] == {"gpuKWh": 1.5, "hostKWh": 0.36, "itKWh": 1.86, "facilityKWh": 2.79}
    assert a["carbon"]["operationalKg"] == 1.116 and a["gpuHours"] == 2.0
    ta, tb = a["ledger"]["totals"], b["ledger"]["totals"]
    for k in LEDGER_KEYS:
        assert tb.get(k) == pytest.approx(ta[k], rel=1e-9, abs=1e-9), k
    assert tb["allocSByModel"]["H100"] == pytest.approx(ta["allocSByModel"]["H100"], rel=1e-9)
    for part in ("energy", "carbon", "water", "gpuHours", "gpus", "gpuModels", "pods", "phase"):
        assert b[part] == a[part], part
    assert (b["power"]["peakW"], b["power"]["minW"], b["power"]["swings"]) == (PEAK_W, MIN_W, 0)
    assert (a["power"]["peakW"], a["power"]["minW"], a["power"]["swings"]) == (PEAK_W, MIN_W, 0)
    # the same factors, the intensity of B read from Prometheus (not its fallback of 100)
    assert b["factors"]["carbonIntensityKind"] == "prometheus" and a["factors"]["carbonIntensityKind"] == "constant"
    fa = {k: v for k, v in a["factors"].items() if k not in ("source", "carbonIntensityKind")}
    fb = {k: v for k, v in b["factors"].items() if k not in ("source", "carbonIntensityKind")}
    assert fb == fa
    # time: Prometheus mode reads the latest sample at or before each grid point, so the energy
    # is accounted in the grid intervals covering [t0, t1], the last slice possibly one grid
    # interval later (a sample can trail its grid point by up to one scrape); nothing is lost.
    # The status is written only when a figure changes, so the first interval with energy
    # starts at the ledger written before t0 (``before``), not necessarily one step before t0.
    assert t1 - t0 - 1e-6 <= tb["activeS"] <= t1 + step_s - min(before, t0) + 1e-6
    for st in (a, b):
        ready = next(c for c in st["conditions"] if c["type"] == "EnergySourceReady")
        assert ready["status"] == "True", ready
