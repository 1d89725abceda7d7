{{/*
The bus's security: users, roles, passwords and TLS. nats-server enforces the roles; the
permission lists below are kpng.bus.permissions.role_permissions (a test keeps them equal).
*/}}

{{/* Subject permissions of a role: (dict "prefix" P "role" R) -> {publish: [...], subscribe: [...]} as YAML. */}}
{{- define "kpng.rolePermissions" -}}
{{- $v := printf "%s.v1" .prefix }}
{{- $nodeDeltas := printf "%s.node.*.delta" $v }}
{{- $nodeSnapshots := printf "%s.node.*.snapshot" $v }}
{{- $nodeStatuses := printf "%s.node.*.status" $v }}
{{- $globalDelta := printf "%s.global.delta" $v }}
{{- $globalSnapshot := printf "%s.global.snapshot" $v }}
{{- $casts := printf "%s.cast.*" $v }}
{{- $watcherStatus := printf "%s.watcher.status" $v }}
{{- $inboxes := "_INBOX.>" }}
{{- if eq .role "watcher" }}
publish: [{{ $nodeDeltas | quote }}, {{ $globalDelta | quote }}, {{ $casts | quote }}, {{ $watcherStatus | quote }}, {{ $inboxes | quote }}]
subscribe: [{{ $nodeSnapshots | quote }}, {{ $globalSnapshot | quote }}, {{ $nodeStatuses | quote }}]
{{- else if eq .role "agent" }}
publish: [{{ $nodeStatuses | quote }}, {{ $nodeSnapshots | quote }}]
subscribe: [{{ $nodeDeltas | quote }}, {{ $casts | quote }}, {{ $inboxes | quote }}]
{{- else if eq .role "observer" }}
publish: [{{ $nodeSnapshots | quote }}, {{ $globalSnapshot | quote }}]
subscribe: [{{ $nodeDeltas | quote }}, {{ $nodeStatuses | quote }}, {{ $globalDelta | quote }}, {{ $casts | quote }}, {{ $watcherStatus | quote }}, {{ $inboxes | quote }}]
{{- else }}
{{- fail (printf "unknown kpng role %q" .role) }}
{{- end }}
{{- end }}

{{/* The Secret holding each role's NATS password (keys watcher, agent, observer). */}}
{{- define "kpng.natsAuthSecret" -}}
{{- default (printf "%s-nats-auth" (include "kpng.fullname" .)) .Values.nats.auth.existingSecret }}
{{- end }}

{{/*
How the bus is secured by TLS: "" (off), "secret" (nats.tls.existingSecret), "cert-manager"
(the chart's Certificate; bundled NATS with cert-manager's CRDs installed) or "system"
(an external NATS whose certificate the system CAs trust, with a tls:// URL).
*/}}
{{- define "kpng.natsTlsSource" -}}
{{- if not .Values.nats.tls.enabled }}
{{- else if .Values.nats.tls.existingSecret }}secret
{{- else if and .Values.nats.bundled.enabled (.Capabilities.APIVersions.Has "cert-manager.io/v1") }}cert-manager
{{- else if .Values.nats.bundled.enabled }}
{{- fail "nats.tls: the bundled NATS needs a certificate: install cert-manager (the chart then issues one), or set nats.tls.existingSecret to a Secret with tls.crt, tls.key and ca.crt, or (insecure) nats.tls.enabled=false" }}
{{- else if hasPrefix "tls://" .Values.nats.url }}system
{{- else }}
{{- fail "nats.tls: set nats.tls.existingSecret to a Secret whose ca.crt signs your NATS server's certificate, or use a tls:// nats.url the system CAs trust, or (insecure) nats.tls.enabled=false" }}
{{- end }}
{{- end }}

{{/* The Secret with the NATS server's certificate (tls.crt, tls.key) and its CA (ca.crt). */}}
{{- define "kpng.natsTlsSecret" -}}
{{- default (printf "%s-nats-tls" (include "kpng.fullname" .)) .Values.nats.tls.existingSecret }}
{{- end }}

