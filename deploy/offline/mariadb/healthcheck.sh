#!/usr/bin/env bash
# The official mariadb image's healthcheck.sh, for the two tests docker-compose.yaml
# asks for: --connect (a client can log in over TCP) and --innodb_initialized
# (InnoDB has started). Logs in as the `healthcheck` user the entrypoint created.
set -euo pipefail
cnf=/var/lib/mysql/.my-healthcheck.cnf
[[ -r "$cnf" ]] || exit 1
client=(mariadb --defaults-extra-file="$cnf" --protocol=tcp -h 127.0.0.1 --skip-column-names --batch)
for test in "$@"; do
  case "$test" in
    --connect) "${client[@]}" -e 'select 1' >/dev/null ;;
    --innodb_initialized)
      [[ "$("${client[@]}" -e "select 1 from information_schema.ENGINES where engine='InnoDB' and support in ('YES','DEFAULT','ENABLED')")" == 1 ]] ;;
    *) echo "healthcheck.sh: unsupported test $test" >&2; exit 2 ;;
  esac
done
