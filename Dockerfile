# syntax=docker/dockerfile:1
# One image for every molstream role (see charts/molstream):
#   fetcher   molstream fetch --url ...          (the Job the operator creates)
#   worker    molstream worker                   (the Deployment)
#   operator  python -m molstream_operator        (the operator Deployment overrides the command)
#   demo FTP  python -m pyftpdlib ...             (charts/molstream, ftp.enabled)
# Build: docker build -t molstream:dev .   (or `make run` / `skaffold dev`)

# Pinned base (exact Python patch release and Debian release). Pin the digest too in a
# registry-connected build: --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: a virtualenv with molstream and its dependencies (wheels; slim has no compiler) ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_PREFER_BINARY=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/molstream
WORKDIR /src
# Dependencies first, from the lock alone, so that a code change does not re-download them:
# the versions and hashes of uv.lock (the same lock `make venv` and CI install from), exported
# for pip by uv (pinned) and installed with --require-hashes.
ARG UV_VERSION=0.13.9
COPY pyproject.toml uv.lock ./
RUN pip install --no-cache-dir "uv==${UV_VERSION}" \
 && uv export --frozen --no-emit-project --extra postgres --extra operator --extra ftp \
      --format requirements-txt --output-file /tmp/requirements.txt --quiet \
 && /opt/molstream/bin/pip install --no-cache-dir --require-hashes --no-deps \
      -r /tmp/requirements.txt
COPY README.md ./
# Then the code itself, without its dependencies (already there).
COPY services ./services
COPY operator ./operator
COPY tools/molstream_dev ./tools/molstream_dev
RUN /opt/molstream/bin/pip install --no-cache-dir --no-deps . \
 && /opt/molstream/bin/molstream --help >/dev/null \
 && /opt/molstream/bin/python -m molstream_operator --help >/dev/null

# --- base: the same Python image, the virtualenv, no compiler, no build tools -------------------
FROM ${PYTHON_IMAGE} AS base
LABEL org.opencontainers.image.title="molstream" \
      org.opencontainers.image.description="ChEMBL activity CSV ingestion through Kafka: fetcher, worker, operator" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid/gid, so that Kubernetes can check runAsNonRoot; no login shell, no home
# on the image (HOME is /tmp, an emptyDir in the pods, because the root filesystem is read-only).
RUN groupadd --system --gid 10001 molstream \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin molstream \
 && install -d -o 10001 -g 10001 -m 0750 /data /data/reports
COPY --from=build /opt/molstream /opt/molstream
ENV PATH=/opt/molstream/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    VAEX_HOME=/tmp/.vaex \
    MOLSTREAM_DATABASE_URL=sqlite:////data/molstream.db \
    MOLSTREAM_REPORTS_DIR=/data/reports \
    MOLSTREAM_WORK_DIR=/tmp/molstream-work
WORKDIR /data
ENTRYPOINT ["molstream"]
CMD ["--help"]

# --- dev: `skaffold dev` (target dev): the sources under /app, installed in editable mode and
# owned by the app user, so that skaffold's file sync can replace them in running containers
# (the chart's dev values restart the worker and the operator on a change).
FROM base AS dev
COPY --chown=10001:10001 pyproject.toml README.md /app/
COPY --chown=10001:10001 services /app/services
COPY --chown=10001:10001 operator /app/operator
COPY --chown=10001:10001 tools/molstream_dev /app/tools/molstream_dev
RUN pip install --no-cache-dir --no-deps --editable /app
USER 10001:10001

# --- runtime (the default target): what `make run` and production use ------------------------
FROM base AS runtime
USER 10001:10001
