#!/usr/bin/env bash
# Stand-ins for the third-party images the chart pulls from Docker Hub, which these machines
# cannot reach, built from Debian packages and Maven Central jars and selected by
# k8s/e2e-values.yaml. One Debian root filesystem holds all four (one layer to load into kind):
#   molstream-e2e/kafka:3.9.1    for apache/kafka: Java 17, the broker and tools jars in
#                                /opt/kafka/libs, the /opt/kafka/bin scripts the chart runs
#                                (standins/bin), logs to standard output
#   molstream-e2e/redis:7        for redis: Debian's redis-server and redis-cli
#   molstream-e2e/kafka-ui:standin for kafbat/kafka-ui: a page and the health endpoint the
#                                chart's probes call (standins/kafka-ui.py), nothing more
#   molstream-e2e/postgres:15    not in the chart: a PostgreSQL for tests/e2e/test_production.py
#                                (where CloudNativePG would run one): Debian's postgresql-15,
#                                TLS only, as user 10001 (standins/postgres.sh)
# The chart's own commands, ports, user id (10001) and read-only root filesystem apply as
# they are.
#
# Usage: bash tools/provision/e2e/standins.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
docker=${DOCKER:-/usr/bin/docker}
here=tools/provision/e2e/standins
stamp=$(cat "$0" tools/provision/e2e/debootstrap.sh tools/provision/maven.sh "$here"/pom.xml "$here"/bin/* "$here"/log4j.properties "$here"/tools-log4j.properties "$here"/kafka-ui.py "$here"/postgres.sh |
  sha256sum | cut -c1-12)
if [[ $("$docker" image inspect -f '{{index .Config.Labels "molstream.inputs"}}' \
        molstream-e2e/postgres:15 2>/dev/null) == "$stamp" ]]; then
  echo "standins: up to date"
  exit 0
fi
source tools/provision/e2e/debootstrap.sh
source tools/provision/maven.sh
work=.cache/e2e/standins
rm -rf "$work"
mkdir -p "$work"

echo "standins: Kafka jars from Maven Central"
maven_copy_dependencies "$here/pom.xml" "$PWD/$work/libs" "$work/mvn.log"

echo "standins: debootstrap bookworm with Java 17, Redis, Python and PostgreSQL (a few minutes)"
root=$work/rootfs
debootstrap_bookworm "$root" \
  openjdk-17-jre-headless,redis-server,python3,bash,ca-certificates,postgresql-15 \
  "$work/debootstrap.log"
# PostgreSQL's package made a cluster of its own; the stand-in makes one at first start, as a
# user with a fixed id (initdb wants the id in /etc/passwd).
rm -rf "$root"/var/lib/postgresql/15/main "$root"/etc/postgresql/15/main
echo 'standin:x:10001:10001:stand-in user:/tmp:/usr/sbin/nologin' >>"$root/etc/passwd"
echo 'standin:x:10001:' >>"$root/etc/group"
mkdir -p "$root/opt/kafka/config" "$root/opt/kafka-ui"
cp -r "$work/libs" "$root/opt/kafka/libs"
install -m 0755 "$here"/bin/* -t "$root/opt/kafka/bin" -D
install -m 0644 "$here/log4j.properties" "$here/tools-log4j.properties" "$root/opt/kafka/config/"
install -m 0644 "$here/kafka-ui.py" "$root/opt/kafka-ui/"
install -m 0755 "$here/postgres.sh" "$root/usr/local/bin/postgres-standin"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/{doc,man}
tar -C "$root" -c . | "$docker" import --change 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - molstream-e2e/standins:base >/dev/null
rm -rf "$work"

mkdir -p "$work"
build() {  # build TAG DOCKERFILE-LINES…: a metadata layer on the one root filesystem
  printf '%s\n' "FROM molstream-e2e/standins:base" "LABEL molstream.inputs=$stamp" "${@:2}" \
    >"$work/Dockerfile"
  DOCKER_BUILDKIT=0 "$docker" build -q -t "$1" "$work" >/dev/null
}
build molstream-e2e/kafka:3.9.1 'WORKDIR /opt/kafka'
build molstream-e2e/redis:7 'CMD ["redis-server"]'
build molstream-e2e/kafka-ui:standin 'ENTRYPOINT ["python3", "/opt/kafka-ui/kafka-ui.py"]'
build molstream-e2e/postgres:15 'USER 10001:10001' 'ENTRYPOINT ["/usr/local/bin/postgres-standin"]'
rm -rf "$work"
echo "standins: built molstream-e2e/{kafka:3.9.1,redis:7,kafka-ui:standin,postgres:15}"
