"""`helm lint` and `helm template` of the chart for the default values and every ci/ scenario,
with the properties platform teams audit: security contexts, read-only host mounts,
least-privilege RBAC, and settings the exporter and operator actually accept."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CHART, CI_VALUES, REPO, find, helm, one, render

pytestmark = pytest.mark.helm

SCENARIOS = [pytest.param((), id="defaults")] + [pytest.param((f,), id=f.stem) for f in CI_VALUES]
MONITORING = ("--api-versions", "monitoring.coreos.com/v1")

# Write verbs are allowed only on these (apiGroup, resource); everything else is read-only.
WRITABLE = {
    ("mlfootprint.io", "trainingruns"),
    ("mlfootprint.io", "inferenceservices"),
    ("mlfootprint.io", "trainingruns/status"),
    ("mlfootprint.io", "inferenceservices/status"),
    ("", "events"),
    ("events.k8s.io", "events"),
}
READ = {"get", "list", "watch"}
NEVER = {"*", "delete", "deletecollection", "escalate", "bind", "impersonate", "update"}
#: leader election: the operator's Role may create a Lease and get/update only its own
LEASES = ("coordination.k8s.io", "leases")


def test_ci_scenarios_present() -> None:
    assert {f.stem for f in CI_VALUES} >= {"nvml-values", "dcgm-values", "simulated-values", "prometheus-mode-values"}


@pytest.mark.parametrize("values", SCENARIOS)
def test_helm_lint_strict(values: tuple[Path, ...]) -> None:
    args = ["lint", str(CHART), "--strict"]
    for f in values:
        args += ["-f", str(f)]
    out = helm(*args).stdout
    assert "0 chart(s) failed" in out


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    (c,) = obj["spec"]["template"]["spec"]["containers"]
    return c


def _assert_restricted(container: dict[str, Any]) -> None:
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc.get("privileged", False) is False
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    res = container["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"], "requests missing"
    assert res["limits"]["cpu"] and res["limits"]["memory"], "limits missing"


def _expand(value: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def _exporter_env(ds: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {"NODE_NAME": "gpu-node-0", "NODE_IP": "10.0.0.7"}
    for item in _container(ds).get("env", []):
        if "value" in item:
            env[item["name"]] = _expand(str(item["value"]), env)
    return env


@pytest.mark.parametrize("values", SCENARIOS)
def test_template_properties(values: tuple[Path, ...]) -> None:
    objs = render(values)
    scenario = yaml.safe_load(values[0].read_text()) if values else {}
    ex_values = scenario.get("exporter", {})

    # Operator: one replica, replaced (not rolled), or with leader election rolled (a new pod
    # stands by until the old one releases the Lease); probed, restricted, non-root.
    dep = one(objs, "Deployment", "-operator")
    op_values = scenario.get("operator", {})
    if op_values.get("leaderElection", {}).get("enabled"):
        assert dep["spec"]["replicas"] == op_values.get("replicas", 1)
        assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
        if dep["spec"]["replicas"] > 1:
            assert one(objs, "PodDisruptionBudget", "-operator")["spec"]["minAvailable"] == 1
    else:
        assert dep["spec"]["replicas"] == 1
        assert dep["spec"]["strategy"] == {"type": "Recreate"}
        assert not find(objs, "PodDisruptionBudget")
    op = _container(dep)
    assert op["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert op["readinessProbe"]["httpGet"]
    _assert_restricted(op)
    assert dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    # no MLFOOTPRINT_OPERATOR_PORT=tcp://... from the operator's own Service in its environment
    assert dep["spec"]["template"]["spec"]["enableServiceLinks"] is False

    # Exporter: GPU nodes only, tolerates the GPU taint, every host path read-only.
    ds = one(objs, "DaemonSet", "-exporter")
    spec = ds["spec"]["template"]["spec"]
    ex = _container(ds)
    _assert_restricted(ex)
    assert any(t.get("key") == "nvidia.com/gpu" for t in spec["tolerations"])
    # node-critical like the GPU Operator's exporters, unless a scenario says otherwise
    assert spec.get("priorityClassName") == ex_values.get("priorityClassName", "system-node-critical")
    assert spec["enableServiceLinks"] is False
    if ex_values.get("gpuNodeAffinity", {}).get("enabled", True):
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        keys = {e["key"] for t in terms for e in t["matchExpressions"]}
        assert "nvidia.com/gpu.present" in keys
    host_volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    mounts = {m["name"]: m for m in ex["volumeMounts"]}
    # The state directory is the one host path written: on the node, one per release, so a
    # replaced pod resumes its counters (issue 16); "" keeps it in an emptyDir.
    (state,) = [v for v in spec["volumes"] if v["name"] == "state"]
    state_base = ex_values.get("state", {}).get("hostPath", "/var/lib/mlfootprint")
    if state_base:
        assert state["hostPath"] == {"path": f"{state_base.rstrip('/')}/mlfootprint.mlf", "type": "DirectoryOrCreate"}
        assert mounts["state"].get("readOnly") is not True
        host_volumes.pop("state")
    else:
        assert "emptyDir" in state
    for name in host_volumes:
        assert mounts[name].get("readOnly") is True, f"hostPath volume {name} mounted read-write"
    gpu_source = ex_values.get("gpuSource", "nvml")
    assert spec["hostPID"] is (gpu_source == "nvml"), "host PID namespace only for NVML's process IDs"
    assert not spec.get("hostNetwork") and not spec.get("hostIPC")
    pod_source = ex_values.get("podSource", "kubelet")
    if pod_source == "kubelet":
        assert host_volumes["pod-resources"] == ex_values.get("kubelet", {}).get(
            "podResourcesDir", "/var/lib/kubelet/pod-resources"
        )
        assert host_volumes["proc"] == "/proc"
    else:
        assert "pod-resources" not in host_volumes
    host_source = ex_values.get("hostSource", "auto")
    types = {v["name"]: v["hostPath"].get("type") for v in spec["volumes"] if "hostPath" in v and v["name"] != "state"}
    if host_source == "auto":  # /sys always exists; a missing powercap dir must not fail the pod
        assert host_volumes["sys"] == "/sys" and "powercap" not in host_volumes
    elif host_source == "rapl":
        assert host_volumes["powercap"] == "/sys/class/powercap" and "sys" not in host_volumes
    # every host path is checked by the kubelet: no `type: ""` that lets the runtime mkdir in /sys
    assert all(t == "Directory" for t in types.values()), types
    if spec["securityContext"].get("runAsUser") == 0:
        assert {"pod-resources", "powercap", "sys"} & set(host_volumes) or state_base, "root without a root-owned host file"

    # The exporter accepts exactly these settings (unknown MLFOOTPRINT_EXPORTER_* fail its start).
    from mlfootprint.exporter.config import load_config

    env = _exporter_env(ds)
    cfg = load_config(env=env)
    assert cfg.gpu_source == gpu_source and cfg.node_name == "gpu-node-0"
    assert cfg.port == ex["ports"][0]["containerPort"]
    if gpu_source == "dcgm":
        assert cfg.dcgm_url == "http://10.0.0.7:9400/metrics"

    # Exporter Service is headless (one endpoint per node for the operator and Prometheus).
    svc = one(objs, "Service", "-exporter")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["ports"][0]["port"] == cfg.port

    # Factors ConfigMap parses with the operator's own parser.
    from mlfootprint.operator.factors_config import parse_factors, resolve_factors

    cm = one(objs, "ConfigMap", "mlfootprint-factors")
    layer = parse_factors(cm["data"], source="mlfootprint/mlfootprint-factors")
    resolved = resolve_factors([layer])
    assert resolved is not None
    factors_values = scenario.get("factors", {})
    if "region" in factors_values:
        assert yaml.safe_load(cm["data"]["factors.yaml"])["region"] == factors_values["region"]

    # Dashboards: ConfigMaps with the Grafana sidecar label, valid JSON.
    boards = [o for o in objs if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"]["labels"]]
    assert len(boards) == 3
    for b in boards:
        assert b["metadata"]["labels"]["grafana_dashboard"] == "1"
        (text,) = b["data"].values()
        assert json.loads(text)["uid"].startswith("mlfootprint-")

    _assert_least_privilege(objs, pod_source, ex_values.get("podMetadata", "kubernetes"))


def _rules(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for o in objs if o["kind"] == kind for r in o.get("rules", [])]


def _assert_least_privilege(objs: list[dict[str, Any]], pod_source: str, pod_metadata: str) -> None:
    for kind in ("ClusterRole", "Role"):
        for rule in _rules(objs, kind):
            verbs = set(rule["verbs"])
            if (tuple(rule["apiGroups"]), tuple(rule["resources"])) == ((LEASES[0],), (LEASES[1],)):
                assert kind == "Role", "leases only in the release namespace"
                assert verbs == {"create"} or (verbs == {"get", "update"} and len(rule.get("resourceNames", [])) == 1), rule
                continue
            assert not verbs & NEVER, f"{kind} grants {verbs & NEVER}: {rule}"
            assert "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
            assert "secrets" not in rule["resources"], f"{kind} grants secrets: {rule}"
            for group in rule["apiGroups"]:
                for res in rule["resources"]:
                    if (group, res) not in WRITABLE:
                        assert verbs <= READ, f"{kind} grants {verbs - READ} on {group}/{res}"
    operator_rules = [r for o in find(objs, "ClusterRole", "-operator") for r in o["rules"]]

    def allowed(group: str, resource: str, verb: str) -> bool:
        return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in operator_rules)

    assert allowed("mlfootprint.io", "trainingruns/status", "patch")
    assert allowed("mlfootprint.io", "inferenceservices", "watch")
    assert allowed("", "configmaps", "get")
    assert allowed("", "events", "create")
    assert allowed("", "pods", "list")
    exporter_roles = find(objs, "ClusterRole", "-exporter")
    needs_pods = pod_source == "kubernetes" or (pod_source == "kubelet" and pod_metadata == "kubernetes")
    assert bool(exporter_roles) is needs_pods
    for role in exporter_roles:
        assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]


def test_operator_arguments_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every flag the Deployment passes is one `mlfootprint operator` defines, and together
    they make a valid OperatorConfig (the operator exits 2 otherwise)."""
    import argparse

    from mlfootprint.operator import cli
    from mlfootprint.operator.config import OperatorConfig

    monkeypatch.setenv("MLFOOTPRINT_OPERATOR_NAMESPACE", "mlfootprint")
    for values in [(), *[(f,) for f in CI_VALUES]]:
        objs = render(values)
        dep = one(objs, "Deployment", "-operator")
        container = _container(dep)
        args = container["args"]
        assert args[0] == "operator"
        parser = argparse.ArgumentParser(exit_on_error=False)
        cli.add_arguments(parser)
        cfg = cli.config_from_args(parser.parse_args(args[1:]))
        assert isinstance(cfg, OperatorConfig)
        assert cfg.exporter_service == one(objs, "Service", "-exporter")["metadata"]["name"]
        assert cfg.exporter_ns == "mlfootprint" and cfg.namespace == "mlfootprint"
        assert cfg.factors_configmap == one(objs, "ConfigMap", "mlfootprint-factors")["metadata"]["name"]
        assert cfg.final_read_delay_s == OperatorConfig.model_fields["final_read_delay_s"].default  # the same default
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert cfg.metrics_port == ports["metrics"]
        assert cfg.liveness_endpoint == f"http://0.0.0.0:{ports['http-health']}/healthz"
        assert container["livenessProbe"]["httpGet"]["port"] == "http-health"
        assert cfg.standalone, "no kopf peering (replicas coordinate through a Lease): kopf must run standalone"
        scenario = yaml.safe_load(values[0].read_text()) if values else {}
        le = scenario.get("operator", {}).get("leaderElection", {})
        assert cfg.leader_election is bool(le.get("enabled"))
        if cfg.leader_election:
            assert cfg.leader_election_lease == dep["metadata"]["name"] and cfg.lease_namespace == "mlfootprint"
            env = {e["name"]: e for e in container["env"]}
            assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_monitoring_objects_follow_the_api() -> None:
    plain = render()
    assert not [o for o in plain if o["apiVersion"].startswith("monitoring.coreos.com/")]
    objs = render((), *MONITORING)
    sms = find(objs, "ServiceMonitor")
    assert {o["metadata"]["name"] for o in sms} == {"mlf-mlfootprint-exporter", "mlf-mlfootprint-operator"}
    exporter_sm = one(objs, "ServiceMonitor", "-exporter")
    endpoint = exporter_sm["spec"]["endpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["honorLabels"] is True
    assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"} in endpoint["relabelings"]
    rule = one(objs, "PrometheusRule")
    alerts = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["spec"] == alerts, "PrometheusRule must carry files/alerts.yaml verbatim"
    pod_mode = render((), *MONITORING, "--set", "podMonitor.enabled=true")
    assert one(pod_mode, "PodMonitor", "-exporter")
    assert not find(pod_mode, "ServiceMonitor", "-exporter")
    off = render((), *MONITORING, "--set", "serviceMonitor.enabled=false", "--set", "prometheusRule.enabled=false")
    assert not [o for o in off if o["apiVersion"].startswith("monitoring.coreos.com/")]


def test_web_config_secures_both_endpoints() -> None:
    """webConfig: the Secret mounted read-only and passed to each component, the exporter's
    probes over HTTPS (to /healthz, which needs no credentials), and the monitors scraping
    with the scheme, tlsConfig and basicAuth of the values."""
    values = CHART / "ci" / "web-config-values.yaml"
    web = yaml.safe_load(values.read_text())
    objs = render((values,), *MONITORING)
    file = "/etc/mlfootprint/web/web-config.yml"
    for component in ("exporter", "operator"):
        pod = one(objs, "DaemonSet" if component == "exporter" else "Deployment", f"-{component}")["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "web-config")
        assert volume["secret"]["secretName"] == web[component]["webConfig"]["secretName"]
        mount = next(m for m in _container({"spec": {"template": {"spec": pod}}})["volumeMounts"] if m["name"] == "web-config")
        assert mount == {"name": "web-config", "mountPath": "/etc/mlfootprint/web", "readOnly": True}
        endpoint = one(objs, "ServiceMonitor", f"-{component}")["spec"]["endpoints"][0]
        assert endpoint["scheme"] == "https"
        assert endpoint["tlsConfig"] == web[component]["webConfig"]["tlsConfig"]
        assert endpoint["basicAuth"] == web[component]["webConfig"]["basicAuth"]
    ds = one(objs, "DaemonSet", "-exporter")
    ex = _container(ds)
    assert _exporter_env(ds)["MLFOOTPRINT_EXPORTER_WEB_CONFIG_FILE"] == file
    for probe in ("livenessProbe", "readinessProbe"):
        assert ex[probe]["httpGet"] == {"path": "/healthz", "port": "metrics", "scheme": "HTTPS"}
    op = _container(one(objs, "Deployment", "-operator"))
    assert f"--web-config-file={file}" in op["args"]
    assert op["livenessProbe"]["httpGet"]["port"] == "http-health"  # kopf's own port stays plain HTTP
    pod_mode = render((values,), *MONITORING, "--set", "podMonitor.enabled=true")
    endpoint = one(pod_mode, "PodMonitor", "-exporter")["spec"]["podMetricsEndpoints"][0]
    assert endpoint["scheme"] == "https" and endpoint["basicAuth"] == web["exporter"]["webConfig"]["basicAuth"]
    plain_tls = render((values,), *MONITORING, "--set", "exporter.webConfig.tls=false")
    assert "scheme" not in one(plain_tls, "ServiceMonitor", "-exporter")["spec"]["endpoints"][0]
    assert "scheme" not in _container(one(plain_tls, "DaemonSet", "-exporter"))["livenessProbe"]["httpGet"]
    # without webConfig: nothing of the above
    objs = render((), *MONITORING)
    ex = _container(one(objs, "DaemonSet", "-exporter"))
    assert "scheme" not in ex["livenessProbe"]["httpGet"] and "MLFOOTPRINT_EXPORTER_WEB_CONFIG_FILE" not in _exporter_env(one(objs, "DaemonSet", "-exporter"))
    assert not any(m["name"] == "web-config" for m in ex["volumeMounts"])
    assert not any(a.startswith("--web-config-file") for a in _container(one(objs, "Deployment", "-operator"))["args"])
    for sm in find(objs, "ServiceMonitor"):
        assert not {"scheme", "tlsConfig", "basicAuth"} & set(sm["spec"]["endpoints"][0])


def test_rules_configmap_carries_the_rules_file() -> None:
    objs = render((CHART / "ci" / "prometheus-mode-values.yaml",))
    cm = one(objs, "ConfigMap", "-alerts")
    assert cm["data"]["alerts.yaml"].strip() == (CHART / "files" / "alerts.yaml").read_text().strip()


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("exporter.gpuSource=cuda", "gpuSource"),
        ("exporter.typo=1", "typo"),
        ("factors.pue=0.8", "pue"),
        ("operator.replicas=2", "replicas"),
        ("operator.replicas=9", "replicas"),
        ("operator.leaderElection.enabled=true,operator.leaderElection.leaseDurationSeconds=5",
         "retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds"),
        ("operator.energySource=prometheus", "url"),
        ("exporter.podSource=kubernetes", "gpuSource=sim"),
        ("exporter.webConfig.secretName=web", "operator.energySource=prometheus"),
        ("exporter.webConfig.basicAuth.username.name=s", "password"),
    ],
)
def test_bad_values_are_rejected(flag: str, message: str) -> None:
    proc = helm("template", "mlf", str(CHART), "--set", flag, check=False)
    assert proc.returncode != 0, f"--set {flag} was accepted"
    assert message in proc.stderr


def test_chart_crds_identical_to_generated() -> None:
    top = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert top and chart == top, "charts/mlfootprint/crds differs from crds/: run `make crds`"
