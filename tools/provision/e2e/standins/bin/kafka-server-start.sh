#!/bin/bash
# Stand-in for Kafka's script of the same name.
export KAFKA_LOG4J_OPTS=${KAFKA_LOG4J_OPTS:--Dlog4j.configuration=file:/opt/kafka/config/log4j.properties}
exec /opt/kafka/bin/kafka-run-class.sh kafka.Kafka "$@"
