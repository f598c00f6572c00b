#!/usr/bin/env bash
# Installs what the pipeline's tests, `make local` and the benchmarks run on 127.0.0.1:
#   - from Debian: redis-server, PostgreSQL (initdb/postgres), PgBouncer, openssl, Java 17 (and
#     Maven, only while the Kafka jars are still to be fetched);
#   - from Maven Central: Apache Kafka's broker jars (KRaft) into .cache/kafka/<version>/libs,
#     resolved by tools/provision/kafka/pom.xml, Maven's own cache in .cache/m2.
# The FTP server (pyftpdlib) and the Python clients come with the venv's `dev` extra.
#
# Usage: sudo bash tools/provision/services.sh     (idempotent: re-running skips what exists)
# Environment: KAFKA_JARS_ONLY=1 skips apt (for a machine whose packages are already right).
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive
POM=tools/provision/kafka/pom.xml
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")
libs=.cache/kafka/$KAFKA_VERSION/libs

have_pg() {
  command -v initdb >/dev/null && command -v postgres >/dev/null && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v openssl >/dev/null || missing+=(openssl)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
have_pg || missing+=(postgresql)
command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
if [ ! -f "$libs/.complete" ] && ! command -v mvn >/dev/null; then missing+=(maven); fi
if [ ${#missing[@]} -gt 0 ] && [ -z "${KAFKA_JARS_ONLY:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "provision: run as root to install ${missing[*]}" >&2; exit 1; }
  echo "provision: installing ${missing[*]} (apt)"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -f "$libs/.complete" ]; then
  echo "provision: fetching Kafka $KAFKA_VERSION jars from Maven Central"
  mkdir -p .cache
  tmp=$(mktemp -d ".cache/kafka-libs.XXXXXX")
  trap 'rm -rf "$tmp" "$tmp.log"' EXIT
  source tools/provision/maven.sh
  maven_copy_dependencies "$POM" "$PWD/$tmp" "$tmp.log"
  rm -f "$tmp.log"
  [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || { echo "provision: broker jar missing" >&2; exit 1; }
  mkdir -p "$(dirname "$libs")"
  rm -rf "$libs"
  chmod 755 "$tmp"
  mv "$tmp" "$libs"   # appears whole or not at all
  touch "$libs/.complete"
fi

# Debian's package creates the `postgres` user; the test clusters run as it when we are root.
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

pg=$(command -v initdb || ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)
echo "provision: services ready — Kafka $KAFKA_VERSION jars in $libs ($(ls "$libs" | wc -l) files)," \
  "$(redis-server --version | cut -d' ' -f1-3), $("$pg" --version), $(java -version 2>&1 | head -1)"
