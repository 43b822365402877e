{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "mlfootprint.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release name alone when it already contains the chart name. */}}
{{- define "mlfootprint.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of one component's objects: <fullname>-<component>. */}}
{{- define "mlfootprint.componentName" -}}
{{- printf "%s-%s" (include "mlfootprint.fullname" .root | trunc 50 | trimSuffix "-") .component }}
{{- end }}

{{- define "mlfootprint.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "mlfootprint.labels" -}}
helm.sh/chart: {{ include "mlfootprint.chart" . }}
app.kubernetes.io/name: {{ include "mlfootprint.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlfootprint
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component (dict "root" $ "component" "exporter"). */}}
{{- define "mlfootprint.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlfootprint.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component's objects. */}}
{{- define "mlfootprint.componentLabels" -}}
{{ include "mlfootprint.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mlfootprint.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "mlfootprint.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "mlfootprint.componentName" (dict "root" . "component" "operator")) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mlfootprint.exporter.serviceAccountName" -}}
{{- if .Values.exporter.serviceAccount.create }}
{{- default (include "mlfootprint.componentName" (dict "root" . "component" "exporter")) .Values.exporter.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.exporter.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when the exporter needs the host PID namespace. */}}
{{- define "mlfootprint.exporter.hostPID" -}}
{{- $v := .Values.exporter.hostPID }}
{{- if eq (toString $v) "auto" }}
{{- ternary "true" "false" (eq .Values.exporter.gpuSource "nvml") }}
{{- else }}
{{- ternary "true" "false" (eq (toString $v) "true") }}
{{- end }}
{{- end }}

{{/* "true" when the Prometheus Operator API is wanted and present: (dict "root" $ "enabled" value). */}}
{{- define "mlfootprint.monitoringEnabled" -}}
{{- $v := toString .enabled }}
{{- if eq $v "true" }}true
{{- else if and (eq $v "auto") (.root.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") }}true
{{- else }}false
{{- end }}
{{- end }}

{{/* The conventional restricted security context of both containers. */}}
{{- define "mlfootprint.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Name of the factors ConfigMap: fixed, the operator looks for it by name. */}}
{{- define "mlfootprint.factorsConfigMap" -}}
mlfootprint-factors
{{- end }}

{{/* Where the exporter's default GPU-node affinity leaves it, from the cluster's nodes (lookup:
live only in install/upgrade; empty in `helm template`). A JSON object: "nodes" (all),
"matching" (nodes the DaemonSet schedules onto), "gpuUnlabelled" (names of nodes that advertise
nvidia.com/gpu but match none of exporter.gpuNodeAffinity.labels: NVIDIA's device plugin without
GPU feature discovery). Only with gpuNodeAffinity enabled and no custom exporter.affinity. */}}
{{- define "mlfootprint.exporter.nodeReport" -}}
{{- $e := .Values.exporter }}
{{- $nodes := list }}
{{- if and $e.gpuNodeAffinity.enabled (not $e.affinity) }}
{{- $nodes = (lookup "v1" "Node" "" "").items | default list }}
{{- end }}
{{- $matching := 0 }}
{{- $unlabelled := list }}
{{- range $n := $nodes }}
{{- $labels := $n.metadata.labels | default dict }}
{{- $selected := true }}
{{- range $k, $v := $e.nodeSelector }}
{{- if ne (toString (get $labels $k)) (toString $v) }}{{ $selected = false }}{{ end }}
{{- end }}
{{- $gpuNode := false }}
{{- range $t := $e.gpuNodeAffinity.labels }}
{{- $has := hasKey $labels $t.key }}
{{- $in := and $has (has (get $labels $t.key) ($t.values | default list)) }}
{{- if or (and (eq $t.operator "Exists") $has) (and (eq $t.operator "In") $in) (and (eq $t.operator "DoesNotExist") (not $has)) (and (eq $t.operator "NotIn") (not $in)) (has $t.operator (list "Gt" "Lt")) }}
{{- $gpuNode = true }}
{{- end }}
{{- end }}
{{- if and $selected $gpuNode }}{{ $matching = add1 $matching }}{{ end }}
{{- $gpus := get ($n.status.allocatable | default dict) "nvidia.com/gpu" | toString }}
{{- if and (not $gpuNode) $gpus (ne $gpus "0") }}{{ $unlabelled = append $unlabelled $n.metadata.name }}{{ end }}
{{- end }}
{{- dict "nodes" (len $nodes) "matching" $matching "gpuUnlabelled" $unlabelled | toJson }}
{{- end }}

{{/* Where a component's webConfig Secret is mounted, and the file the component reads. */}}
{{- define "mlfootprint.webConfigDir" -}}/etc/mlfootprint/web{{- end }}
{{- define "mlfootprint.webConfigFile" -}}{{ include "mlfootprint.webConfigDir" . }}/web-config.yml{{- end }}

{{/* A ServiceMonitor/PodMonitor endpoint's scheme, tlsConfig and basicAuth from a component's
webConfig (.Values.<component>.webConfig); nothing when it has no Secret. */}}
{{- define "mlfootprint.monitorAuth" -}}
{{- if .secretName }}
{{- if .tls }}
scheme: https
{{- end }}
{{- with .tlsConfig }}
tlsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .basicAuth }}
basicAuth:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end }}
