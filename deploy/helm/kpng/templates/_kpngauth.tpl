{{/*
Per-node identity (kpngAuth): kpng-auth answers NATS's auth callout; agents present a
projected service-account token instead of the shared agent password.
*/}}

{{- define "kpng.authName" -}}
{{ include "kpng.fullname" . }}-auth
{{- end }}

{{/* The agents' own service account: kpng-auth grants a node's subjects to its tokens only. */}}
{{- define "kpng.agentServiceAccountName" -}}
{{ include "kpng.fullname" . }}-agent
{{- end }}

{{/* Settings that cannot work together, said before anything is rendered. */}}
{{- define "kpng.authChecks" -}}
{{- if .Values.kpngAuth.enabled }}
{{- if .Values.nats.insecure }}
{{- fail "kpngAuth.enabled needs a secured bus: nats.insecure=false" }}
{{- end }}
{{- if not (and .Values.kpngAuth.issuer .Values.kpngAuth.issuerSecret) }}
{{- fail "kpngAuth: set issuerSecret (a Secret with key seed) and issuer (its public key): kpng-auth --issuer-seed seed --init-issuer prints it (docs/security.md)" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The agent's credentials with kpngAuth: its projected token (and the CA). */}}
{{- define "kpng.agentTokenEnv" -}}
- name: KPNG_NATS_TOKEN_FILE
  value: /var/run/secrets/kpng/token
{{- if eq (include "kpng.natsTlsSource" .) "secret" "cert-manager" }}
- name: KPNG_NATS_TLS_CA
  value: /etc/kpng/nats-tls/ca.crt
{{- end }}
{{- end }}

{{- define "kpng.agentTokenMounts" -}}
- name: kpng-token
  mountPath: /var/run/secrets/kpng
  readOnly: true
{{- if eq (include "kpng.natsTlsSource" .) "secret" "cert-manager" }}
- name: nats-tls
  mountPath: /etc/kpng/nats-tls
  readOnly: true
{{- end }}
{{- end }}

{{/* kubelet writes a token for this pod on this node, audience kpngAuth.audience, and
rotates it before it expires (the agent reconnects with the new one). */}}
{{- define "kpng.agentTokenVolumes" -}}
- name: kpng-token
  projected:
    sources:
      - serviceAccountToken:
          audience: {{ .Values.kpngAuth.audience | quote }}
          expirationSeconds: {{ .Values.kpngAuth.tokenExpirationSeconds }}
          path: token
{{- if eq (include "kpng.natsTlsSource" .) "secret" "cert-manager" }}
- name: nats-tls
  secret:
    secretName: {{ include "kpng.natsTlsSecret" . }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end }}

{{/* nats.conf's accounts and auth callout (kpng_auth.calloutconf renders the same): kpng-auth's
user in AUTH, everyone else through the callout into KPNG. */}}
{{- define "kpng.natsCalloutConf" -}}
accounts {
  AUTH: { users: [ {user: "kpng-auth", password: $KPNG_AUTH_PASSWORD} ] }
  KPNG: {}
}
authorization {
  # seconds a connection waits for kpng-auth's answer (2 by default: too short for a storm)
  timeout: 10
  auth_callout {
    issuer: {{ .Values.kpngAuth.issuer | quote }}
    auth_users: [ "kpng-auth" ]
    account: AUTH
  }
}
{{- end }}
