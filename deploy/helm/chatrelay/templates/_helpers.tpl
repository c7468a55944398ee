{{/* Names and labels shared by every object of the release. */}}
{{- define "chatrelay.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "chatrelay.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one role (gateway or worker): pass (list . "gateway"). */}}
{{- define "chatrelay.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "chatrelay.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "chatrelay.secretName" -}}
{{- .Values.existingSecret | default (printf "%s-secrets" (include "chatrelay.fullname" .)) -}}
{{- end -}}

{{/* A drain needs preStop's wait, the drain itself and a margin to exit. */}}
{{- define "chatrelay.terminationGrace" -}}
{{- add .Values.preStopSeconds .Values.drainGraceSeconds 10 -}}
{{- end -}}

{{/* Environment every node shares: settings from the ConfigMap, secrets from the Secret, its name from the pod. */}}
{{- define "chatrelay.commonEnv" -}}
- name: NODE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end -}}

{{/* Probes: ready while /health answers 200 (503 while draining takes the pod out of the Service);
     alive while the event loop answers /metrics (a Redis outage must not restart pods). */}}
{{- define "chatrelay.probes" -}}
readinessProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
livenessProbe:
  httpGet:
    path: /metrics
    port: http
  initialDelaySeconds: 10
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
startupProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: 2
  failureThreshold: 60
{{- end -}}

{{/* preStop: wait until the endpoints controller and the ingress have let go of the pod, then SIGTERM starts the drain. */}}
{{- define "chatrelay.lifecycle" -}}
lifecycle:
  preStop:
    exec:
      command: ["sleep", "{{ .Values.preStopSeconds }}"]
{{- end -}}
