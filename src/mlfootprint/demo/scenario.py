"""The demo's sample project (``samples/demo/scenario.yaml``) as typed runs and manifests.

Three lifecycle phases (METHODOLOGY §1): a development sweep of TrainingRuns (some of which
fail), the final training run, and an InferenceService under simulated traffic. Durations are
simulated hours; the wall-clock time of a step is ``hours * 3600 / time_factor``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from mlfootprint.crd.models import GROUP, VERSION

PART_OF = {"app.kubernetes.io/part-of": "mlfootprint-demo"}
RUN_LABEL = "mlfootprint.io/run"
PROFILE_ANNOTATION = "mlfootprint.io/sim-profile"
#: kwok leaves pods with this annotation alone; the demo sets their status (Running, Succeeded, Failed)
KWOK_CUSTOM_STATUS = {"kwok.x-k8s.io/status": "custom"}
SERVING_URL_ANNOTATION = "mlfootprint.io/serving-metrics-url"
TRAINER_IMAGE = "ghcr.io/example/llm-trainer:2026.11"
VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"

Outcome = Literal["Succeeded", "Failed"]


class ScenarioError(ValueError):
    """samples/demo/scenario.yaml is invalid."""


@dataclass(frozen=True)
class Run:
    """One TrainingRun and its Job."""

    name: str
    phase: Literal["development", "training"]
    gpus: int
    pods: int
    hours: float
    outcome: Outcome
    reason: str = ""
    args: str = ""

    @property
    def gpus_per_pod(self) -> int:
        return self.gpus // self.pods


@dataclass(frozen=True)
class Serving:
    """The InferenceService and its Deployment."""

    name: str
    replicas: int
    gpus_per_replica: int
    hours: float
    peak_requests_per_s: float


@dataclass(frozen=True)
class Scenario:
    namespace: str
    model: str
    model_version: str
    experiment: str
    time_factor: float
    gpu_nodes: int
    sweep: tuple[Run, ...]
    final: Run
    serving: Serving

    def wall_s(self, hours: float) -> float:
        """Wall-clock seconds for ``hours`` simulated hours."""
        return hours * 3600.0 / self.time_factor

    @property
    def runs(self) -> tuple[Run, ...]:
        return (*self.sweep, self.final)

    @property
    def total_wall_s(self) -> float:
        return self.wall_s(max(r.hours for r in self.sweep) + self.final.hours + self.serving.hours)


def default_path() -> Path:
    """samples/demo/scenario.yaml of the source tree (the package is installed editable)."""
    return Path(__file__).resolve().parents[3] / "samples" / "demo" / "scenario.yaml"


def load(path: Path | None = None, *, short: bool = False, time_factor: float | None = None) -> Scenario:
    """Read the scenario; ``short`` keeps the runs not marked ``short: false`` and scales GPUs."""
    path = path or default_path()
    try:
        doc = yaml.safe_load(path.read_text())
        mode = doc["short" if short else "full"]
        scale = float(mode.get("gpusScale", 1.0))
        factor = float(time_factor or mode["timeFactor"])

        def gpus(n: int) -> int:
            return max(1, int(math.floor(n * scale)))

        sweep = tuple(
            Run(name=r["name"], phase="development", gpus=gpus(int(r["gpus"])), pods=1, hours=float(r["hours"]),
                outcome=r.get("outcome", "Succeeded"), reason=r.get("reason", ""), args=r.get("args", ""))
            for r in doc["sweep"]["runs"] if not (short and r.get("short") is False)
        )
        f = doc["final"]
        final_gpus = gpus(int(f["gpus"]))
        pod_gpus = min(int(f.get("podGpus", final_gpus)), final_gpus)
        final = Run(name=f["name"], phase="training", gpus=final_gpus - final_gpus % pod_gpus,
                    pods=max(1, final_gpus // pod_gpus), hours=float(f["hours"]), outcome="Succeeded",
                    args=f.get("args", ""))
        s = doc["inference"]
        serving = Serving(name=s["name"], replicas=int(s["replicas"]), gpus_per_replica=int(s["gpusPerReplica"]),
                          hours=float(s["hours"]), peak_requests_per_s=float(s["peakRequestsPerS"]))
        scenario = Scenario(
            namespace=doc["namespace"], model=doc["model"]["name"], model_version=str(doc["model"].get("version", "")),
            experiment=doc["sweep"]["experiment"], time_factor=factor, gpu_nodes=int(mode["gpuNodes"]),
            sweep=sweep, final=final, serving=serving,
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as e:
        raise ScenarioError(f"{path}: {e!r}") from None
    for run in scenario.runs:
        if run.outcome not in ("Succeeded", "Failed"):
            raise ScenarioError(f"{path}: run {run.name}: outcome must be Succeeded or Failed, got {run.outcome!r}")
        if run.gpus_per_pod > 8:
            raise ScenarioError(f"{path}: run {run.name}: {run.gpus_per_pod} GPUs per pod, a node has 8")
    if not scenario.sweep:
        raise ScenarioError(f"{path}: the sweep has no runs")
    return scenario


# ----------------------------------------------------------------- manifests


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(PART_OF)}}


REAL_NODE_SELECTOR = {"mlfootprint.dev/real-node": "true"}


def real_container(name: str, image: str, script: str, gpus: int) -> dict[str, Any]:
    """A container for the real node: the local image (never pulled) running a shell script,
    small CPU/memory requests, whole GPUs from the node's device plugin."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", script],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi", "nvidia.com/gpu": str(gpus)},
                      "limits": {"memory": "64Mi", "nvidia.com/gpu": str(gpus)}},
    }


