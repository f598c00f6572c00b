{{/* Name of Kafka UI's objects: <release>-kafka-ui, at most 63 characters. */}}
{{- define "kafka-ui.fullname" -}}
{{- printf "%s-kafka-ui" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kafka-ui.bootstrapServers" -}}
{{- .Values.bootstrapServers | default (printf "%s-kafka.%s.svc:9092" .Release.Name .Release.Namespace) -}}
{{- end -}}

{{- define "kafka-ui.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "kafka-ui.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: kafka-ui
app.kubernetes.io/part-of: molstream
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kafka-ui.selectorLabels" -}}
app.kubernetes.io/name: kafka-ui
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kafka-ui.image" -}}
{{- $registry := ((.Values.global).imageRegistry) | default "" | trimSuffix "/" -}}
{{- if $registry -}}{{ $registry }}/{{- end -}}{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{/* Secret of the login (keys username and password): auth.existingSecret, else the chart's. */}}
{{- define "kafka-ui.secretName" -}}
{{- .Values.auth.existingSecret | default (include "kafka-ui.fullname" .) -}}
{{- end -}}
