{{/* Name of Redis's objects: <release>-redis, at most 63 characters. */}}
{{- define "redis.fullname" -}}
{{- printf "%s-redis" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "redis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "redis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: cache
app.kubernetes.io/part-of: molstream
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "redis.selectorLabels" -}}
app.kubernetes.io/name: redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Secret holding the password (key auth.existingSecretKey): auth.existingSecret, else the
chart's own, <release>-redis. The umbrella chart's "molstream.redisSecret" is the same rule. */}}
{{- define "redis.secretName" -}}
{{- .Values.auth.existingSecret | default (include "redis.fullname" .) -}}
{{- end -}}

{{- define "redis.image" -}}
{{- $registry := ((.Values.global).imageRegistry) | default "" | trimSuffix "/" -}}
{{- if $registry -}}{{ $registry }}/{{- end -}}{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
