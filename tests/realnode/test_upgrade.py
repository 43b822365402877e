"""Upgrade with runs in flight, on the real node (issue 16).

The baseline is the previous release, 0.1.0 (git tag ``v0.1.0``, commit :data:`BASELINE_COMMIT`):
its tree comes from ``git archive``, its image is built by this tree's builder
(``SOURCE=<tree> hack/image/build.sh``: 0.1.0 has no builder; its lock pins the same runtime
packages, checked below) and its chart is installed from that tree. Then, as docs/install.md
says: apply the new CRDs (``kubectl apply --server-side --force-conflicts -f crds/``), ``helm
upgrade --reset-then-reuse-values`` to this tree's chart and image while GPU Jobs run, and later a second
rollout of this version (a changed pod annotation) on both components.

Workloads: Jobs holding the node's fake GPUs (device plugin) and a TrainingRun over each:
``early`` completes under 0.1.0, ``train`` runs through both rollouts, ``late`` starts seconds
before the upgrade (its 0.1 ledger is young: the classic reset rule's blind spot).

**The truth.** From the upgrade on, the simulated GPUs keep their counters in a device file
on the node (the chart puts it beside the exporter's state), which the test reads ten times
per attribution interval (``tests/faults/oracle.py``'s rule: an interval ``(a, b]`` is billed
to the container holding the GPU at reading ``b``). 0.1.0's simulated GPUs live inside its
exporter process (no device file), so before the upgrade the figures are taken as the 0.1.0
operator wrote them: the check is that the upgrade keeps them and bills the rest exactly.

For each run, with ``B0`` its GPU energy in the last status the 0.1.0 operator wrote from
0.1.0's exporter and ``F`` its final GPU energy:

* **nothing lost** after the documented gap: ``F - B0 >= truth`` (the held energy of its GPUs
  from the new exporter's first reading, through the second rollout, to the end) minus the
  numerical tolerance (1 J + 1 ppm + 1 mJ per reading, oracle.tolerance_j);
* **nothing doubled**: ``F - B0 <= truth + tail`` + the tolerance, where ``tail`` is what
  0.1.0's exporter still counted after ``B0`` (its last values the test scraped, minus ``B0``'s
  counters, plus the GPUs' 700 W for the time between that scrape and its exit);
* a completed run keeps its figures exactly; figures never decrease in any status written.

The documented gap (docs/install.md#upgrading, 0.1.0 only): 0.1.0 keeps the exporter's state
in an emptyDir, gone with the old pod, and its simulated GPUs die with it, so the energy from
its last reading to the new exporter's first is not billed (the test prints that span). The
second rollout has no gap: the state and the device file are on the node.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import threading
import time
import tomllib
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pytest
import yaml

import mlfootprint
from mlfootprint.devcluster import DevCluster
from tests.chart.conftest import helm
from tests.faults.oracle import DeviceHistory, DeviceRecord, tolerance_j
from tests.realnode.conftest import REPO, BuiltImage, kubectl_json, scrape, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.helm, pytest.mark.realnode]

BASELINE_VERSION = "0.1.0"
BASELINE_TAG = "v0.1.0"
BASELINE_COMMIT = "87b2a004f3417fb50bb4cae008200c2a5d2f21b0"
BASELINE_REF = f"ghcr.io/mlfootprint/mlfootprint:{BASELINE_VERSION}"

RELEASE = "mlf"
NS = "mlfootprint"
WORK_NS = "upgrade"
EXPORTER_PORT = 9860
ATTRIBUTION_S = 0.5
REFRESH_S = 3
MAX_POWER_W = 700.0  # the simulated GPUs' limit: no interval draws more
JOBS = {"early": 1, "train": 2, "late": 1}  # Job -> GPUs
#: 0.1.0's ledger before the upgrade must be much older than what the new exporter counts
#: before the operator reads it, or the classic reset rule cannot tell (see `late`)
TRAIN_BEFORE_UPGRADE_J = 40_000.0


def _git(*args: str) -> str:
    proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail(f"git {' '.join(args)} failed: {proc.stderr.strip()} (the baseline release needs the "
                    f"repository's history: commit {BASELINE_COMMIT[:7]}, tag {BASELINE_TAG})", pytrace=False)
    return proc.stdout


# ----------------------------------------------------------------- the baseline release


@dataclass(frozen=True)
class Baseline:
    tree: Path
    image: BuiltImage


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """The 0.1.0 tree (git archive) and its image, built by this tree's builder."""
    if BASELINE_TAG in _git("tag", "--list", BASELINE_TAG).split():
        tagged = _git("rev-parse", "--verify", f"{BASELINE_TAG}^{{commit}}").strip()
        assert tagged == BASELINE_COMMIT, f"tag {BASELINE_TAG} points at {tagged}, not the baseline {BASELINE_COMMIT}"
    tree = tmp_path_factory.mktemp("baseline") / "tree"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BASELINE_COMMIT], capture_output=True, timeout=120)
    assert archive.returncode == 0, archive.stderr.decode()[-2000:]
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True, timeout=120)
    chart = yaml.safe_load((tree / "charts/mlfootprint/Chart.yaml").read_text())
    assert chart["appVersion"] == BASELINE_VERSION, chart["appVersion"]
    out = tmp_path_factory.mktemp("baseline-image") / "baseline.oci.tar"
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(REPO / "hack/image/build.sh"), str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=1200, env={**os.environ, "SOURCE": str(tree)})
    if proc.returncode != 0:
        pytest.fail(f"baseline image build failed ({proc.returncode}):\n{proc.stderr[-3000:]}", pytrace=False)
    return Baseline(tree, BuiltImage(BASELINE_REF, out, time.monotonic() - t0, 0.0))


