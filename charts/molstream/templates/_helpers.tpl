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

{{/* Name of a cluster-scoped object: <fullname>-<namespace>-<component>, so that the same
release name installs in two namespaces. */}}
{{- define "molstream.clusterName" -}}
{{- $top := index . 0 -}}
{{- printf "%s-%s-%s" (include "molstream.fullname" $top) $top.Release.Namespace (index . 1) | trunc 253 | trimSuffix "-" -}}
{{- end -}}

{{/* An image reference with global.imageRegistry in front (when set); call with
(list $ "repository" "tag" "digest"). */}}
{{- define "molstream.imageRef" -}}
{{- $top := index . 0 -}}
{{- $repository := index . 1 -}}
{{- $registry := (($top.Values.global).imageRegistry) | default "" | trimSuffix "/" -}}
{{- if $registry -}}
{{- $repository = printf "%s/%s" $registry $repository -}}
{{- end -}}
{{- if index . 3 -}}
{{- printf "%s@%s" $repository (index . 3) -}}
{{- else -}}
{{- printf "%s:%s" $repository (index . 2) -}}
{{- end -}}
{{- end -}}

{{/* The molstream image: repository:tag, or repository@digest when a digest is given. */}}
{{- define "molstream.image" -}}
{{- include "molstream.imageRef" (list . .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) .Values.image.digest) -}}
{{- end -}}

{{/* imagePullSecrets of a Pod: global.imagePullSecrets, then imagePullSecrets, then the
component's own; call with (list $ component-values). Renders the whole key, or nothing. */}}
{{- define "molstream.imagePullSecrets" -}}
{{- $top := index . 0 -}}
{{- $secrets := concat (($top.Values.global).imagePullSecrets | default list) ($top.Values.imagePullSecrets | default list) ((index . 1).imagePullSecrets | default list) | uniq -}}
{{- with $secrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* Scheduling of a Pod from a component's values: nodeSelector, tolerations, affinity,
priorityClassName. Renders the keys that are set. */}}
{{- define "molstream.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Prefix of the Kafka topics: global.topicPrefix, else <namespace>.<release> (one release's
topics never meet another's on a shared Kafka). The kafka subchart's "kafka.topicPrefix" is the
same rule. */}}
{{- define "molstream.topicPrefix" -}}
{{- $prefix := .Values.global.topicPrefix | default (printf "%s.%s" .Release.Namespace .Release.Name) -}}
{{- regexReplaceAll "[^a-zA-Z0-9._-]" $prefix "-" | trunc 200 -}}
{{- end -}}

{{/* Kafka consumer group of the worker: worker.consumerGroup, else <prefix>-worker. */}}
{{- define "molstream.workerGroup" -}}
{{- .Values.worker.consumerGroup | default (printf "%s-worker" (include "molstream.topicPrefix" .)) -}}
{{- end -}}

{{/* Kafka consumer group of the operator: operator.consumerGroup, else <prefix>-operator. */}}
{{- define "molstream.operatorGroup" -}}
{{- .Values.operator.consumerGroup | default (printf "%s-operator" (include "molstream.topicPrefix" .)) -}}
{{- end -}}

{{/* Kafka bootstrap servers: the external cluster, else the kafka subchart's broker. */}}
{{- define "molstream.kafkaBootstrap" -}}
{{- if .Values.kafka.external.bootstrapServers -}}
{{- .Values.kafka.external.bootstrapServers -}}
{{- else -}}
{{- printf "%s-kafka.%s.svc:%v" .Release.Name .Release.Namespace .Values.kafka.service.port -}}
{{- end -}}
{{- end -}}

{{/* Redis URL of the worker: the redis subchart (its password from the REDIS_PASSWORD
variable, which "molstream.redisPasswordEnv" defines before it), else worker.redisUrl (may be
empty). */}}
{{- define "molstream.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://:$(REDIS_PASSWORD)@%s-redis.%s.svc:%v/0" .Release.Name .Release.Namespace .Values.redis.service.port -}}
{{- else -}}
{{- .Values.worker.redisUrl -}}
{{- end -}}
{{- end -}}

{{/* Secret holding the bundled Redis's password (key "password"); the redis subchart's
"redis.secretName" is the same rule. */}}
{{- define "molstream.redisSecret" -}}
{{- .Values.redis.auth.existingSecret | default (printf "%s-redis" .Release.Name | trunc 63 | trimSuffix "-") -}}
{{- end -}}

{{/* REDIS_PASSWORD from the bundled Redis's Secret (nothing without the bundled Redis). */}}
{{- define "molstream.redisPasswordEnv" -}}
{{- if .Values.redis.enabled -}}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "molstream.redisSecret" . }}
      key: {{ .Values.redis.auth.existingSecretKey | default "password" }}
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
{{- if and $metrics.enabled .Values.worker.enabled (eq (int $metrics.port) (int .Values.worker.healthPort)) -}}
{{- fail (printf "metrics.port=%d is worker.healthPort too: the worker serves /metrics and /healthz on different ports." (int $metrics.port)) -}}
{{- end -}}
{{- include "molstream.validateKafkaClient" . -}}
{{- end -}}

{{/* MOLSTREAM_INTERNAL_HOSTS of the operator: operator.internalHosts, plus the demo FTP
Service's names with ftp.enabled (it resolves to a cluster address the fetcher refuses
otherwise). */}}
{{- define "molstream.internalHosts" -}}
{{- $hosts := .Values.operator.internalHosts | default list -}}
{{- if .Values.ftp.enabled -}}
{{- $ftp := include "molstream.componentName" (list . "ftp") -}}
{{- $ns := .Release.Namespace -}}
{{- $hosts = concat $hosts (list $ftp (printf "%s.%s" $ftp $ns) (printf "%s.%s.svc" $ftp $ns) (printf "%s.%s.svc.cluster.local" $ftp $ns)) -}}
{{- end -}}
{{- $hosts | uniq | join "," -}}
{{- end -}}

{{/* fetcher.maxResources as the operator's MOLSTREAM_FETCHER_MAX_RESOURCES: key=quantity,...
(an empty key: no cap on it). */}}
{{- define "molstream.fetcherMaxResources" -}}
{{- $caps := list -}}
{{- range $key, $value := .Values.fetcher.maxResources | default dict -}}
{{- if not (kindIs "invalid" $value) -}}
{{- $text := toString $value -}}
{{- if $text -}}
{{- $caps = append $caps (printf "%s=%s" $key $text) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $caps | join "," -}}
{{- end -}}

{{/* Environment shared by the worker and the fetcher. */}}
{{- define "molstream.commonEnv" -}}
- name: MOLSTREAM_KAFKA_BOOTSTRAP
  value: {{ include "molstream.kafkaBootstrap" . | quote }}
- name: MOLSTREAM_TOPIC_PREFIX
  value: {{ include "molstream.topicPrefix" . | quote }}
- name: MOLSTREAM_MODE
  value: {{ .Values.config.mode | quote }}
- name: MOLSTREAM_BATCH_SIZE
  value: {{ .Values.config.batchSize | quote }}
- name: MOLSTREAM_ROWS_PARTITIONS
  value: {{ .Values.kafka.topics.rowsPartitions | quote }}
{{- end -}}
