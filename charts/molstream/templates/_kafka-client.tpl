{{/*
Kafka client security of molstream's Pods (global.kafka.security), Strimzi's KafkaUsers
(global.kafka.strimzi) and the topic settings the components get.

Every Pod that talks to Kafka gets the same three templates, called with (list $ "component"):
"molstream.kafkaClient.env" (the MOLSTREAM_KAFKA_* variables molstream.kafka_security reads),
"molstream.kafkaClient.volumes" and "molstream.kafkaClient.volumeMounts". Secrets are files,
never environment values: the CA at /etc/molstream/kafka-ca/<key>, the client certificate and
key at /etc/molstream/kafka-user/<certKey|keyKey>, the SASL password at
/etc/molstream/kafka-sasl/<key>; mode 0440, readable through the Pods' fsGroup.
*/}}

{{/* The protocols that use TLS / SASL. */}}
{{- define "molstream.kafkaTls" -}}
{{- if has .Values.global.kafka.security.protocol (list "SSL" "SASL_SSL") -}}true{{- end -}}
{{- end -}}

{{- define "molstream.kafkaSasl" -}}
{{- if has .Values.global.kafka.security.protocol (list "SASL_SSL" "SASL_PLAINTEXT") -}}true{{- end -}}
{{- end -}}

{{/* "true" when the chart creates Strimzi KafkaUsers: each component then has its own. */}}
{{- define "molstream.strimziUsers" -}}
{{- $strimzi := .Values.global.kafka.strimzi -}}
{{- if and $strimzi.enabled $strimzi.users -}}true{{- end -}}
{{- end -}}

{{/* Name of a component's KafkaUser (the Kafka user name, and for tls its certificate's CN);
call with (list $ "component"). Kafka UI's is <release>-kafka-ui-user, which the kafka-ui
subchart computes the same way (<release>-kafka-ui is its login Secret). */}}
{{- define "molstream.strimziUserName" -}}
{{- $top := index . 0 -}}
{{- $component := index . 1 -}}
{{- if eq $component "kafka-ui" -}}
{{- printf "%s-kafka-ui-user" $top.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- include "molstream.componentName" (list $top $component) -}}
{{- end -}}
{{- end -}}

{{/* The Kafka identity of a component as JSON {username, passwordSecret, clientSecret}: with
Strimzi users its own KafkaUser's Secret (named as the user, after Strimzi's secretPrefix),
else <component>.kafkaUser over global.kafka.security's shared user (the keys stay the shared
ones'). The helm test Pod uses the worker's. Components: worker, operator, fetcher, test,
kafka-ui. */}}
{{- define "molstream.kafkaIdentity" -}}
{{- $top := index . 0 -}}
{{- $component := index . 1 -}}
{{- $security := $top.Values.global.kafka.security -}}
{{- if include "molstream.strimziUsers" $top -}}
{{- $user := include "molstream.strimziUserName" (list $top (ternary "worker" $component (eq $component "test"))) -}}
{{- $secret := printf "%s%s" ($top.Values.global.kafka.strimzi.secretPrefix | default "") $user -}}
{{- /* A scram-sha-512 user's Secret has no certificate, a tls user's no password. */ -}}
{{- $mtls := eq $security.protocol "SSL" -}}
{{- dict "username" $user "passwordSecret" (dict "name" (ternary "" $secret $mtls) "key" "password") "clientSecret" (dict "name" (ternary $secret "" $mtls) "certKey" "user.crt" "keyKey" "user.key") | toJson -}}
{{- else -}}
{{- /* The component's own user (<component>.kafkaUser) over the shared one. */ -}}
{{- $own := dict -}}
{{- if has $component (list "worker" "operator" "fetcher" "kafka-ui" "test") -}}
{{- $own = (index $top.Values (ternary "worker" $component (eq $component "test"))).kafkaUser | default dict -}}
{{- end -}}
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

{{- define "molstream.kafkaClient.env" -}}
{{- include "molstream._kafkaClient.env" . | trim -}}
{{- end -}}

