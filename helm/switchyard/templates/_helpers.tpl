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
