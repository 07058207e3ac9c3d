#!/usr/bin/env bash
# docker-compose's `preflight` service: every other service waits for it, so a stack
# whose .env still holds a placeholder never initialises a database with it.
# Checks each secret it is given (never printing a value): not empty, not the
# .env.example placeholder `change-me`, URL-safe where it goes into a connection
# URL, and a valid Fernet key for AIRFLOW_FERNET_KEY.
set -euo pipefail

secrets=(
  POSTGRES_PASSWORD AIRFLOW_DB_PASSWORD NIGHTCAST_WAREHOUSE_PASSWORD NIGHTCAST_BI_PASSWORD
  REDIS_PASSWORD MARIADB_ROOT_PASSWORD ERP_DB_PASSWORD AIRFLOW_FERNET_KEY AIRFLOW_JWT_SECRET
  AIRFLOW_API_SECRET_KEY AIRFLOW_ADMIN_PASSWORD FLOWER_PASSWORD
  NIGHTCAST_S3_ACCESS_KEY NIGHTCAST_S3_SECRET_KEY
)
# These end up inside connection URLs (user:password@host).
# The S3 keys go into the task-log connection's JSON (AIRFLOW_CONN_NIGHTCAST_S3): same rule.
in_urls=" AIRFLOW_DB_PASSWORD NIGHTCAST_WAREHOUSE_PASSWORD REDIS_PASSWORD ERP_DB_PASSWORD NIGHTCAST_S3_ACCESS_KEY NIGHTCAST_S3_SECRET_KEY "

bad=0
for var in "${secrets[@]}"; do
  value="${!var:-}"
  if [[ -z "$value" ]]; then
    echo "preflight: $var is empty; set it in .env (see .env.example)" >&2
    bad=1
  elif [[ "$value" == change-me* ]]; then
    echo "preflight: $var still holds the .env.example placeholder change-me; generate a real value (see .env.example)" >&2
    bad=1
  elif [[ "$in_urls" == *" $var "* && ! "$value" =~ ^[A-Za-z0-9._~-]+$ ]]; then
    echo "preflight: $var goes into a connection URL and may only hold A-Z a-z 0-9 . _ ~ - (e.g. openssl rand -hex 24)" >&2
    bad=1
  fi
done
if [[ -n "${AIRFLOW_FERNET_KEY:-}" && "$AIRFLOW_FERNET_KEY" != change-me* ]]; then
  python - <<'PY' || bad=1
import os
import sys

from cryptography.fernet import Fernet

try:
    Fernet(os.environ["AIRFLOW_FERNET_KEY"].encode())
except ValueError:
    sys.exit("preflight: AIRFLOW_FERNET_KEY is not a Fernet key (32 url-safe base64-encoded bytes; see .env.example)")
PY
fi
if [[ "$bad" != 0 ]]; then
  echo "preflight: refusing to start the stack" >&2
  exit 1
fi
echo "preflight: ${#secrets[@]} secrets set, none a placeholder"
