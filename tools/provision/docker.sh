#!/usr/bin/env bash
# A Docker engine for the end-to-end suite (kind), on a test machine like ours:
#   - Debian's docker.io (and debootstrap, which builds the offline base images);
#   - when this machine's capability bounding set lacks CAP_SYS_RESOURCE (these VMs), an OCI
#     runtime wrapper as dockerd's default runtime that drops that capability from each
#     container (tools/provision/e2e/runc-without-sys-resource): without it `--privileged`,
#     which every kind node is, fails with "unable to apply caps: operation not permitted";
#   - dockerd started in the background when no engine answers (these machines have no systemd),
#     with oom-score-adjust 0 (writing a negative oom_score_adj fails here too).
# Test environment only: nothing a user runs depends on it.
#
# Usage: sudo bash tools/provision/docker.sh   (idempotent; prints the engine's version)
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive
[ "$(id -u)" = 0 ] || { echo "provision: run as root" >&2; exit 1; }

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  echo "provision: installing ${missing[*]} (apt)"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# /usr/bin/docker is Debian's client; a newer one earlier on PATH also talks to it.
docker=/usr/bin/docker
if "$docker" info >/dev/null 2>&1; then
  echo "provision: docker engine $("$docker" version --format '{{.Server.Version}}') already answers"
  exit 0
fi

# CAP_SYS_RESOURCE is bit 24 of the bounding set.
bounding=$((16#$(awk '/^CapBnd/ {print $2}' /proc/self/status)))
mkdir -p /etc/docker
if (( (bounding >> 24) & 1 )); then
  echo '{"oom-score-adjust": 0}' > /etc/docker/daemon.json
else
  install -D -m 0755 tools/provision/e2e/runc-without-sys-resource \
    /usr/local/libexec/molstream/runc-without-sys-resource
  cat > /etc/docker/daemon.json <<'JSON'
{
  "oom-score-adjust": 0,
  "runtimes": {"runc-without-sys-resource": {"path": "/usr/local/libexec/molstream/runc-without-sys-resource"}},
  "default-runtime": "runc-without-sys-resource"
}
JSON
  echo "provision: this machine lacks CAP_SYS_RESOURCE: dockerd's default runtime drops it"
fi

mkdir -p .cache/run
nohup dockerd >.cache/run/dockerd.log 2>&1 &
for _ in $(seq 1 120); do
  "$docker" info >/dev/null 2>&1 && break
  sleep 0.5
done
"$docker" info >/dev/null 2>&1 || { tail -30 .cache/run/dockerd.log >&2; exit 1; }
echo "provision: docker engine $("$docker" version --format '{{.Server.Version}}') started" \
  "(log: .cache/run/dockerd.log)"
