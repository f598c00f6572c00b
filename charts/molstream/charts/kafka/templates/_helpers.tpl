{{/* Name of the broker's objects: <release>-kafka, at most 63 characters. */}}
{{- define "kafka.fullname" -}}
{{- printf "%s-kafka" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Bootstrap servers clients use: the external cluster, else this broker's Service. */}}
{{- define "kafka.bootstrapServers" -}}
{{- if .Values.external.bootstrapServers -}}
{{- .Values.external.bootstrapServers -}}
{{- else -}}
{{- printf "%s.%s.svc:%v" (include "kafka.fullname" .) .Release.Namespace .Values.service.port -}}
{{- end -}}
{{- end -}}

{{- define "kafka.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "kafka.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: kafka
app.kubernetes.io/part-of: molstream
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kafka.selectorLabels" -}}
app.kubernetes.io/name: kafka
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kafka.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
