#!/bin/bash
# Stand-in for Kafka's script of the same name.
exec /opt/kafka/bin/kafka-run-class.sh kafka.admin.ConfigCommand "$@"
