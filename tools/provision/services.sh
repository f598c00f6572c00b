#!/usr/bin/env bash
# Installs what the pipeline's tests and `make local` run: Redis and PostgreSQL from Debian,
# Apache Kafka's broker jars from Maven Central (run with the machine's Java 17).
# Idempotent: re-running skips what is present. Run as root (CI does).
set -euo pipefail
cd "$(dirname "$0")/../.."
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' tools/provision/kafka/pom.xml)

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v openssl >/dev/null || missing+=(openssl)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "provision: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

libs=.cache/kafka/$KAFKA_VERSION/libs
if [ ! -f "$libs/.complete" ]; then
  echo "provision: fetching Kafka $KAFKA_VERSION jars from Maven Central"
  rm -rf "$libs"
  mvn -q -B -f tools/provision/kafka/pom.xml dependency:copy-dependencies \
    -DoutputDirectory="$PWD/$libs" -DincludeScope=runtime
  touch "$libs/.complete"
fi
echo "provision: services ready (Kafka $KAFKA_VERSION jars in $libs)"