def job(sc: Scenario, run: Run, real_image: str | None = None) -> dict[str, Any]:
    """The run's Job; its pods request whole GPUs and carry the simulated load profile.

    With ``real_image`` the pods run on the real node: the container lasts the run's wall time
    and exits as the run ends (1 with the reason as termination message for a failing run);
    otherwise they are kwok pods whose status the demo sets."""
    profile = "failing" if run.outcome == "Failed" else "training"
    labels = {**PART_OF, RUN_LABEL: run.name}
    if real_image is not None:
        end = f"echo {json.dumps(run.reason or 'failed')} > /dev/termination-log; exit 1" if run.outcome == "Failed" else "exit 0"
        script = f"sleep {sc.wall_s(run.hours):.1f}; {end}"
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": run.name, "namespace": sc.namespace, "labels": labels},
            "spec": {
                "backoffLimit": 0, "completions": run.pods, "parallelism": run.pods, "completionMode": "Indexed",
                "template": {
                    "metadata": {"labels": labels, "annotations": {PROFILE_ANNOTATION: profile}},
                    "spec": {
                        "restartPolicy": "Never",
                        "terminationGracePeriodSeconds": 2,
                        "nodeSelector": REAL_NODE_SELECTOR,
                        "containers": [real_container("trainer", real_image, script, run.gpus_per_pod)],
                    },
                },
            },
        }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": run.name, "namespace": sc.namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "completions": run.pods,
            "parallelism": run.pods,
            "completionMode": "Indexed",
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {**KWOK_CUSTOM_STATUS, PROFILE_ANNOTATION: profile},
                },
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"type": "kwok", "nvidia.com/gpu.present": "true"},
                    "containers": [{
                        "name": "trainer",
                        "image": TRAINER_IMAGE,
                        "args": ["train", "--model", sc.model, *run.args.split()],
                        "resources": {
                            "requests": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": str(run.gpus_per_pod)},
                            "limits": {"nvidia.com/gpu": str(run.gpus_per_pod)},
                        },
                    }],
                },
            },
        },
    }


def training_run(sc: Scenario, run: Run) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"name": sc.model, **({"version": sc.model_version} if run.phase == "training" and sc.model_version else {})},
        "workloadRef": {"apiVersion": "batch/v1", "kind": "Job", "name": run.name},
        "selector": {"matchLabels": {"job-name": run.name}},
    }
    if run.phase == "training":
        spec["final"] = True
        spec["budget"] = {"co2eKg": 500, "energyKWh": 1500}
    else:
        spec["experiment"] = sc.experiment
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingRun",
        "metadata": {"name": run.name, "namespace": sc.namespace, "labels": {**PART_OF, "team": "foundation-models"}},
        "spec": spec,
    }


