{{/*
Names and labels shared by every template.
*/}}

{{/* The `job` label on both metric paths: the ServiceMonitor's and OTEL_SERVICE_NAME. Every
alert and dashboard selects job="testboost-api", so it is not a value. */}}
{{- define "testboost.job" -}}
testboost-api
{{- end }}

{{- define "testboost.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's resource names; a DNS label, as a Service's name must be. */}}
{{- define "testboost.fullname" -}}
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

{{- define "testboost.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* What selects this release's API pods: the Deployment, Service, PDB and spread use it. */}}
{{- define "testboost.selectorLabels" -}}
app.kubernetes.io/name: {{ include "testboost.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end }}

{{- define "testboost.labels" -}}
helm.sh/chart: {{ include "testboost.chart" . }}
{{ include "testboost.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: testboost
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels of what is not the API itself (rules, dashboards, configuration). */}}
{{- define "testboost.commonLabels" -}}
helm.sh/chart: {{ include "testboost.chart" . }}
app.kubernetes.io/name: {{ include "testboost.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: testboost
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "testboost.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "testboost.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
A secret setting's secretKeyRef: the chart's own Secret when the value is given, the existing
one otherwise; neither is an error. Arguments: (list $ .Values.apiKey "apiKey").
*/}}
{{- define "testboost.secretRef" -}}
{{- $root := index . 0 }}
{{- $setting := index . 1 }}
{{- $what := index . 2 }}
{{- if $setting.value }}
name: {{ include "testboost.ownSecretName" $root }}
{{- else if $setting.existingSecret }}
name: {{ $setting.existingSecret }}
{{- else }}
{{- fail (printf "%s: set existingSecret (a Secret in the release's namespace) or value" $what) }}
{{- end }}
key: {{ required (printf "%s.secretKey is required" $what) $setting.secretKey }}
{{- end }}

{{/* Whether the chart creates its own Secret: some secret setting is given as a value. */}}
{{/* The chart's own Secret: never the name an existing Secret has by default (`testboost`,
the documented release name), so a value given for one setting and an existing Secret for
another never collide. */}}
{{- define "testboost.ownSecretName" -}}
{{- printf "%s-values" (include "testboost.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "testboost.ownSecret" -}}
{{- if or .Values.apiKey.value .Values.databaseUrl.value (and .Values.metricsToken.enabled .Values.metricsToken.value) }}true{{ end }}
{{- end }}