def _pins(text: str) -> dict[str, str]:
    return {re.sub(r"[-_.]+", "-", n).lower(): v for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", text, re.M)}


# ----------------------------------------------------------------- recording


class _Poller:
    """A daemon thread calling :meth:`poll` every ``period_s`` until :meth:`stop`."""

    period_s = 0.2
    join_s = 10.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.join_s)

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.poll()

    def poll(self) -> None:
        raise NotImplementedError


class DeviceRecorder(_Poller):
    """Polls the simulated GPUs' device file (ten times per attribution interval) and keeps
    every reading: (simulated time, counter J, holding container)."""

    period_s = ATTRIBUTION_S / 10

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.records: dict[str, list[tuple[float, float, str | None]]] = {}
        self.first_seen_unix: float | None = None

    def poll(self) -> None:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        for g in doc["gpus"]:
            if g.get("t_s") is None:
                continue
            recs = self.records.setdefault(g["uuid"], [])
            if not recs or float(g["t_s"]) > recs[-1][0]:
                if self.first_seen_unix is None:
                    self.first_seen_unix = time.time()
                recs.append((float(g["t_s"]), float(g["energy_mj"]) / 1000.0, g.get("holder")))

    def truth_j(self, pods: set[str]) -> tuple[float, int, set[str]]:
        """(held energy of the GPUs held by a container of ``pods`` — the oracle's rule —,
        readings involved, those GPUs)."""
        total, readings, gpus = 0.0, 0, set()
        for uuid, recs in self.records.items():
            history = DeviceHistory()
            for t_s, energy_j, holder in recs:
                held = holder is not None and holder.split("/")[1] in pods
                history.add(uuid, DeviceRecord(t_s, energy_j, held))
                gpus |= {uuid} if held else set()
            if uuid in gpus:
                total += history.held_j(uuid)
                readings += history.readings(uuid)
            assert not history.regressions, history.regressions
        return total, readings, gpus