{{- define "molstream._kafkaClient.env" -}}
{{- $top := index . 0 -}}
{{- $security := $top.Values.global.kafka.security -}}
{{- $id := include "molstream.kafkaIdentity" . | fromJson -}}
{{- if ne $security.protocol "PLAINTEXT" }}
- name: MOLSTREAM_KAFKA_SECURITY_PROTOCOL
  value: {{ $security.protocol | quote }}
{{- end }}
{{- if include "molstream.kafkaSasl" $top }}
- name: MOLSTREAM_KAFKA_SASL_MECHANISM
  value: {{ $security.sasl.mechanism | quote }}
- name: MOLSTREAM_KAFKA_SASL_USERNAME
  value: {{ $id.username | quote }}
- name: MOLSTREAM_KAFKA_SASL_PASSWORD_FILE
  value: {{ printf "/etc/molstream/kafka-sasl/%s" $id.passwordSecret.key | quote }}
{{- end }}
{{- if include "molstream.kafkaTls" $top }}
{{- with $security.tls.caSecret.name }}
- name: MOLSTREAM_KAFKA_CA_FILE
  value: {{ printf "/etc/molstream/kafka-ca/%s" $security.tls.caSecret.key | quote }}
{{- end }}
{{- if $id.clientSecret.name }}
- name: MOLSTREAM_KAFKA_CERT_FILE
  value: {{ printf "/etc/molstream/kafka-user/%s" $id.clientSecret.certKey | quote }}
- name: MOLSTREAM_KAFKA_KEY_FILE
  value: {{ printf "/etc/molstream/kafka-user/%s" $id.clientSecret.keyKey | quote }}
{{- end }}
- name: MOLSTREAM_KAFKA_CHECK_HOSTNAME
  value: {{ $security.tls.checkHostname | toString | quote }}
{{- end }}
{{- end -}}

{{/* A Secret volume with only the keys named (a CA Secret may hold its private key too:
CloudNativePG's <cluster>-ca, Strimzi's user Secret its user.p12 and password); call with
(list "volume-name" "secret-name" "key"...). */}}
{{- define "molstream.secretFilesVolume" -}}
- name: {{ index . 0 }}
  secret:
    secretName: {{ index . 1 | quote }}
    defaultMode: 0440
    items:
      {{- range $key := slice . 2 }}
      - key: {{ $key | quote }}
        path: {{ $key | quote }}
      {{- end }}
{{- end -}}

{{- define "molstream.kafkaClient.volumes" -}}
{{- include "molstream._kafkaClient.volumes" . | trim -}}
{{- end -}}

{{- define "molstream._kafkaClient.volumes" -}}
{{- $top := index . 0 -}}
{{- $security := $top.Values.global.kafka.security -}}
{{- $id := include "molstream.kafkaIdentity" . | fromJson -}}
{{- if include "molstream.kafkaSasl" $top }}
{{ include "molstream.secretFilesVolume" (list "kafka-sasl" $id.passwordSecret.name $id.passwordSecret.key) }}
{{- end }}
{{- if include "molstream.kafkaTls" $top }}
{{- if $security.tls.caSecret.name }}
{{ include "molstream.secretFilesVolume" (list "kafka-ca" $security.tls.caSecret.name $security.tls.caSecret.key) }}
{{- end }}
{{- if $id.clientSecret.name }}
{{ include "molstream.secretFilesVolume" (list "kafka-user" $id.clientSecret.name $id.clientSecret.certKey $id.clientSecret.keyKey) }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "molstream.kafkaClient.volumeMounts" -}}
{{- include "molstream._kafkaClient.volumeMounts" . | trim -}}
{{- end -}}