def deployment(sc: Scenario, real_image: str | None = None) -> dict[str, Any]:
    s = sc.serving
    labels = {**PART_OF, "app": s.name}
    if real_image is not None:  # a stand-in server process; its metrics come from the vLLM simulator
        script = "trap 'exit 0' TERM; while :; do sleep 1; done"
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": s.name, "namespace": sc.namespace, "labels": labels},
            "spec": {
                "replicas": s.replicas,
                "selector": {"matchLabels": {"app": s.name}},
                "template": {
                    "metadata": {"labels": labels, "annotations": {PROFILE_ANNOTATION: "inference"}},
                    "spec": {"nodeSelector": REAL_NODE_SELECTOR, "terminationGracePeriodSeconds": 2,
                             "containers": [real_container("vllm", real_image, script, s.gpus_per_replica)]},
                },
            },
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": s.name, "namespace": sc.namespace, "labels": labels},
        "spec": {
            "replicas": s.replicas,
            "selector": {"matchLabels": {"app": s.name}},
            "template": {
                "metadata": {"labels": labels, "annotations": {PROFILE_ANNOTATION: "inference"}},
                "spec": {
                    "nodeSelector": {"type": "kwok", "nvidia.com/gpu.present": "true"},
                    "containers": [{
                        "name": "vllm",
                        "image": VLLM_IMAGE,
                        "args": ["--model", f"example/{sc.model}", "--port", "8000"],
                        "ports": [{"name": "http", "containerPort": 8000}],
                        "resources": {
                            "requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": str(s.gpus_per_replica)},
                            "limits": {"nvidia.com/gpu": str(s.gpus_per_replica)},
                        },
                    }],
                },
            },
        },
    }


def inference_service(sc: Scenario) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": sc.serving.name, "namespace": sc.namespace, "labels": {**PART_OF, "team": "foundation-models"}},
        "spec": {
            "model": {"name": sc.model, **({"version": sc.model_version} if sc.model_version else {})},
            "selector": {"matchLabels": {"app": sc.serving.name}},
            "servingMetrics": {"engine": "vllm", "port": 8000},
            "breakeven": {"includeDevelopment": True},
        },
    }


# ----------------------------------------------------------------- pod status (kwok leaves these pods to us)


def running_status(pod: dict[str, Any], now: str, pod_ip: str) -> dict[str, Any]:
    """Status of a started pod (what kubelet would report), for a merge patch."""
    return {"status": {
        "phase": "Running",
        "hostIP": "10.255.0.1",
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "conditions": _conditions(now, ready=True),
        "containerStatuses": [
            {"name": c["name"], "image": c["image"], "imageID": "", "ready": True, "restartCount": 0,
             "started": True, "state": {"running": {"startedAt": now}}}
            for c in pod["spec"]["containers"]
        ],
    }}


def ended_status(pod: dict[str, Any], now: str, outcome: Outcome, reason: str) -> dict[str, Any]:
    """Status of a pod whose containers exited (0 for Succeeded, 1 for Failed)."""
    started = (pod.get("status") or {}).get("startTime") or now
    failed = outcome == "Failed"
    return {"status": {
        "phase": outcome,
        "conditions": _conditions(now, ready=False),
        **({"message": reason} if failed and reason else {}),
        "containerStatuses": [
            {"name": c["name"], "image": c["image"], "imageID": "", "ready": False, "restartCount": 0,
             "started": False,
             "state": {"terminated": {"exitCode": 1 if failed else 0, "reason": "Error" if failed else "Completed",
                                      **({"message": reason} if failed and reason else {}),
                                      "startedAt": started, "finishedAt": now}}}
            for c in pod["spec"]["containers"]
        ],
    }}


def _conditions(now: str, *, ready: bool) -> list[dict[str, str]]:
    value = "True" if ready else "False"
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": value, "lastTransitionTime": now},
        {"type": "Ready", "status": value, "lastTransitionTime": now},
    ]
