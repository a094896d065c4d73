{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "presence-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. A release named like the chart
("presence-operator") is not repeated ("presence-operator-presence-operator").
*/}}
{{- define "presence-operator.fullname" -}}
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

{{- define "presence-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "presence-operator.labels" -}}
helm.sh/chart: {{ include "presence-operator.chart" . }}
{{ include "presence-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: presencekit
{{- end }}

{{/* Labels that select the operator's pods (immutable once installed). */}}
{{- define "presence-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "presence-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "presence-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "presence-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image: by image.digest when set, else tagged with the chart's appVersion unless image.tag is set. */}}
{{- define "presence-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The default gateway image (--gateway-image): by gatewayImage.digest when set, else tagged with the chart's appVersion unless gatewayImage.tag is set. */}}
{{- define "presence-operator.gatewayImage" -}}
{{- if .Values.gatewayImage.digest }}
{{- printf "%s@%s" .Values.gatewayImage.repository .Values.gatewayImage.digest }}
{{- else }}
{{- printf "%s:%s" .Values.gatewayImage.repository (default .Chart.AppVersion .Values.gatewayImage.tag) }}
{{- end }}
{{- end }}

{{/* Namespace of the sample RedisCluster and PresenceGateway. */}}
{{- define "presence-operator.samplesNamespace" -}}
{{- default .Release.Namespace .Values.samples.namespace }}
{{- end }}
