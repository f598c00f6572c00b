#!/bin/bash
# Stand-in for Kafka's bin/kafka-run-class.sh: the class on the jars of /opt/kafka/libs, with
# KAFKA_HEAP_OPTS and the log4j configuration of /opt/kafka/config (the tools' unless
# KAFKA_LOG4J_OPTS names another, as kafka-server-start.sh does), logs to LOG_DIR.
set -e
main=$1
shift
mkdir -p "${LOG_DIR:=/tmp/kafka-logs}"
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} -XX:+UseG1GC -Djava.awt.headless=true \
  -Dkafka.logs.dir="$LOG_DIR" \
  ${KAFKA_LOG4J_OPTS:--Dlog4j.configuration=file:/opt/kafka/config/tools-log4j.properties} \
  -cp '/opt/kafka/libs/*' "$main" "$@"
