#!/bin/bash
# Entrypoint of the PostgreSQL stand-in (molstream-e2e/postgres:15): Debian's PostgreSQL 15 as a
# non-root user on a read-only root filesystem, TLS only. On the first start (an empty
# PGDATA) it creates the cluster and the application's user and database from
#   POSTGRES_USER, POSTGRES_DB            the application's role and database (app, app)
#   POSTGRES_PASSWORD or _PASSWORD_FILE   its password
# and then serves, on every start:
#   TLS_DIR/tls.crt, TLS_DIR/tls.key      the server's certificate and key (a Secret's keys)
# TCP connections must use TLS and a password (hostssl, scram-sha-256); the Unix socket in
# /tmp trusts its local users (`kubectl exec … psql -h /tmp`), as the official image does.
set -euo pipefail
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
: "${PGDATA:=/var/lib/postgresql/data/pgdata}" "${TLS_DIR:=/etc/postgres-tls}"
: "${POSTGRES_USER:=app}" "${POSTGRES_DB:=app}"
if [[ -n ${POSTGRES_PASSWORD_FILE:-} ]]; then
  POSTGRES_PASSWORD=$(<"$POSTGRES_PASSWORD_FILE")
fi
[[ -n ${POSTGRES_PASSWORD:-} ]] || { echo "postgres: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE" >&2; exit 1; }
for f in tls.crt tls.key; do
  [[ -r $TLS_DIR/$f ]] || { echo "postgres: $TLS_DIR/$f is missing (mount the server's TLS Secret there)" >&2; exit 1; }
done
# A mounted Secret's files are group-readable; PostgreSQL refuses a key the group may read.
install -m 0600 "$TLS_DIR/tls.key" /tmp/server.key

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  mkdir -p "$PGDATA" && chmod 0700 "$PGDATA"
  "$bin/initdb" -D "$PGDATA" --username=postgres --auth-local=trust --auth-host=reject \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  cat >"$PGDATA/pg_hba.conf" <<'EOF'
local   all  all                 trust
hostssl all  all  0.0.0.0/0      scram-sha-256
hostssl all  all  ::/0           scram-sha-256
EOF
  "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/tmp" \
    -w start >/dev/null
  # The password as a literal: doubled quotes; psql's variable quoting does the rest.
  "$bin/psql" -h /tmp -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
    -v user="$POSTGRES_USER" -v password="$POSTGRES_PASSWORD" -v db="$POSTGRES_DB" <<'EOF'
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"user";
EOF
  "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres: created role $POSTGRES_USER and database $POSTGRES_DB"
fi

exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp \
  -c ssl=on -c ssl_cert_file="$TLS_DIR/tls.crt" -c ssl_key_file=/tmp/server.key \
  -c password_encryption=scram-sha-256 -c log_destination=stderr
