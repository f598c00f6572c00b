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

{{/* global.kafka.security (the umbrella chart's values), with its defaults when absent. */}}
{{- define "kafka.security" -}}
{{- $s := dig "kafka" "security" dict (.Values.global | default dict) -}}
{{- $sasl := $s.sasl | default dict -}}
{{- $tls := $s.tls | default dict -}}
{{- toJson (dict
  "protocol" ($s.protocol | default "PLAINTEXT")
  "mechanism" ($sasl.mechanism | default "SCRAM-SHA-512")
  "username" ($sasl.username | default "")
  "passwordSecret" (mergeOverwrite (dict "name" "" "key" "password") ($sasl.passwordSecret | default dict))
  "caSecret" (mergeOverwrite (dict "name" "" "key" "ca.crt") ($tls.caSecret | default dict))
  "clientSecret" (mergeOverwrite (dict "name" "" "certKey" "user.crt" "keyKey" "user.key") ($tls.clientSecret | default dict))
  "checkHostname" (ternary true $tls.checkHostname (kindIs "invalid" $tls.checkHostname))
) -}}
{{- end -}}

{{/* The bundled broker's settings checked; fails naming the value. */}}
{{- define "kafka.validate" -}}
{{- $sec := include "kafka.security" . | fromJson -}}
{{- $protocols := list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL" -}}
{{- if not (has $sec.protocol $protocols) -}}
{{- fail (printf "global.kafka.security.protocol=%s: use one of %s" $sec.protocol (join ", " $protocols)) -}}
{{- end -}}
{{- if not .Values.external.bootstrapServers -}}
{{- if and (hasSuffix "SSL" $sec.protocol) (not .Values.listener.tls.secretName) -}}
{{- fail (printf "kafka.listener.tls.secretName is empty: the bundled broker's listener speaks %s (global.kafka.security.protocol) and needs a Secret with its certificate (tls.crt, tls.key)" $sec.protocol) -}}
{{- end -}}
{{- if hasPrefix "SASL_" $sec.protocol -}}
{{- if not (has $sec.mechanism (list "SCRAM-SHA-512" "SCRAM-SHA-256")) -}}
{{- fail (printf "global.kafka.security.sasl.mechanism=%s: the bundled broker offers SCRAM-SHA-512 or SCRAM-SHA-256 only (use kafka.external.bootstrapServers for another)" $sec.mechanism) -}}
{{- end -}}
{{- if or (not $sec.username) (not $sec.passwordSecret.name) -}}
{{- fail "global.kafka.security.sasl.username and .passwordSecret.name must be set for SASL: the bundled broker creates that user's SCRAM credential" -}}
{{- end -}}
{{- end -}}
{{- if gt (int .Values.topics.replicationFactor) 1 -}}
{{- fail (printf "kafka.topics.replicationFactor=%d: the bundled broker is one node (replication factor 1); use a Kafka cluster through kafka.external.bootstrapServers" (int .Values.topics.replicationFactor)) -}}
{{- end -}}
{{- end -}}
{{- with .Values.topics.minInsyncReplicas -}}
{{- if gt (int .) (int $.Values.topics.replicationFactor) -}}
{{- fail (printf "kafka.topics.minInsyncReplicas=%d is more than kafka.topics.replicationFactor=%d: producers waiting for all in-sync replicas could never write" (int .) (int $.Values.topics.replicationFactor)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Shell functions creating molstream's topics as kafka.topics says, through a `topics`
function (kafka-topics.sh with its connection) the caller defines: create_rows, and
create_other NAME for rejected and events. Shared by the topics Job and the broker's own start. */}}
{{- define "kafka.createTopics" -}}
{{- $minIsr := toString .Values.topics.minInsyncReplicas -}}
create_rows() {
  topics --create --if-not-exists --topic "$PREFIX.rows" --partitions {{ int .Values.topics.rowsPartitions }} \
    --replication-factor {{ int .Values.topics.replicationFactor }} \
    --config max.message.bytes={{ int64 .Values.topics.maxMessageBytes }} \
    {{- if $minIsr }}
    --config min.insync.replicas={{ $minIsr }} \
    {{- end }}
    >/dev/null
}
create_other() {
  topics --create --if-not-exists --topic "$PREFIX.$1" --partitions 1 \
    --replication-factor {{ int .Values.topics.replicationFactor }} \
    {{- if $minIsr }}
    --config min.insync.replicas={{ $minIsr }} \
    {{- end }}
    >/dev/null
}
{{- end -}}
