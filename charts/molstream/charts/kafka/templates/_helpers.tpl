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
{{- $registry := ((.Values.global).imageRegistry) | default "" | trimSuffix "/" -}}
{{- if $registry -}}{{ $registry }}/{{- end -}}{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{/* Prefix of molstream's topics: global.topicPrefix, else <namespace>.<release> (the
umbrella chart's "molstream.topicPrefix" is the same rule). */}}
{{- define "kafka.topicPrefix" -}}
{{- $prefix := ((.Values.global).topicPrefix) | default (printf "%s.%s" .Release.Namespace .Release.Name) -}}
{{- regexReplaceAll "[^a-zA-Z0-9._-]" $prefix "-" | trunc 200 -}}
{{- end -}}

{{/* Pod-level keys shared by the broker and the topics Job: pull secrets and scheduling. */}}
{{- define "kafka.podExtras" -}}
{{- $pullSecrets := concat (((.Values.global).imagePullSecrets) | default list) (.Values.imagePullSecrets | default list) | uniq }}
{{- with $pullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- end -}}
