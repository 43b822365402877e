"""Prometheus mode against a fake Prometheus HTTP API (the real query semantics are
documented in docs/report.md): period deltas of the operator's cumulative gauges laid over
the snapshot's rows, splits by the rows' ratios, idle energy per node."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import pytest

from mlfootprint.cli import main
from mlfootprint.report.aggregate import ReportOptions, build_report
from mlfootprint.report.period import parse_period
from mlfootprint.report.progress import NullTasks
from mlfootprint.report.sources import PrometheusSource, SnapshotSource, SourceError
from mlfootprint.web.server import Server, reply

SINCE = 1793491200.0  # 2026-11-01
UNTIL = SINCE + 30 * 86400
FINAL = {"namespace": "nlp", "name": "final", "kind": "TrainingRun", "phase": "training", "model": "llama-3-8b"}
GONE = {"namespace": "old", "name": "deleted", "kind": "TrainingRun", "phase": "development", "model": "x"}

# metric -> [(labels, value at since, value at until)]
GAUGES = {
    "mlfootprint_run_energy_joules": [(FINAL, 0.0, 300 * 3.6e6), (GONE, 10 * 3.6e6, 12 * 3.6e6)],
    "mlfootprint_run_it_energy_joules": [(FINAL, 0.0, 250 * 3.6e6), (GONE, 8 * 3.6e6, 10 * 3.6e6)],
    "mlfootprint_run_co2e_grams": [(FINAL, 0.0, 104_000.0)],
    "mlfootprint_run_operational_co2e_grams": [(FINAL, 0.0, 100_000.0)],
    "mlfootprint_run_embodied_co2e_grams": [(FINAL, 0.0, 4_000.0)],
    "mlfootprint_run_water_liters": [(FINAL, 0.0, 439.0)],
    "mlfootprint_run_gpu_allocation_seconds": [(FINAL, 0.0, 384 * 3600.0)],
}
IDLE = {"gpu": {"h100-node-1": 18 * 3.6e6}, "host": {"h100-node-1": 10 * 3.6e6}, "pods": {"h100-node-1": 8 * 3.6e6}}


def prometheus_api(queries: list[str]) -> WSGIApplication:
    """GET /api/v1/query: the GAUGES at SINCE or UNTIL, the IDLE energy per node."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        q = urllib.parse.parse_qs(environ["QUERY_STRING"])
        query, at = q["query"][0], float(q["time"][0])
        queries.append(query)
        result = []
        m = re.match(r"last_over_time\((\w+)\[(\d+)s\]\)", query)
        if m:
            for labels, v0, v1 in GAUGES.get(m.group(1), []):
                value = v0 if abs(at - SINCE) < 1 else v1
                result.append({"metric": labels, "value": [at, str(value)]})
        else:
            which = "gpu" if "gpu_idle" in query else "pods" if "pod_host" in query else "host"
            result = [{"metric": {"node": n}, "value": [at, str(v)]} for n, v in IDLE[which].items()]
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
        return reply(start_response, "200 OK", body, content_type="application/json")

    return app


@pytest.fixture
def queries() -> list[str]:
    return []


@pytest.fixture
def prometheus(queries: list[str]) -> Iterator[str]:
    with Server(prometheus_api(queries)).start("fake-prometheus") as server:
        yield f"http://127.0.0.1:{server.port}"


def test_period_deltas_over_snapshot_rows(prometheus: str, queries: list[str], snapshot_path: Path) -> None:
    period = parse_period(month="2026-11")
    source = PrometheusSource(prometheus, SnapshotSource(snapshot_path), period, now_s=UNTIL)
    table = source.load(NullTasks())
    report = build_report(table, period, ReportOptions(group_by=("namespace",), now_s=UNTIL), notes=source.notes)
    groups = {g.key: g for g in report.groups}
    nlp = groups[("nlp",)].values
    assert nlp["facility_kwh"] == pytest.approx(300.0)
    assert nlp["it_kwh"] == pytest.approx(250.0)
    # split by the snapshot row's ratios: gpu 400/500, host 100/500, market 50/200 of operational
    assert nlp["gpu_kwh"] == pytest.approx(200.0) and nlp["host_kwh"] == pytest.approx(50.0)
    assert nlp["market_kg"] == pytest.approx(25.0)
    assert nlp["total_kg"] == pytest.approx(104.0) and nlp["gpu_hours"] == pytest.approx(384.0)
    assert nlp["onsite_l"] == pytest.approx(439 * 100 / 878) and nlp["embodied_l"] == pytest.approx(2.0)
    # a run only Prometheus knows (deleted object): its delta, labels from the series
    assert groups[("old",)].values["facility_kwh"] == pytest.approx(2.0)
    assert any("only in Prometheus" in n for n in report.notes)
    # idle: GPU idle 18 kWh + host (10 - 8 attributed to pods) = 20 kWh IT
    assert report.idle is not None
    assert report.idle.values["it_kwh"] == pytest.approx(20.0)
    assert report.source["kind"] == "prometheus"
    assert any(q.startswith("sum by (node) (increase(mlfootprint_gpu_idle_energy_joules_total[2592000s]))") for q in queries)


def test_cli_with_prometheus(prometheus: str, snapshot_path: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    exported = tmp_path / "nov.json"
    assert main(["report", "--from-file", str(snapshot_path), "--prometheus-url", prometheus, "--month", "2026-11",
                 "--now", "2026-12-01T00:00:00Z", "-f", "json", "-q", "--export", str(exported)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total"]["facility_kwh"] == pytest.approx(300 + 2 + doc["idle"]["facility_kwh"])
    # the export holds the period's figures: reading it back gives the same report
    assert main(["report", "--from-file", str(exported), "--month", "2026-11", "--now", "2026-12-01T00:00:00Z", "-f", "json", "-q"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["total"] == doc["total"]


def test_unreachable_prometheus_exits_1(snapshot_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--from-file", str(snapshot_path), "--prometheus-url", "http://127.0.0.1:9", "--month", "2026-11", "-q"]) == 1
    assert "cannot query Prometheus" in capsys.readouterr().err


def test_needs_period_start(snapshot_path: Path) -> None:
    source = PrometheusSource("http://127.0.0.1:9", SnapshotSource(snapshot_path), parse_period(), now_s=UNTIL)
    with pytest.raises(SourceError, match="--since"):
        source.load(NullTasks())
