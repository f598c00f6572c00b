{{/* Chart name. */}}
{{- define "molstream.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Base name of the objects, at most 63 characters (the `helm create` rule). */}}
{{- define "molstream.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of a component's objects: <fullname>-<component>, at most 63 characters. */}}
{{- define "molstream.componentName" -}}
{{- $top := index . 0 -}}
{{- printf "%s-%s" (include "molstream.fullname" $top) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "molstream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Common labels; call with (list $ "component"). */}}
{{- define "molstream.labels" -}}
{{- $top := index . 0 -}}
helm.sh/chart: {{ include "molstream.chart" $top }}
{{ include "molstream.selectorLabels" . }}
app.kubernetes.io/version: {{ $top.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: molstream
app.kubernetes.io/managed-by: {{ $top.Release.Service }}
{{- end -}}

{{/* Selector labels; call with (list $ "component"). */}}
{{- define "molstream.selectorLabels" -}}
{{- $top := index . 0 -}}
app.kubernetes.io/name: {{ include "molstream.name" $top }}
app.kubernetes.io/instance: {{ $top.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* The molstream image: repository:tag, or repository@digest when a digest is given. */}}
{{- define "molstream.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Kafka bootstrap servers: the external cluster, else the kafka subchart's broker. */}}
{{- define "molstream.kafkaBootstrap" -}}
{{- if .Values.kafka.external.bootstrapServers -}}
{{- .Values.kafka.external.bootstrapServers -}}
{{- else -}}
{{- printf "%s-kafka.%s.svc:%v" .Release.Name .Release.Namespace .Values.kafka.service.port -}}
{{- end -}}
{{- end -}}

{{/* Redis URL of the worker: the redis subchart, else worker.redisUrl (may be empty). */}}
{{- define "molstream.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s-redis.%s.svc:%v/0" .Release.Name .Release.Namespace .Values.redis.service.port -}}
{{- else -}}
{{- .Values.worker.redisUrl -}}
{{- end -}}
{{- end -}}

{{/* "true" when the database is SQLite (no URL, or a sqlite: URL, and no existing Secret). */}}
{{- define "molstream.sqlite" -}}
{{- if and (not .Values.database.existingSecret) (or (not .Values.database.url) (hasPrefix "sqlite" .Values.database.url)) -}}
true
{{- end -}}
{{- end -}}

{{/* Secret holding a non-SQLite database URL: the user's existing one, or the chart's. */}}
{{- define "molstream.databaseSecret" -}}
{{- .Values.database.existingSecret | default (include "molstream.componentName" (list . "database")) -}}
{{- end -}}

{{/* Checks across values that the schema cannot express; fails the render with a clear message. */}}
{{- define "molstream.validate" -}}
{{- if include "molstream.sqlite" . -}}
{{- if gt (int .Values.worker.replicas) 1 -}}
{{- fail (printf "worker.replicas=%d needs PostgreSQL: with SQLite (database.url empty or sqlite://) only one worker may write the database. Set database.url to a postgresql+psycopg:// URL (or database.existingSecret), or worker.replicas=1." (int .Values.worker.replicas)) -}}
{{- end -}}
{{- if and .Values.worker.enabled (not .Values.worker.persistence.enabled) -}}
{{- fail "worker.persistence.enabled=false would lose the SQLite database at every restart: keep it true, or use PostgreSQL (database.url)." -}}
{{- end -}}
{{- end -}}
{{- if and (not (include "molstream.sqlite" .)) .Values.worker.enabled (gt (int .Values.worker.replicas) (int .Values.kafka.topics.rowsPartitions)) -}}
{{- fail (printf "worker.replicas=%d is more than kafka.topics.rowsPartitions=%d: each partition of the rows topic is consumed by one worker at a time, so the other replicas would sit idle. Set kafka.topics.rowsPartitions to at least %d (on a new topic: an existing one keeps its partitions), or fewer replicas." (int .Values.worker.replicas) (int .Values.kafka.topics.rowsPartitions) (int .Values.worker.replicas)) -}}
{{- end -}}
{{- $ui := index .Values "kafka-ui" -}}
{{- if and .Values.kafka.external.bootstrapServers $ui.enabled (not $ui.bootstrapServers) -}}
{{- fail "kafka.external.bootstrapServers is set: set kafka-ui.bootstrapServers to the same servers (or kafka-ui.enabled=false), so that Kafka UI shows the cluster molstream uses." -}}
{{- end -}}
{{- $metrics := .Values.metrics -}}
{{- if not $metrics.enabled -}}
{{- range $monitor := list "serviceMonitor" "podMonitor" -}}
{{- if (index $metrics $monitor).enabled -}}
{{- fail (printf "metrics.%s.enabled=true needs metrics.enabled=true: without it no molstream Pod serves /metrics." $monitor) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $metrics.enabled .Values.operator.enabled (eq (int $metrics.port) (int .Values.operator.healthPort)) -}}
{{- fail (printf "metrics.port=%d is operator.healthPort too: the operator serves /metrics and its health endpoint on different ports." (int $metrics.port)) -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by the worker and the fetcher. */}}
{{- define "molstream.commonEnv" -}}
- name: MOLSTREAM_KAFKA_BOOTSTRAP
  value: {{ include "molstream.kafkaBootstrap" . | quote }}
- name: MOLSTREAM_TOPIC_PREFIX
  value: {{ .Values.global.topicPrefix | quote }}
- name: MOLSTREAM_MODE
  value: {{ .Values.config.mode | quote }}
- name: MOLSTREAM_BATCH_SIZE
  value: {{ .Values.config.batchSize | quote }}
- name: MOLSTREAM_ROWS_PARTITIONS
  value: {{ .Values.kafka.topics.rowsPartitions | quote }}
{{- end -}}