class StatusRecorder(_Poller):
    """Every distinct status of the TrainingRuns, in order (polled through the API)."""

    def __init__(self, cluster: DevCluster) -> None:
        from kubernetes import client, config  # noqa: PLC0415

        super().__init__()
        self._api = client.CustomObjectsApi(config.new_client_from_config(str(cluster.kubeconfig)))
        self.history: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self._seen: set[tuple[str, str]] = set()

    def poll(self) -> None:
        try:
            items = self._api.list_namespaced_custom_object("mlfootprint.io", "v1alpha1", WORK_NS, "trainingruns",
                                                            _request_timeout=10)["items"]
        except Exception:  # noqa: BLE001 (the API server is busy; poll again)
            return
        for obj in items:
            key = (obj["metadata"]["name"], obj["metadata"]["resourceVersion"])
            if key not in self._seen and obj.get("status"):
                self._seen.add(key)
                self.history.setdefault(key[0], []).append((time.time(), obj["status"]))


class OldExporterScraper(_Poller):
    """Scrapes 0.1.0's exporter pod until it is gone: its last served per-pod GPU counters."""

    join_s = 15.0

    def __init__(self, ip: str) -> None:
        super().__init__()
        self.url = f"http://{ip}:{EXPORTER_PORT}/metrics"
        self.last: dict[tuple[str, str, str], float] = {}
        self.last_ok_unix: float | None = None
        self.first_fail_unix: float | None = None

    def poll(self) -> None:
        try:
            metrics = scrape(self.url, timeout_s=2)
        except (OSError, urllib.error.URLError, ValueError):
            if self.last_ok_unix is not None and self.first_fail_unix is None:
                self.first_fail_unix = time.time()
            return
        if self.first_fail_unix is not None:
            return  # the IP now belongs to another pod
        self.last = {(lab["pod"], lab["container"], lab["gpu_uuid"]): v
                     for lab, v in metrics.get("mlfootprint_pod_gpu_energy_joules_total", [])
                     if lab.get("namespace") == WORK_NS}
        self.last_ok_unix = time.time()


# ----------------------------------------------------------------- the scenario


def _job(name: str, gpus: int, image: str) -> str:
    return f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
  backoffLimit: 0
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 2
      nodeSelector: {{mlfootprint.dev/real-node: "true"}}
      volumes: [{{name: ctl, emptyDir: {{}}}}]
      containers:
        - name: trainer
          image: {image}
          imagePullPolicy: Never
          command: [sh, -c, 'while [ ! -e /ctl/stop ]; do sleep 0.5; done']
          volumeMounts: [{{name: ctl, mountPath: /ctl}}]
          resources: {{limits: {{nvidia.com/gpu: "{gpus}"}}}}
---
apiVersion: mlfootprint.io/v1alpha1
kind: TrainingRun
metadata: {{name: {name}}}
spec:
  model: {{name: upgrade-{name}}}
  workloadRef: {{apiVersion: batch/v1, kind: Job, name: {name}}}
  selector: {{matchLabels: {{job-name: {name}}}}}
  final: true
"""


def _baseline_values(cluster: DevCluster) -> dict[str, Any]:
    """0.1.0's values (its schema): no image tag, so `--reset-then-reuse-values` takes the new appVersion."""
    assert cluster.node is not None
    return {
        "image": {"pullPolicy": "Never"},
        "exporter": {
            "gpuSource": "sim",
            "podSource": "kubelet",
            "podMetadata": "kubernetes",
            "hostSource": "model",  # 0.1.0's `auto` fails on a node without powercap (issue 17 #1)
            "metricsLevel": "container",
            "attributionIntervalSeconds": ATTRIBUTION_S,
            "kubelet": {"podResourcesDir": str(cluster.node.pod_resources_dir)},
            # every GPU trains (0.1.0's kubelet source does not read the pods' sim-profile)
            "sim": {"gpus": cluster.node.gpus, "seed": cluster.node.seed, "timeFactor": 1, "defaultProfile": "training"},
            "gpuNodeAffinity": {"enabled": False},
            "nodeSelector": {"mlfootprint.dev/real-node": "true"},
        },
        "operator": {"refreshIntervalSeconds": REFRESH_S, "discovery": False,
                     "nodeSelector": {"mlfootprint.dev/real-node": "true"}},
        "serviceMonitor": {"enabled": False},
        "prometheusRule": {"enabled": False},
    }