{{/*
A Secret's value that stays the same across renders: (dict "ctx" $ "secret" NAME "key" KEY
"value" VALUES_PATH). An existing Secret's value is kept (upgrades); on `helm install` against
a cluster (kube-system is there: the release namespace may not exist yet with
--create-namespace) a random one is made once; without a cluster (`helm template`, GitOps)
there is nothing to keep and nothing random is rendered: the operator names VALUES_PATH's
existingSecret instead.
*/}}
{{- define "kpng.stableSecretValue" -}}
{{- $ns := .ctx.Release.Namespace }}
{{- $existing := lookup "v1" "Secret" $ns .secret }}
{{- if and $existing (hasKey ($existing.data | default dict) .key) }}
{{- index $existing.data .key }}
{{- else if lookup "v1" "Namespace" "" "kube-system" }}
{{- randAlphaNum 40 | b64enc }}
{{- else }}
{{- fail (printf "%s: no Secret to keep this value in without a cluster (helm template, GitOps): create one and set %s (see docs/deploy.md, \"Secrets\")" .secret .value) }}
{{- end }}
{{- end }}

{{/* Environment and mounts that give a component its bus credentials: (dict "ctx" $ "role" R). */}}
{{- define "kpng.busEnv" -}}
{{- $ := .ctx }}
{{- if not $.Values.nats.insecure }}
- name: KPNG_NATS_USER
  value: {{ index $.Values.nats.auth.users .role | quote }}
- name: KPNG_NATS_PASSWORD_FILE
  value: /etc/kpng/nats-auth/password
{{- if eq (include "kpng.natsTlsSource" $) "secret" "cert-manager" }}
- name: KPNG_NATS_TLS_CA
  value: /etc/kpng/nats-tls/ca.crt
{{- end }}
{{- end }}
{{- end }}

{{- define "kpng.busVolumeMounts" -}}
{{- if not .Values.nats.insecure }}
- name: nats-auth
  mountPath: /etc/kpng/nats-auth
  readOnly: true
{{- if eq (include "kpng.natsTlsSource" .) "secret" "cert-manager" }}
- name: nats-tls
  mountPath: /etc/kpng/nats-tls
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/* Only the role's own password and the CA (never the server's key). */}}
{{- define "kpng.busVolumes" -}}
{{- $ := .ctx }}
{{- if not $.Values.nats.insecure }}
- name: nats-auth
  secret:
    secretName: {{ include "kpng.natsAuthSecret" $ }}
    # the agent runs as root; the others read it through the pod's fsGroup
    defaultMode: 0440
    items:
      - key: {{ .role }}
        path: password
{{- if eq (include "kpng.natsTlsSource" $) "secret" "cert-manager" }}
- name: nats-tls
  secret:
    secretName: {{ include "kpng.natsTlsSecret" $ }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end }}
{{- end }}

{{/* A list as `"a", "b"` (nats.conf strings; toJson would escape ">"). */}}
{{- define "kpng.quotedList" -}}
{{- range $i, $s := . }}{{ if $i }}, {{ end }}{{ $s | quote }}{{ end }}
{{- end }}

{{/* The bundled NATS cluster's headless Service: each server's stable DNS name is under it. */}}
{{- define "kpng.natsClusterService" -}}
{{- printf "%s-nats-cluster" (include "kpng.fullname" .) }}
{{- end }}

{{/* Each server of the bundled NATS cluster: its DNS name (a YAML list), in order. */}}
{{- define "kpng.natsServerHosts" -}}
{{- $fullname := include "kpng.fullname" . }}
{{- $service := include "kpng.natsClusterService" . }}
{{- range $i := until (int .Values.nats.bundled.cluster.replicas) }}
- {{ printf "%s-nats-%d.%s.%s.svc" $fullname $i $service $.Release.Namespace }}
{{- end }}
{{- end }}

{{/* The routes every server of the cluster is given (itself included: NATS skips it). */}}
{{- define "kpng.natsRoutes" -}}
{{- $routes := list }}
{{- range $host := include "kpng.natsServerHosts" . | fromYamlArray }}
{{- $routes = append $routes (printf "nats-route://%s:%v" $host $.Values.nats.bundled.cluster.routePort) }}
{{- end }}
{{- toYaml $routes }}
{{- end }}
