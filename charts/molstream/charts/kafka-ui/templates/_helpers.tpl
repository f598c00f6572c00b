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

{{/* global.kafka.security, or PLAINTEXT when the umbrella chart does not set it. */}}
{{- define "kafka-ui.security" -}}
{{- $default := dict "protocol" "PLAINTEXT" "sasl" (dict "mechanism" "SCRAM-SHA-512" "username" "" "passwordSecret" (dict "name" "" "key" "password")) "tls" (dict "caSecret" (dict "name" "" "key" "ca.crt") "clientSecret" (dict "name" "" "certKey" "user.crt" "keyKey" "user.key") "checkHostname" true) -}}
{{- (((.Values.global).kafka).security) | default $default | toJson -}}
{{- end -}}

{{/* The UI's Kafka identity as JSON {username, passwordSecret, clientSecret}: with the umbrella
chart's Strimzi users (global.kafka.strimzi) its own KafkaUser <release>-kafka-ui-user (the
umbrella chart renders it), else kafkaUser over global.kafka.security's shared user. */}}
{{- define "kafka-ui.kafkaIdentity" -}}
{{- $security := include "kafka-ui.security" . | fromJson -}}
{{- $strimzi := (((.Values.global).kafka).strimzi) | default dict -}}
{{- if and $strimzi.enabled $strimzi.users -}}
{{- /* Not <release>-kafka-ui: that is the login Secret, and Strimzi names a user's Secret as
the user. */ -}}
{{- $user := printf "%s-kafka-ui-user" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- $secret := printf "%s%s" ($strimzi.secretPrefix | default "") $user -}}
{{- $mtls := eq $security.protocol "SSL" -}}
{{- dict "username" $user "passwordSecret" (dict "name" (ternary "" $secret $mtls) "key" "password") "clientSecret" (dict "name" (ternary $secret "" $mtls) "certKey" "user.crt" "keyKey" "user.key") | toJson -}}
{{- else -}}
{{- $own := .Values.kafkaUser | default dict -}}
{{- $mtls := eq $security.protocol "SSL" -}}
{{- $password := $security.sasl.passwordSecret -}}
{{- $client := $security.tls.clientSecret -}}
{{- if $own.secretName -}}
{{- if $mtls -}}
{{- $client = merge (dict "name" $own.secretName) $client -}}
{{- else -}}
{{- $password = merge (dict "name" $own.secretName) $password -}}
{{- end -}}
{{- end -}}
{{- dict "username" ($own.username | default $security.sasl.username) "passwordSecret" $password "clientSecret" $client | toJson -}}
{{- end -}}
{{- end -}}

{{/* Kafka client properties of the cluster (kafbat's KAFKA_CLUSTERS_0_PROPERTIES_*, bound to
the Java client's dotted keys): TLS with a PEM truststore (the CA Secret mounted as a file),
SASL with a JAAS line whose password the kubelet expands from a secretKeyRef variable, mTLS
with the PEM certificate and key as values (a PEM keystore file would need them in one file). */}}
{{- define "kafka-ui.kafkaEnv" -}}
{{- $security := include "kafka-ui.security" . | fromJson -}}
{{- $id := include "kafka-ui.kafkaIdentity" . | fromJson -}}
{{- $protocol := $security.protocol -}}
{{- if ne $protocol "PLAINTEXT" }}
- name: KAFKA_CLUSTERS_0_PROPERTIES_SECURITY_PROTOCOL
  value: {{ $protocol | quote }}
{{- end }}
{{- if has $protocol (list "SASL_SSL" "SASL_PLAINTEXT") }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $id.passwordSecret.name | quote }}
      key: {{ $id.passwordSecret.key | quote }}
- name: KAFKA_CLUSTERS_0_PROPERTIES_SASL_MECHANISM
  value: {{ $security.sasl.mechanism | quote }}
- name: KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG
  value: {{ printf "%s required username=\"%s\" password=\"$(KAFKA_SASL_PASSWORD)\";" (ternary "org.apache.kafka.common.security.plain.PlainLoginModule" "org.apache.kafka.common.security.scram.ScramLoginModule" (eq $security.sasl.mechanism "PLAIN")) $id.username | quote }}
{{- end }}
{{- if has $protocol (list "SSL" "SASL_SSL") }}
{{- if $security.tls.caSecret.name }}
- name: KAFKA_CLUSTERS_0_PROPERTIES_SSL_TRUSTSTORE_TYPE
  value: PEM
- name: KAFKA_CLUSTERS_0_PROPERTIES_SSL_TRUSTSTORE_LOCATION
  value: {{ printf "/etc/kafka-ui/kafka-ca/%s" $security.tls.caSecret.key | quote }}
{{- end }}
{{- if not $security.tls.checkHostname }}
- name: KAFKA_CLUSTERS_0_PROPERTIES_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM
  value: ""
{{- end }}
{{- if $id.clientSecret.name }}
- name: KAFKA_CLUSTERS_0_PROPERTIES_SSL_KEYSTORE_TYPE
  value: PEM
- name: KAFKA_CLUSTERS_0_PROPERTIES_SSL_KEYSTORE_CERTIFICATE_CHAIN
  valueFrom:
    secretKeyRef:
      name: {{ $id.clientSecret.name | quote }}
      key: {{ $id.clientSecret.certKey | quote }}
- name: KAFKA_CLUSTERS_0_PROPERTIES_SSL_KEYSTORE_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $id.clientSecret.name | quote }}
      key: {{ $id.clientSecret.keyKey | quote }}
{{- end }}
{{- end }}
{{- end -}}
