#!/usr/bin/env bash
# End-to-end check of the Helm chart on a throwaway kind cluster, FOR USERS' OWN CI.
# It is NOT run by this repository's tests (no container runtime on the development machines;
# tests/chart/ installs the chart into a real etcd + kube-apiserver instead).
#
# Needs: docker, kind, kubectl, helm, and the image (built from the repository's Dockerfile):
#   IMAGE=ghcr.io/mlfootprint/mlfootprint:0.1.0 hack/kind-e2e.sh
# Steps: create a kind cluster, load the image, install the chart with simulated GPUs,
# create a TrainingRun whose pods run on the simulated GPUs, wait until its status shows
# energy, delete the cluster (KEEP=1 keeps it).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLUSTER="${CLUSTER:-mlfootprint-e2e}"
IMAGE="${IMAGE:-ghcr.io/mlfootprint/mlfootprint:$(awk '/^appVersion:/ {gsub(/"/, "", $2); print $2}' "$ROOT/charts/mlfootprint/Chart.yaml")}"
NS=mlfootprint
log() { echo "[kind-e2e] $*" >&2; }
for tool in docker kind kubectl helm; do command -v "$tool" >/dev/null || { log "missing $tool"; exit 1; }; done

cleanup() { if [[ "${KEEP:-0}" != 1 ]]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

log "creating kind cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --wait 120s
kind load docker-image "$IMAGE" --name "$CLUSTER"
repo="${IMAGE%:*}"; tag="${IMAGE##*:}"

log "installing the chart (simulated GPUs)"
helm install mlfootprint "$ROOT/charts/mlfootprint" --namespace "$NS" --create-namespace \
  -f "$ROOT/charts/mlfootprint/ci/simulated-values.yaml" \
  --set image.repository="$repo" --set image.tag="$tag" --set image.pullPolicy=Never \
  --wait --timeout 5m

log "advertising 8 simulated GPUs on the kind node (extended resource nvidia.com/gpu)"
node="$(kubectl get nodes -o jsonpath='{.items[0].metadata.name}')"
kubectl patch node "$node" --subresource=status --type=json \
  -p '[{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": "8"}]'

log "creating a training workload and its TrainingRun"
kubectl create namespace e2e
kubectl -n e2e apply -f - <<'YAML'
apiVersion: batch/v1
kind: Job
metadata: {name: train}
spec:
  template:
    metadata:
      labels: {app: train}
      annotations: {mlfootprint.io/sim-profile: training}
    spec:
      restartPolicy: Never
      containers:
        - name: trainer
          image: busybox:1.36
          command: ["sleep", "600"]
          resources:
            limits: {nvidia.com/gpu: 1}
YAML
kubectl -n e2e apply -f - <<'YAML'
apiVersion: mlfootprint.io/v1alpha1
kind: TrainingRun
metadata: {name: train}
spec:
  model: {name: e2e-model}
  phase: training
  selector: {matchLabels: {app: train}}
YAML

log "waiting for energy in the TrainingRun's status"
for _ in $(seq 1 60); do
  kwh="$(kubectl -n e2e get trainingrun train -o jsonpath='{.status.energy.facilityKWh}' 2>/dev/null || true)"
  if [[ -n "$kwh" && "$kwh" != "0" ]]; then
    log "ok: facility energy ${kwh} kWh"
    kubectl -n e2e get trainingrun train -o wide
    exit 0
  fi
  sleep 5
done
log "no energy after 5 minutes"
kubectl -n "$NS" logs deploy/mlfootprint-operator --tail=50 || true
exit 1
