{{/*
The chart's name, and the release's full name that every resource is named after (at most
63 characters: a DNS label).
*/}}
{{- define "prsm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "prsm.fullname" -}}
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

{{/*
Labels of every resource, and the subset that selects a component's pods. Call the
component ones with (dict "root" $ "component" "api").
*/}}
{{- define "prsm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "prsm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "prsm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "prsm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "prsm.componentLabels" -}}
{{ include "prsm.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "prsm.componentSelectorLabels" -}}
{{ include "prsm.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "prsm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "prsm.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image, by tag (the chart's appVersion unless image.tag is set) and by digest when one is
given.
*/}}
{{- define "prsm.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The Secret the settings that are secrets come from: the user's existingSecret, or the one
the chart makes of the values given in `secrets` (none when no value is given).
*/}}
{{- define "prsm.givenSecrets" -}}
{{- range $key, $value := .Values.secrets }}
{{- if $value }}
{{ $key }}: {{ $value | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}

{{- define "prsm.secretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else if include "prsm.givenSecrets" . }}
{{- include "prsm.fullname" . }}
{{- end }}
{{- end }}

{{- define "prsm.validate" -}}
{{- if and .Values.existingSecret (include "prsm.givenSecrets" .) }}
{{- fail "give either existingSecret or values in secrets, not both" }}
{{- end }}
{{- end }}

{{/*
The environment of every container running the service: its settings that are secrets, by
reference. With an existingSecret every key is expected in it but PRSM_API_KEY, which the
embedded engine does without; with the chart's Secret, the keys given. Call with
(dict "root" $ "secretName" NAME).
*/}}
{{- define "prsm.secretEnv" -}}
{{- $root := .root }}
{{- $secretName := .secretName }}
{{- range $key, $value := $root.Values.secrets }}
{{- if or $root.Values.existingSecret $value }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ $key }}
      {{- if eq $key "PRSM_API_KEY" }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The non-secret settings as plain environment variables, for the pods that start before the
release's ConfigMap exists (the migrations hook).
*/}}
{{- define "prsm.configEnv" -}}
{{- range $key, $value := .Values.config }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
Annotations that roll the pods when their configuration changes.
*/}}
{{- define "prsm.configChecksums" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}

{{/*
The pod-level settings every pod of the chart shares.
*/}}
{{- define "prsm.podHardening" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "prsm.tmpVolume" -}}
- name: tmp
  emptyDir:
    {{- with .Values.tmpVolume.medium }}
    medium: {{ . }}
    {{- end }}
    {{- with .Values.tmpVolume.sizeLimit }}
    sizeLimit: {{ . }}
    {{- end }}
{{- end }}

{{/*
Spread a component's pods over nodes where the scheduler can (never a reason not to run).
*/}}
{{- define "prsm.spread" -}}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "prsm.componentSelectorLabels" . | nindent 8 }}
    matchLabelKeys:
      - pod-template-hash
{{- end }}

{{/*
checkov's findings that do not apply, each with its reason, as annotations of the workload
they are about. Call with (dict "root" $ "oneShot" BOOL); a one-shot pod runs one command and
exits, so no probe has anything to watch.
*/}}
{{- define "prsm.checkovSkips" -}}
{{- $root := .root }}
{{- if not $root.Values.image.digest }}
checkov.io/skip1: "CKV_K8S_43=pinned by tag; set image.digest to pin the image by digest as well"
{{- end }}
{{- if include "prsm.secretName" $root }}
checkov.io/skip2: "CKV_K8S_35=the service reads every setting from its environment; secrets come by reference from a Secret"
{{- end }}
{{- if .oneShot }}
checkov.io/skip3: "CKV_K8S_8=a one-shot pod: it runs one command and exits"
checkov.io/skip4: "CKV_K8S_9=a one-shot pod: it runs one command and exits"
{{- end }}
{{- end }}