@dataclass
class Upgrade:
    cluster: DevCluster
    statuses: dict[str, list[tuple[float, dict[str, Any]]]]
    crds_before: dict[str, dict[str, Any]]
    crds_after: dict[str, dict[str, Any]]
    early_before: dict[str, Any]
    early_after: dict[str, Any]
    final: dict[str, dict[str, Any]]
    truth: dict[str, tuple[float, int, set[str]]]
    old_last: dict[tuple[str, str, str], float]
    old_tail_s: float
    pods: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)


def _helm(cluster: DevCluster, *args: str, timeout_s: float = 420) -> str:
    return helm(*args, "--kubeconfig", str(cluster.kubeconfig), timeout_s=timeout_s).stdout


def _run(cluster: DevCluster, name: str) -> dict[str, Any]:
    return kubectl_json(cluster, "get", "trainingrun", name, "-n", WORK_NS)


def _gpu_j(status: dict[str, Any] | None) -> float:
    return float((((status or {}).get("ledger") or {}).get("totals") or {}).get("gpuJ", 0.0))


def _exporter_pod(cluster: DevCluster) -> dict[str, Any]:
    pods = [p for p in kubectl_json(cluster, "get", "pods", "-n", NS, "-l", "app.kubernetes.io/component=exporter")["items"]
            if not p["metadata"].get("deletionTimestamp")]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def _stop_job(cluster: DevCluster, name: str) -> None:
    (pod,) = kubectl_json(cluster, "get", "pods", "-n", WORK_NS, "-l", f"job-name={name}")["items"]
    cluster.kubectl("exec", "-n", WORK_NS, pod["metadata"]["name"], "--", "touch", "/ctl/stop", timeout_s=60)
    cluster.kubectl("wait", "-n", WORK_NS, "--for=condition=Complete", f"job/{name}", "--timeout=90s", timeout_s=120)


def _completed(cluster: DevCluster, name: str, timeout_s: float = 120) -> dict[str, Any]:
    run = wait_until(lambda: (lambda r: r if (r.get("status") or {}).get("completionTime") else None)(_run(cluster, name)),
                     timeout_s, f"the operator to complete TrainingRun {name}")
    assert isinstance(run, dict)
    return run


def _crds(cluster: DevCluster) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: c for c in kubectl_json(cluster, "get", "crd", "-l", "app.kubernetes.io/part-of=mlfootprint")["items"]}


