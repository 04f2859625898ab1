{{/* Names and labels shared by every manifest. */}}

{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchyard.fullname" -}}
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

{{- define "switchyard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "switchyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "edge"). */}}
{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchyard.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "switchyard.componentLabels" -}}
{{ include "switchyard.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "switchyard.controlPlane.name" -}}
{{- printf "%s-control-plane" (include "switchyard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchyard.controlPlane.headless" -}}
{{- printf "%s-control-plane-peers" (include "switchyard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The URL agents and edges dial: the client Service in front of every voter. */}}
{{- define "switchyard.controlPlane.url" -}}
{{- printf "http://%s:%d" (include "switchyard.controlPlane.name" .) (int .Values.controlPlane.grpcPort) }}
{{- end }}

{{/* Every voter's own URL, comma-separated, through the headless Service: edges follow one and
move to the next when it fails or loses contact with the leader. */}}
{{- define "switchyard.controlPlane.voterUrls" -}}
{{- $name := include "switchyard.controlPlane.name" . -}}
{{- $peers := include "switchyard.controlPlane.headless" . -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.controlPlane.replicas) -}}
{{- $urls = append $urls (printf "http://%s-%d.%s.%s.svc:%d" $name $i $peers $.Release.Namespace (int $.Values.controlPlane.grpcPort)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end }}

{{- define "switchyard.edge.name" -}}
{{- printf "%s-edge" (include "switchyard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchyard.nodeAgent.name" -}}
{{- printf "%s-node-agent" (include "switchyard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchyard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "switchyard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "switchyard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the join and admin tokens. */}}
{{- define "switchyard.secretName" -}}
{{- default (printf "%s-tokens" (include "switchyard.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/* The Secret whose keys become provider-key environment variables, or "" for none. */}}
{{- define "switchyard.providerKeysSecret" -}}
{{- if .Values.secrets.existingProviderKeysSecret }}
{{- .Values.secrets.existingProviderKeysSecret }}
{{- else if .Values.secrets.providerKeys }}
{{- printf "%s-provider-keys" (include "switchyard.fullname" .) }}
{{- end }}
{{- end }}

{{- define "switchyard.joinTokenEnv" -}}
- name: SWITCHYARD_JOIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "switchyard.secretName" . }}
      key: {{ .Values.secrets.joinTokenKey }}
{{- end }}

{{/* The Secret holding tls.crt, tls.key and ca.crt when tls.enabled: the one cert-manager
issues, or the one given. */}}
{{- define "switchyard.tls.secretName" -}}
{{- if .Values.tls.certManager.issuer }}
{{- printf "%s-tls" (include "switchyard.fullname" .) }}
{{- else if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- fail "tls.enabled needs tls.existingSecret (tls.crt, tls.key, ca.crt) or tls.certManager.issuer" }}
{{- end }}
{{- end }}

{{/* Every name a role is dialled or probed by, for the certificate's SANs: each voter through
the headless Service (short and fully qualified), the voters' client Service, the edge Service,
and localhost for the exec probes. */}}
{{- define "switchyard.tls.dnsNames" -}}
{{- $ns := .Release.Namespace -}}
{{- $domain := .Values.clusterDomain -}}
{{- $name := include "switchyard.controlPlane.name" . -}}
{{- $peers := include "switchyard.controlPlane.headless" . -}}
{{- $edge := include "switchyard.edge.name" . -}}
{{- $names := list "localhost" -}}
{{- range $i := until (int .Values.controlPlane.replicas) -}}
{{- $names = append $names (printf "%s-%d.%s.%s.svc" $name $i $peers $ns) -}}
{{- $names = append $names (printf "%s-%d.%s.%s.svc.%s" $name $i $peers $ns $domain) -}}
{{- end -}}
{{- range $svc := list $name $peers $edge -}}
{{- $names = append $names $svc -}}
{{- $names = append $names (printf "%s.%s.svc" $svc $ns) -}}
{{- $names = append $names (printf "%s.%s.svc.%s" $svc $ns $domain) -}}
{{- end -}}
{{- $names = concat $names .Values.tls.extraDnsNames -}}
{{- toYaml $names -}}
{{- end }}

{{/* Where the TLS Secret is mounted in every pod. */}}
{{- define "switchyard.tls.dir" -}}/etc/switchyard/tls{{- end }}

{{/* Mutual TLS on the gRPC links: the same flags every role takes, as environment. */}}
{{- define "switchyard.tls.env" -}}
{{- if .Values.tls.enabled }}
{{- $dir := include "switchyard.tls.dir" . }}
- name: SWITCHYARD_TLS_CA
  value: {{ printf "%s/ca.crt" $dir }}
- name: SWITCHYARD_TLS_CERT
  value: {{ printf "%s/tls.crt" $dir }}
- name: SWITCHYARD_TLS_KEY
  value: {{ printf "%s/tls.key" $dir }}
{{- end }}
{{- end }}

{{/* HTTPS on a role's HTTP listener (edge /v1, admin API), from the same certificate. */}}
{{- define "switchyard.tls.httpsEnv" -}}
{{- $dir := include "switchyard.tls.dir" . }}
- name: SWITCHYARD_HTTPS_CERT
  value: {{ printf "%s/tls.crt" $dir }}
- name: SWITCHYARD_HTTPS_KEY
  value: {{ printf "%s/tls.key" $dir }}
{{- end }}

{{- define "switchyard.tls.volumeMount" -}}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: {{ include "switchyard.tls.dir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "switchyard.tls.volume" -}}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "switchyard.tls.secretName" . }}
{{- end }}
{{- end }}

{{/* A voter's exec probe under mutual TLS: doctor's quick check of the gRPC health service
on this pod, with the pod's certificate. */}}
{{- define "switchyard.tls.doctorProbe" -}}
{{- $dir := include "switchyard.tls.dir" . -}}
- switchyard
- doctor
- --quick
- --no-edge
- --timeout-ms
- "3000"
- --control-plane
- {{ printf "https://localhost:%d" (int .Values.controlPlane.grpcPort) }}
- --tls-ca
- {{ printf "%s/ca.crt" $dir }}
- --tls-cert
- {{ printf "%s/tls.crt" $dir }}
- --tls-key
- {{ printf "%s/tls.key" $dir }}
{{- end }}
