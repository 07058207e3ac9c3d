#!/usr/bin/env bash
# What the official mariadb image's entrypoint does, for the variables Nightcast uses:
# on an empty datadir, install the system tables, set MARIADB_ROOT_PASSWORD for root
# (local and remote), create MARIADB_DATABASE and MARIADB_USER/MARIADB_PASSWORD with
# every privilege on it, and a `healthcheck` user for healthcheck.sh; then start the
# server on every address, as the mysql user.
set -euo pipefail

if [[ "${1:-}" != "mariadbd" ]]; then
  exec "$@"
fi
datadir=/var/lib/mysql
socket=/run/mysqld/mysqld.sock
mkdir -p /run/mysqld
chown -R mysql:mysql "$datadir" /run/mysqld

if [[ ! -d "$datadir/mysql" ]]; then
  : "${MARIADB_ROOT_PASSWORD:?MARIADB_ROOT_PASSWORD must be set}"
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
    --auth-root-authentication-method=normal >/dev/null
  mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket="$socket" &
  pid=$!
  for _ in $(seq 60); do
    mariadb-admin --socket="$socket" -uroot ping >/dev/null 2>&1 && break
    sleep 1
  done
  health_pw="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  sql_quote() {
    local s="${1//\\/\\\\}"
    printf "'%s'" "${s//\'/\\\'}"
  }
  {
    echo "SET @@SESSION.SQL_LOG_BIN=0;"
    echo "DELETE FROM mysql.global_priv WHERE user='' OR (user='root' AND host NOT IN ('localhost'));"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_quote "$MARIADB_ROOT_PASSWORD");"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY $(sql_quote "$MARIADB_ROOT_PASSWORD");"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    echo "CREATE USER 'healthcheck'@'localhost' IDENTIFIED BY '$health_pw';"
    echo "CREATE USER 'healthcheck'@'127.0.0.1' IDENTIFIED BY '$health_pw';"
    echo "CREATE USER 'healthcheck'@'::1' IDENTIFIED BY '$health_pw';"
    echo "GRANT USAGE ON *.* TO 'healthcheck'@'localhost', 'healthcheck'@'127.0.0.1', 'healthcheck'@'::1';"
    if [[ -n "${MARIADB_DATABASE:-}" ]]; then
      echo "CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"
    fi
    if [[ -n "${MARIADB_USER:-}" ]]; then
      echo "CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY $(sql_quote "${MARIADB_PASSWORD:?MARIADB_PASSWORD must be set with MARIADB_USER}");"
      [[ -n "${MARIADB_DATABASE:-}" ]] && echo "GRANT ALL ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';"
    fi
    echo "FLUSH PRIVILEGES;"
  } | mariadb --socket="$socket" -uroot
  printf '[mariadb-client]\nport=3306\nsocket=%s\nuser=healthcheck\npassword=%s\n' "$socket" "$health_pw" \
    >"$datadir/.my-healthcheck.cnf"
  chown mysql:mysql "$datadir/.my-healthcheck.cnf"
  chmod 600 "$datadir/.my-healthcheck.cnf"
  kill "$pid"
  wait "$pid" || true
  echo "docker-entrypoint: MariaDB init process done. Ready for start up."
fi

exec mariadbd --user=mysql --datadir="$datadir" --socket="$socket" --bind-address=0.0.0.0 "${@:2}"