{{- define "molstream._kafkaClient.volumeMounts" -}}
{{- $top := index . 0 -}}
{{- $security := $top.Values.global.kafka.security -}}
{{- $id := include "molstream.kafkaIdentity" . | fromJson -}}
{{- if include "molstream.kafkaSasl" $top }}
- name: kafka-sasl
  mountPath: /etc/molstream/kafka-sasl
  readOnly: true
{{- end }}
{{- if include "molstream.kafkaTls" $top }}
{{- if $security.tls.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/molstream/kafka-ca
  readOnly: true
{{- end }}
{{- if $id.clientSecret.name }}
- name: kafka-user
  mountPath: /etc/molstream/kafka-user
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{/* "true" when something else creates the topics: the kafka subchart's Job
(kafka.topics.create) or Strimzi's Topic Operator (KafkaTopics). */}}
{{- define "molstream.topicsCreatedElsewhere" -}}
{{- $strimzi := .Values.global.kafka.strimzi -}}
{{- if or .Values.kafka.topics.create (and $strimzi.enabled $strimzi.topics) -}}true{{- end -}}
{{- end -}}

{{/* Topic settings of the worker and the fetcher: they create missing topics only when
nothing else does, and then as kafka.topics says. */}}
{{- define "molstream.topicsEnv" -}}
{{- include "molstream._topicsEnv" . | trim -}}
{{- end -}}

{{- define "molstream._topicsEnv" -}}
{{- if include "molstream.topicsCreatedElsewhere" . }}
- name: MOLSTREAM_CREATE_TOPICS
  value: "false"
{{- else }}
- name: MOLSTREAM_CREATE_TOPICS
  value: "true"
- name: MOLSTREAM_TOPIC_REPLICATION_FACTOR
  value: {{ .Values.kafka.topics.replicationFactor | quote }}
{{- with .Values.kafka.topics.minInsyncReplicas }}
- name: MOLSTREAM_TOPIC_MIN_INSYNC_REPLICAS
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* PostgreSQL over TLS (database.tls): libpq's PGSSLMODE / PGSSLROOTCERT, the CA as a file. */}}
{{- define "molstream.databaseTlsMode" -}}
{{- .Values.database.tls.mode | default (ternary "verify-full" "" (not (empty .Values.database.tls.caSecret.name))) -}}
{{- end -}}

{{- define "molstream.databaseTls.env" -}}
{{- include "molstream._databaseTls.env" . | trim -}}
{{- end -}}

{{- define "molstream._databaseTls.env" -}}
{{- with include "molstream.databaseTlsMode" . }}
- name: PGSSLMODE
  value: {{ . | quote }}
{{- end }}
{{- with .Values.database.tls.caSecret.name }}
- name: PGSSLROOTCERT
  value: {{ printf "/etc/molstream/db-ca/%s" $.Values.database.tls.caSecret.key | quote }}
{{- end }}
{{- end -}}

{{- define "molstream.databaseTls.volumes" -}}
{{- include "molstream._databaseTls.volumes" . | trim -}}
{{- end -}}

{{- define "molstream._databaseTls.volumes" -}}
{{- with .Values.database.tls.caSecret.name }}
{{ include "molstream.secretFilesVolume" (list "db-ca" . $.Values.database.tls.caSecret.key) }}
{{- end }}
{{- end -}}

{{- define "molstream.databaseTls.volumeMounts" -}}
{{- include "molstream._databaseTls.volumeMounts" . | trim -}}
{{- end -}}

{{- define "molstream._databaseTls.volumeMounts" -}}
{{- if .Values.database.tls.caSecret.name }}
- name: db-ca
  mountPath: /etc/molstream/db-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* The Kafka clients the release runs, space-separated: worker, operator and fetcher (the
operator runs the fetchers), kafka-ui, and "topics" for the kafka subchart's topics Job. */}}
{{- define "molstream.kafkaComponents" -}}
{{- if .Values.worker.enabled }}worker {{ end -}}
{{- if .Values.operator.enabled }}operator fetcher {{ end -}}
{{- if index .Values "kafka-ui" "enabled" }}kafka-ui {{ end -}}
{{- if .Values.kafka.topics.create }}topics{{ end -}}
{{- end -}}

{{/* Checks of the Kafka security, Strimzi, KEDA and database TLS values (called by
"molstream.validate"): one message naming the value. */}}
{{- define "molstream.validateKafkaClient" -}}
{{- $security := .Values.global.kafka.security -}}
{{- $protocol := $security.protocol -}}
{{- $strimzi := .Values.global.kafka.strimzi -}}
{{- $strimziUsers := include "molstream.strimziUsers" . -}}
{{- if not (has $protocol (list "PLAINTEXT" "SSL" "SASL_SSL" "SASL_PLAINTEXT")) -}}
{{- fail (printf "global.kafka.security.protocol=%s is unknown: use PLAINTEXT, SSL, SASL_SSL or SASL_PLAINTEXT." $protocol) -}}
{{- end -}}
{{- $bundled := not .Values.kafka.external.bootstrapServers -}}
{{- $components := include "molstream.kafkaComponents" . | splitList " " | compact -}}
{{- $ownUsers := list "worker" "operator" "fetcher" "kafka-ui" -}}
{{- /* The bundled broker knows one SCRAM user, the shared one (its SSL listener takes any
certificate its CA signed: own mTLS users are fine there). */ -}}
{{- if and $bundled (include "molstream.kafkaSasl" .) -}}
{{- range $component := $ownUsers -}}
{{- $own := (index $.Values $component).kafkaUser | default dict -}}
{{- if or $own.username $own.secretName -}}
{{- fail (printf "%s.kafkaUser is set but the bundled broker (kafka.external.bootstrapServers empty) knows only the shared user global.kafka.security.sasl.username: leave %s.kafkaUser empty, or use a Kafka of your own through kafka.external.bootstrapServers." $component $component) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if include "molstream.kafkaSasl" . -}}
{{- if not (has $security.sasl.mechanism (list "SCRAM-SHA-512" "SCRAM-SHA-256" "PLAIN")) -}}
{{- fail (printf "global.kafka.security.sasl.mechanism=%s is unknown: use SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN." $security.sasl.mechanism) -}}
{{- end -}}
{{- if $strimziUsers -}}
{{- if ne $security.sasl.mechanism "SCRAM-SHA-512" -}}
{{- fail (printf "global.kafka.security.sasl.mechanism=%s: Strimzi's KafkaUsers (global.kafka.strimzi.users) authenticate with SCRAM-SHA-512 only." $security.sasl.mechanism) -}}
{{- end -}}
{{- else -}}
{{- /* A SASL user of its own is a name and the Secret with its password, together: either
alone would pair the component's name with the shared password (mounted in its Pods), or the
shared name with its own password. */ -}}
{{- range $component := $ownUsers -}}
{{- $own := (index $.Values $component).kafkaUser | default dict -}}
{{- if and (or $own.username $own.secretName) (not (and $own.username $own.secretName)) -}}
{{- fail (printf "%s.kafkaUser needs both username and secretName with protocol %s: set %s.kafkaUser.%s too (the user and the Secret with its password), or neither (the shared user)." $component $protocol $component (ternary "username" "secretName" (empty $own.username))) -}}
{{- end -}}
{{- end -}}
{{- /* Every client needs a user: its own (<component>.kafkaUser) or the shared one; the
topics Job (kafka subchart) connects as the shared one. */ -}}
{{- range $component := include "molstream.kafkaComponents" $ | splitList " " | compact -}}
{{- $id := include "molstream.kafkaIdentity" (list $ $component) | fromJson -}}
{{- $who := ternary "the topics Job (kafka.topics.create), which connects as the shared user" (printf "the %s: the shared user, or %s.kafkaUser" $component $component) (eq $component "topics") -}}
{{- if not $id.username -}}
{{- fail (printf "global.kafka.security.protocol=%s needs global.kafka.security.sasl.username for %s (or global.kafka.strimzi.users, which gives each component its own KafkaUser)." $protocol $who) -}}
{{- end -}}
{{- if not $id.passwordSecret.name -}}
{{- fail (printf "global.kafka.security.protocol=%s needs global.kafka.security.sasl.passwordSecret.name for %s: the Secret holding the password (a Strimzi KafkaUser's Secret, key password)." $protocol $who) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- else if or $security.sasl.username $security.sasl.passwordSecret.name -}}
{{- fail (printf "global.kafka.security.sasl is set but protocol %s uses no SASL: set global.kafka.security.protocol=SASL_SSL (or SASL_PLAINTEXT), or leave sasl.username and sasl.passwordSecret.name empty." $protocol) -}}
{{- else -}}
{{- range $component := list "worker" "operator" "fetcher" "kafka-ui" -}}
{{- if ((index $.Values $component).kafkaUser | default dict).username -}}
{{- fail (printf "%s.kafkaUser.username is set but protocol %s uses no SASL: set global.kafka.security.protocol=SASL_SSL (or SASL_PLAINTEXT), or leave it empty (an mTLS user needs only kafkaUser.secretName)." $component $protocol) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not (include "molstream.kafkaTls" .) -}}
{{- if $security.tls.caSecret.name -}}
{{- fail (printf "global.kafka.security.tls.caSecret is set but protocol %s uses no TLS: set global.kafka.security.protocol=SSL or SASL_SSL." $protocol) -}}
{{- end -}}
{{- if $security.tls.clientSecret.name -}}
{{- fail (printf "global.kafka.security.tls.clientSecret (mTLS) needs TLS, not protocol %s: set global.kafka.security.protocol=SSL (or SASL_SSL, which sends the certificate along with the SASL login)." $protocol) -}}
{{- end -}}
{{- end -}}
{{- if and $security.tls.clientSecret.name (or (not $security.tls.clientSecret.certKey) (not $security.tls.clientSecret.keyKey)) -}}
{{- fail "global.kafka.security.tls.clientSecret needs both certKey and keyKey (a Strimzi KafkaUser's Secret: user.crt and user.key)." -}}
{{- end -}}
{{- /* The fetcher runs for any IngestRequest author, on a URL of theirs: once other components
have Kafka users of their own, it is never the one left holding the shared credential. (A
shared user meant for the fetcher alone is set as fetcher.kafkaUser.) */ -}}
{{- if and (ne $protocol "PLAINTEXT") (not $strimziUsers) (has "fetcher" $components) (not (.Values.fetcher.kafkaUser | default dict).secretName) -}}
{{- range $component := list "worker" "operator" "kafka-ui" -}}
{{- if and (has $component $components) ((index $.Values $component).kafkaUser | default dict).secretName -}}
{{- fail (printf "fetcher.kafkaUser is empty while %s.kafkaUser is set: the fetcher Pods, which users' URLs drive, would hold the shared Kafka credential. Set fetcher.kafkaUser to a user of its own with only the fetcher's ACLs (README, \"Kafka security\"), or to the shared one explicitly." $component) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* SSL where Kafka asks for client certificates: the bundled broker's listener with
clientAuth required lets in no client without one; and the topics Job connects with the
shared certificate, which it needs as soon as anyone needs one. */ -}}
{{- if eq $protocol "SSL" -}}
{{- $required := and $bundled (eq (dig "listener" "tls" "clientAuth" "required" .Values.kafka) "required") -}}
{{- if $required -}}
{{- range $component := without $components "topics" -}}
{{- $id := include "molstream.kafkaIdentity" (list $ $component) | fromJson -}}
{{- if not $id.clientSecret.name -}}
{{- fail (printf "kafka.listener.tls.clientAuth=required: the bundled broker's SSL listener lets in only clients with a certificate, and the %s has none: set global.kafka.security.tls.clientSecret.name (shared) or %s.kafkaUser.secretName (signed by the CA in kafka.listener.tls.secretName's ca.crt), or kafka.listener.tls.clientAuth=none." $component $component) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (has "topics" $components) (not $security.tls.clientSecret.name) (not $strimziUsers) -}}
{{- $certs := $required -}}
{{- range $component := $ownUsers -}}
{{- if ((index $.Values $component).kafkaUser | default dict).secretName -}}
{{- $certs = true -}}
{{- end -}}
{{- end -}}
{{- if $certs -}}
{{- fail "kafka.topics.create=true needs global.kafka.security.tls.clientSecret.name: Kafka asks this release's clients for a certificate, and the topics Job connects with the shared one. Set it, or kafka.topics.create=false (the worker and the fetchers then create the topics)." -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $strimzi.enabled -}}
{{- if not $strimzi.clusterName -}}
{{- fail "global.kafka.strimzi.enabled=true needs global.kafka.strimzi.clusterName: the name of the Strimzi Kafka resource (the strimzi.io/cluster label of its KafkaTopics and KafkaUsers)." -}}
{{- end -}}
{{- if not .Values.kafka.external.bootstrapServers -}}
{{- fail (printf "global.kafka.strimzi.enabled=true needs kafka.external.bootstrapServers: the Strimzi cluster's bootstrap address, e.g. %s-kafka-bootstrap:9093 (its TLS listener)." $strimzi.clusterName) -}}
{{- end -}}
{{- if and $strimzi.topics .Values.kafka.topics.create -}}
{{- fail "global.kafka.strimzi.topics=true creates the topics as KafkaTopics: set kafka.topics.create=false, so that the chart's topics Job does not create them too." -}}
{{- end -}}
{{- if and $strimziUsers (not (has $protocol (list "SASL_SSL" "SASL_PLAINTEXT" "SSL"))) -}}
{{- fail "global.kafka.strimzi.users=true needs global.kafka.security.protocol SASL_SSL (KafkaUsers with scram-sha-512) or SSL (KafkaUsers with tls: mTLS): on PLAINTEXT every client is ANONYMOUS and ACLs name nobody." -}}
{{- end -}}
{{- if and $strimziUsers .Values.kafka.topics.create -}}
{{- fail "global.kafka.strimzi.users=true leaves the chart's topics Job (kafka.topics.create) without a Kafka user: set kafka.topics.create=false; the topics then come from KafkaTopics (global.kafka.strimzi.topics) or from the worker and the fetchers." -}}
{{- end -}}
{{- range $component := list "worker" "operator" "fetcher" "kafka-ui" -}}
{{- $own := (index $.Values $component).kafkaUser | default dict -}}
{{- if and $strimziUsers (or $own.username $own.secretName) -}}
{{- fail (printf "global.kafka.strimzi.users=true gives each component its own KafkaUser and Secret: leave %s.kafkaUser empty." $component) -}}
{{- end -}}
{{- end -}}
{{- if and $strimziUsers (or $security.sasl.username $security.sasl.passwordSecret.name $security.tls.clientSecret.name) -}}
{{- fail "global.kafka.strimzi.users=true gives each component its own KafkaUser and Secret: leave global.kafka.security.sasl.username, sasl.passwordSecret.name and tls.clientSecret.name empty." -}}
{{- end -}}
{{- /* Not defaulted: the CA Secret is read in five places of three charts (the clients here,
KEDA, the topics Job, Kafka UI), and a listener with certificates of its own
(brokerCertChainAndKey) needs another CA. */ -}}
{{- if and (include "molstream.kafkaTls" .) (not $security.tls.caSecret.name) -}}
{{- fail (printf "global.kafka.strimzi.enabled=true with protocol %s needs global.kafka.security.tls.caSecret.name: Strimzi's TLS listeners present certificates of its cluster CA, which the system CAs do not hold: set it to %s-cluster-ca-cert (key ca.crt)." $protocol $strimzi.clusterName) -}}
{{- end -}}
{{- end -}}
{{- $keda := .Values.worker.autoscaling.keda -}}
{{- if and $keda.enabled .Values.worker.enabled -}}
{{- if include "molstream.sqlite" . -}}
{{- fail "worker.autoscaling.keda.enabled=true needs PostgreSQL: with SQLite only one worker may write the database. Set database.url (or database.existingSecret), or worker.autoscaling.keda.enabled=false." -}}
{{- end -}}
{{- if gt (int $keda.maxReplicas) (int .Values.kafka.topics.rowsPartitions) -}}
{{- fail (printf "worker.autoscaling.keda.maxReplicas=%d is more than kafka.topics.rowsPartitions=%d: each partition of the rows topic is consumed by one worker at a time. Set kafka.topics.rowsPartitions to at least %d, or fewer maxReplicas." (int $keda.maxReplicas) (int .Values.kafka.topics.rowsPartitions) (int $keda.maxReplicas)) -}}
{{- end -}}
{{- if gt (int $keda.minReplicas) (int $keda.maxReplicas) -}}
{{- fail (printf "worker.autoscaling.keda.minReplicas=%d is more than worker.autoscaling.keda.maxReplicas=%d." (int $keda.minReplicas) (int $keda.maxReplicas)) -}}
{{- end -}}
{{- if and (include "molstream.kafkaTls" .) (not $security.tls.checkHostname) (not $keda.unsafeSsl) -}}
{{- fail "worker.autoscaling.keda.enabled=true needs global.kafka.security.tls.checkHostname=true: KEDA's Kafka scaler cannot skip the host name check alone (set worker.autoscaling.keda.unsafeSsl=true to skip every certificate check)." -}}
{{- end -}}
{{- end -}}
{{- $dbTls := .Values.database.tls -}}
{{- if and (or $dbTls.mode $dbTls.caSecret.name) (include "molstream.sqlite" .) -}}
{{- fail "database.tls is set but the database is SQLite: TLS applies to PostgreSQL (database.url or database.existingSecret)." -}}
{{- end -}}
{{- if and (has $dbTls.mode (list "verify-ca" "verify-full")) (not $dbTls.caSecret.name) -}}
{{- fail (printf "database.tls.mode=%s needs database.tls.caSecret.name: the Secret holding the server's CA certificate (CloudNativePG: <cluster>-ca, key ca.crt)." $dbTls.mode) -}}
{{- end -}}
{{- end -}}
