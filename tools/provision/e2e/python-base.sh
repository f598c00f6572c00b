#!/usr/bin/env bash
# A stand-in for the Dockerfile's Python base (python:3.11-slim-bookworm, from Docker Hub,
# which these machines cannot reach): Debian bookworm's own Python 3.11 with venv and pip,
# from debootstrap, imported as IMAGE. The molstream image is then built from the real
# Dockerfile with --build-arg PYTHON_IMAGE=IMAGE. pip may install into the system Python, as
# in the official image (PIP_BREAK_SYSTEM_PACKAGES: Debian marks its Python externally
# managed), so the Dockerfile's `pip install uv` works unchanged.
#
# Usage: bash tools/provision/e2e/python-base.sh IMAGE
set -euo pipefail
cd "$(dirname "$0")/../../.."
image=$1
docker=${DOCKER:-/usr/bin/docker}
if "$docker" image inspect "$image" >/dev/null 2>&1; then
  echo "python-base: $image already built"
  exit 0
fi
source tools/provision/e2e/debootstrap.sh
work=.cache/e2e/python-base
rm -rf "$work"
mkdir -p "$work"
debootstrap_bookworm "$work/rootfs" python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
  "$work/debootstrap.log"
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
# The machine's own CA bundle: builds from this base reach the package registries the way the
# machine does (through whatever TLS its network presents). A test-machine image only.
cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
tar -C "$work/rootfs" -c . | "$docker" import \
  --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1 LANG=C.UTF-8' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' \
  - "$image" >/dev/null
rm -rf "$work"
echo "python-base: $image built"
