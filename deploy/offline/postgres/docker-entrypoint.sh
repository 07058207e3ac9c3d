#!/usr/bin/env bash
# What the official postgres image's entrypoint does, for the variables Nightcast uses:
# on an empty PGDATA, initdb with POSTGRES_USER/POSTGRES_PASSWORD (password auth for
# every TCP connection), create POSTGRES_DB, run /docker-entrypoint-initdb.d/*.sh and
# *.sql against a server that listens on its socket only, then start the real server
# listening on every address. Runs the server as the postgres user.
set -euo pipefail

if [[ "${1:-}" != "postgres" ]]; then
  exec "$@"
fi
if [[ "$(id -u)" == "0" ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups bash "$0" "$@"
fi

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export POSTGRES_USER POSTGRES_DB
if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (this image refuses to start a server without one)}"
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 \
    -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" -w start >/dev/null
  export PGUSER="$POSTGRES_USER" PGHOST=/var/run/postgresql
  if [[ "$POSTGRES_DB" != "postgres" ]]; then
    psql -v ON_ERROR_STOP=1 -X -q --dbname postgres -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "docker-entrypoint: running $f"; bash "$f" ;;
      *.sql) echo "docker-entrypoint: running $f"; psql -v ON_ERROR_STOP=1 -X -q --dbname "$POSTGRES_DB" -f "$f" ;;
      *) ;;
    esac
  done
  unset PGUSER PGHOST
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "docker-entrypoint: PostgreSQL init process complete; ready for start up."
fi

exec postgres -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql "${@:2}"
