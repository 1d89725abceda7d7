{{/* The chart's name, or nameOverride. */}}
{{- define "kpng.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release-qualified name every object name starts with. */}}
{{- define "kpng.fullname" -}}
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

{{- define "kpng.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels; each object adds app.kubernetes.io/component. */}}
{{- define "kpng.labels" -}}
helm.sh/chart: {{ include "kpng.chart" . }}
{{ include "kpng.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kpng
{{- end }}

{{/* Selector labels; each selector adds app.kubernetes.io/component. */}}
{{- define "kpng.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kpng.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kpng.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* NATS URL(s) for --nats: the bundled server's Service (a cluster: every server's own
name, comma-separated; clients then reconnect to any of them), or nats.url. */}}
{{- define "kpng.natsUrl" -}}
{{- if .Values.nats.bundled.enabled }}
{{- $scheme := ternary "tls" "nats" (and (not .Values.nats.insecure) .Values.nats.tls.enabled) }}
{{- if .Values.nats.bundled.cluster.enabled }}
{{- $urls := list }}
{{- range $host := include "kpng.natsServerHosts" . | fromYamlArray }}
{{- $urls = append $urls (printf "%s://%s:%v" $scheme $host $.Values.nats.bundled.port) }}
{{- end }}
{{- join "," $urls }}
{{- else }}
{{- printf "%s://%s-nats.%s.svc:%v" $scheme (include "kpng.fullname" .) .Release.Namespace .Values.nats.bundled.port }}
{{- end }}
{{- else }}
{{- required "set nats.url, or nats.bundled.enabled=true" .Values.nats.url }}
{{- end }}
{{- end }}

{{/* The flags every kpng program shares, as container args list items. */}}
{{- define "kpng.busArgs" -}}
- --nats
- {{ include "kpng.natsUrl" . | quote }}
- --prefix
- {{ .Values.prefix | quote }}
- --log-level
- {{ .Values.logLevel | quote }}
- --logging-format
- {{ .Values.logFormat | quote }}
{{- if or .Values.nats.insecure (not .Values.nats.tls.enabled) }}
- --nats-insecure
{{- end }}
{{- end }}

{{- define "kpng.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-watcher" (include "kpng.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kpng.observerTokenSecret" -}}
{{- default (printf "%s-observer-token" (include "kpng.fullname" .)) .Values.observer.token.existingSecret }}
{{- end }}

{{/* Container security context of the unprivileged components (watcher, observer). */}}
{{- define "kpng.restrictedSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* a timeout value as the agent's flag takes it: a Go duration as given, whole seconds
(a number, as --set gives one) as "<n>s" */}}
{{- define "kpng.duration" -}}
{{- if kindIs "string" . -}}
{{- . -}}
{{- else -}}
{{- printf "%ds" (int64 .) -}}
{{- end -}}
{{- end -}}

{{/* kube-proxy's conntrack sysctls as the agent's flags (0: leave the node's value) */}}
{{- define "kpng.conntrackArgs" -}}
- --conntrack-max-per-core
- {{ .Values.agent.conntrack.maxPerCore | quote }}
- --conntrack-min
- {{ .Values.agent.conntrack.min | quote }}
- --conntrack-tcp-timeout-established
- {{ include "kpng.duration" .Values.agent.conntrack.tcpEstablishedTimeout | quote }}
- --conntrack-tcp-timeout-close-wait
- {{ include "kpng.duration" .Values.agent.conntrack.tcpCloseWaitTimeout | quote }}
{{- end -}}
