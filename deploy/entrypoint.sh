#!/usr/bin/env bash
# Entrypoint of the Nightcast image: prepare what the command needs, then exec it.
#
# When AIRFLOW_ADMIN_PASSWORD is set (docker-compose gives it to the api-server
# only), the simple auth manager's password file is written from it, so the UI
# login is the one chosen in .env instead of a random password printed to the log.
set -euo pipefail

if [[ -n "${AIRFLOW_ADMIN_PASSWORD:-}" ]]; then
  python - <<'PY'
import json
import os
from pathlib import Path

home = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
path = Path(
    os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    or os.path.join(home, "simple_auth_manager_passwords.json.generated")
)
user = os.environ.get("AIRFLOW_ADMIN_USER") or "admin"
path.parent.mkdir(parents=True, exist_ok=True)
old_umask = os.umask(0o077)
try:
    path.write_text(json.dumps({user: os.environ["AIRFLOW_ADMIN_PASSWORD"]}) + "\n")
finally:
    os.umask(old_umask)
path.chmod(0o600)
print(f"nightcast: simple auth manager login for {user!r} written to {path}")
PY
fi

exec "$@"