@pytest.fixture(scope="module")
def upgrade(real_cluster: DevCluster, node_image: BuiltImage, baseline: Baseline,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upgrade]:
    cluster = real_cluster
    assert cluster.node is not None
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    cluster.import_image(baseline.image.archive)
    timings["baseline_image_build_s"] = baseline.image.build_s
    timings["baseline_image_import_s"] = time.monotonic() - t0
    state_base = cluster.node.root / "exporter-state"  # removed with the node
    device_file = state_base / f"{NS}.{RELEASE}" / "sim-devices.json"
    values_dir = tmp_path_factory.mktemp("upgrade-values")
    (values_dir / "baseline.yaml").write_text(yaml.safe_dump(_baseline_values(cluster)))
    (values_dir / "upgrade.yaml").write_text(yaml.safe_dump({"exporter": {"state": {"hostPath": str(state_base)}}}))

    # 0.1.0, as a user installed it
    t0 = time.monotonic()
    _helm(cluster, "install", RELEASE, str(baseline.tree / "charts/mlfootprint"), "-n", NS, "--create-namespace",
          "-f", str(values_dir / "baseline.yaml"), "--wait", "--timeout", "4m")
    timings["baseline_install_s"] = time.monotonic() - t0
    assert _exporter_pod(cluster)["spec"]["containers"][0]["image"] == BASELINE_REF
    crds_before = _crds(cluster)
    cluster.kubectl("create", "namespace", WORK_NS)
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", WORK_NS, "--timeout=60s")
    statuses = StatusRecorder(cluster).start()
    recorder = DeviceRecorder(device_file).start()
    old: OldExporterScraper | None = None
    try:
        for name in ("early", "train"):
            cluster.kubectl("apply", "-n", WORK_NS, "-f", "-", input=_job(name, JOBS[name], node_image.ref))
        cluster.kubectl("wait", "-n", WORK_NS, "--for=condition=Ready", "pod", "-l", "job-name in (early,train)",
                        "--timeout=120s", timeout_s=150)
        # `early` completes under 0.1.0
        wait_until(lambda: _gpu_j(_run(cluster, "early").get("status")) > 5_000, 90, "energy on TrainingRun early")
        _stop_job(cluster, "early")
        early_before = _completed(cluster, "early")
        # `train` accumulates well beyond what the new exporter counts before its first read
        wait_until(lambda: _gpu_j(_run(cluster, "train").get("status")) > TRAIN_BEFORE_UPGRADE_J, 120,
                   "TrainingRun train to accumulate energy under 0.1.0")
        old = OldExporterScraper(_exporter_pod(cluster)["status"]["podIP"]).start()
        # `late` starts right before the upgrade: 0.1.0 reads it once or twice
        cluster.kubectl("apply", "-n", WORK_NS, "-f", "-", input=_job("late", JOBS["late"], node_image.ref))
        cluster.kubectl("wait", "-n", WORK_NS, "--for=condition=Ready", "pod", "-l", "job-name=late",
                        "--timeout=120s", timeout_s=150)
        wait_until(lambda: _gpu_j(_run(cluster, "late").get("status")) > 0, 60, "0.1.0 to bill TrainingRun late")

        # the upgrade, as docs/install.md#upgrading says
        t0 = time.monotonic()
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"), timeout_s=120)
        timings["crd_apply_s"] = time.monotonic() - t0
        crds_after = _crds(cluster)
        t0 = time.monotonic()
        _helm(cluster, "upgrade", RELEASE, str(REPO / "charts/mlfootprint"), "-n", NS, "--reset-then-reuse-values",
              "-f", str(values_dir / "upgrade.yaml"), "--wait", "--timeout", "5m")
        timings["helm_upgrade_s"] = time.monotonic() - t0
        assert _exporter_pod(cluster)["spec"]["containers"][0]["image"] == node_image.ref
        wait_until(lambda: old.first_fail_unix is not None, 60, "0.1.0's exporter to stop serving")
        old.stop()
        timings["upgrade_gap_s"] = (recorder.first_seen_unix or math.nan) - (old.last_ok_unix or math.nan)
        # the new operator writes its ledger (series) for the runs in flight
        for name in ("train", "late"):
            wait_until(lambda n=name: ((_run(cluster, n).get("status") or {}).get("ledger") or {}).get("series"), 90,
                       f"the new operator's ledger on TrainingRun {name}")
        # a second rollout of this version: both components replaced while the runs go on
        before_j = {name: _gpu_j(_run(cluster, name)["status"]) for name in ("train", "late")}
        t0 = time.monotonic()
        _helm(cluster, "upgrade", RELEASE, str(REPO / "charts/mlfootprint"), "-n", NS, "--reset-then-reuse-values",
              "--set-string", "exporter.podAnnotations.mlfootprint\\.dev/rollout=2",
              "--set-string", "operator.podAnnotations.mlfootprint\\.dev/rollout=2", "--wait", "--timeout", "5m")
        timings["rollout_s"] = time.monotonic() - t0
        # each run well beyond 10 kJ after the rollout: the assertions need that much to tell anything
        for name in ("train", "late"):
            wait_until(lambda n=name: _gpu_j(_run(cluster, n)["status"]) > before_j[n] + 10_000, 120,
                       f"TrainingRun {name} to go on after the rollout")
        for name in ("train", "late"):
            _stop_job(cluster, name)
        final = {name: _completed(cluster, name, 180) for name in ("train", "late")}
        early_after = _run(cluster, "early")
        pods = {name: kubectl_json(cluster, "get", "pods", "-n", WORK_NS, "-l", f"job-name={name}")["items"][0]["metadata"]["name"]
                for name in JOBS}
    finally:
        statuses.stop()
        recorder.stop()
        if old is not None:
            old.stop()
    truth = {name: recorder.truth_j({pods[name]}) for name in ("train", "late")}
    assert old.last_ok_unix is not None and old.first_fail_unix is not None
    up = Upgrade(cluster, statuses.history, crds_before, crds_after, early_before, early_after, final, truth,
                 old.last, old.first_fail_unix - old.last_ok_unix, pods, timings)
    try:
        yield up
    finally:
        print("\n[upgrade] timings: " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items()))
        _helm(cluster, "uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "2m")
        cluster.kubectl("delete", "namespace", WORK_NS, "--wait=false", "--ignore-not-found", check=False)


# ----------------------------------------------------------------- the checks


def test_crds_upgraded_in_place(upgrade: Upgrade) -> None:
    """`kubectl apply --server-side` replaced the schemas of the CRDs Helm created, in place
    (same objects, new generation, new status fields, the version label), and the runs stored
    under the old schema are still there and served."""
    assert set(upgrade.crds_before) == set(upgrade.crds_after) == {"trainingruns.mlfootprint.io",
                                                                    "inferenceservices.mlfootprint.io"}
    for name, after in upgrade.crds_after.items():
        before = upgrade.crds_before[name]
        assert after["metadata"]["uid"] == before["metadata"]["uid"], "the CRD was replaced, not upgraded"
        assert after["metadata"]["generation"] > before["metadata"]["generation"]
        assert "app.kubernetes.io/version" not in before["metadata"].get("labels", {})
        assert after["metadata"]["labels"]["app.kubernetes.io/version"] == mlfootprint.__version__
        status = after["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        assert {"series", "serving", "folded"} <= set(status["ledger"]["properties"])
        assert {c["type"] for c in after["status"]["conditions"]} >= {"Established"}
    assert upgrade.early_after["metadata"]["uid"] == upgrade.early_before["metadata"]["uid"]


def test_new_status_fields_on_the_runs_in_flight(upgrade: Upgrade) -> None:
    """The runs metered across the upgrade carry 0.2's status: the ledger per container
    incarnation (series with the exporters' start times), the 0.1 counters migrated away, a
    Ready condition, the power percentiles."""
    for name in ("train", "late"):
        status = upgrade.final[name]["status"]
        ledger = status["ledger"]
        assert "counters" not in ledger, "the 0.1 counters were not migrated"
        assert ledger.get("series") or ledger.get("folded"), ledger
        # each container incarnation is identified by its exporter's start time
        assert all(s.get("start") for s in (ledger.get("series") or {}).values()), ledger["series"]
        assert {c["type"] for c in status["conditions"]} >= {"Ready"}
        assert "lastUpdated" not in status
        assert {"p50W", "p90W", "p99W"} <= set(status["power"]), status["power"]


def test_completed_run_keeps_its_figures(upgrade: Upgrade) -> None:
    """`early` completed under 0.1.0: the upgrade (CRD schema, new operator) changes none of
    its figures."""
    before, after = upgrade.early_before["status"], upgrade.early_after["status"]
    assert after["completionTime"] == before["completionTime"]
    tb, ta = before["ledger"]["totals"], after["ledger"]["totals"]
    for key in ("gpuJ", "cpuJ", "itJ", "facilityJ", "co2eOpG", "waterOnL", "waterOffL", "co2eEmbG", "allocS"):
        assert ta.get(key) == tb.get(key), (key, tb.get(key), ta.get(key))
    for key in ("energy", "carbon", "water"):
        assert after.get(key) == before.get(key), key


def test_figures_never_decrease(upgrade: Upgrade) -> None:
    for name, history in upgrade.statuses.items():
        values = [_gpu_j(s) for _t, s in history]
        drops = [(a, b) for a, b in zip(values, values[1:], strict=False) if b < a]
        assert not drops, f"{name}: GPU energy went down across the upgrade: {drops}"


def _ledger_trail(upgrade: Upgrade, name: str) -> str:
    """Each status's GPU energy and ledger (read time, counters or series with their start):
    what a failure needs to tell which rule took which reading."""
    lines = []
    for t, status in upgrade.statuses[name]:
        ledger = status.get("ledger") or {}
        series = {k: (v.get("start"), v.get("gpuJ")) for k, v in (ledger.get("series") or {}).items()}
        counters = {k: v for k, v in (ledger.get("counters") or {}).items() if k.startswith("gpu|")}
        lines.append(f"  t={t:.1f} gpuJ={_gpu_j(status):.0f} observedAt={ledger.get('observedAt')} "
                     f"counters={counters} series={series}")
    return "\n".join(lines[-40:])


def _baseline_point(upgrade: Upgrade, name: str) -> tuple[float, dict[str, float]]:
    """B0 and its counters: the last status the 0.1.0 operator wrote from 0.1.0's exporter
    (0.1 ledger format, before any of its counters dropped: a drop means it read the new
    exporter)."""
    best: tuple[float, dict[str, float]] | None = None
    last: dict[str, float] = {}
    for _t, status in upgrade.statuses[name]:
        ledger = status.get("ledger") or {}
        if ledger.get("series") or not ledger.get("counters"):
            continue
        counters = {k: float(v) for k, v in ledger["counters"].items()}
        if any(counters.get(k, 0.0) < v for k, v in last.items()):
            break
        last = counters
        best = (_gpu_j(status), counters)
    assert best is not None, f"{name}: no status written by the 0.1.0 operator"
    return best


@pytest.mark.parametrize("name", ["train", "late"])
def test_no_energy_lost_or_doubled_across_the_upgrades(upgrade: Upgrade, name: str) -> None:
    b0, counters = _baseline_point(upgrade, name)
    final_j = _gpu_j(upgrade.final[name]["status"])
    truth_j, readings, gpus = upgrade.truth[name]
    assert len(gpus) == JOBS[name], (name, gpus)
    pod = upgrade.pods[name]
    # what 0.1.0's exporter counted after B0 and before it stopped (the tail)
    tail_j = sum(v - counters.get(f"gpu|{p}|{c}|{u}", 0.0) for (p, c, u), v in upgrade.old_last.items() if p == pod)
    tail_max_j = max(tail_j, 0.0) + MAX_POWER_W * JOBS[name] * (upgrade.old_tail_s + ATTRIBUTION_S)
    tol = tolerance_j(truth_j, readings)
    billed_after_j = final_j - b0
    print(f"\n[upgrade] {name}: B0={b0:.0f} J, final={final_j:.0f} J, billed after B0={billed_after_j:.0f} J, "
          f"truth from the new exporter's first reading={truth_j:.0f} J ({readings} readings), "
          f"0.1.0 tail <= {tail_max_j:.0f} J")
    assert truth_j > 10_000, "too little energy after the upgrade to tell anything"
    assert billed_after_j >= truth_j - tol, (
        f"{name}: {truth_j - billed_after_j:.0f} J lost after the upgrade; ledgers:\n" + _ledger_trail(upgrade, name))
    assert billed_after_j <= truth_j + tail_max_j + tol, \
        f"{name}: {billed_after_j - truth_j - tail_max_j:.0f} J more than the truth (double counted)"


def test_baseline_image_has_the_baselines_runtime_pins(baseline: Baseline) -> None:
    """The baseline image installs this tree's runtime lock (0.1.0's lock has no hashes and
    includes the test tools): faithful only if it pins every runtime dependency of 0.1.0, and
    every package both pin at 0.1.0's version. Packages only this tree needs (bcrypt, for the
    web config) are installed too and unused by 0.1.0's code."""
    ours = _pins((REPO / "requirements.lock").read_text())
    theirs = _pins((baseline.tree / "requirements.lock").read_text())
    shared = sorted(set(ours) & set(theirs))
    assert {n: ours[n] for n in shared} == {n: theirs[n] for n in shared}
    theirs_deps = tomllib.loads((baseline.tree / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]).lower() for d in theirs_deps}
    assert names and names <= set(ours), sorted(names - set(ours))
