#!/usr/bin/env bash
# One-shot initialisation (docker-compose's airflow-init service; safe to rerun):
#   1. `nightcast airflow-setup`: `airflow db migrate` + one Airflow pool per ERP source;
#   2. seed the demo ERP behind AIRFLOW_CONN_NIGHTCAST_DEMO_ERP (MariaDB in compose)
#      with `nightcast demo-erp init`, only when it holds no ERP yet.
#
# Environment: NIGHTCAST_SEED_DEMO_ERP (true|false, default true),
# NIGHTCAST_DEMO_SIZE (default small), NIGHTCAST_DEMO_START (default: the
# simulator's), NIGHTCAST_DEMO_END (default: yesterday, UTC, so tonight's run
# has a business day to close).
set -euo pipefail

for var in AIRFLOW__CORE__FERNET_KEY AIRFLOW__API_AUTH__JWT_SECRET AIRFLOW__API__SECRET_KEY; do
  if [[ "${!var:-}" == change-me* ]]; then
    echo "airflow-init: $var still holds the .env.example placeholder; generate a real value (see .env.example)" >&2
    exit 1
  fi
done

echo "airflow-init: migrating the Airflow metadata DB and creating the ERP pools"
nightcast airflow-setup

if [[ "${NIGHTCAST_SEED_DEMO_ERP:-true}" != "true" ]]; then
  echo "airflow-init: NIGHTCAST_SEED_DEMO_ERP=${NIGHTCAST_SEED_DEMO_ERP}; not seeding the demo ERP"
  exit 0
fi

# Exit status 10: no ERP there yet; 0: already seeded; anything else: an error.
status=0
python - <<'PY' || status=$?
import sys

from nightcast.config import connection_url
from nightcast.demo_erp import last_simulated_day

last = last_simulated_day(connection_url("nightcast_demo_erp"))
if last is not None:
    print(f"airflow-init: the demo ERP is already seeded (last simulated day {last}); leaving it")
sys.exit(10 if last is None else 0)
PY
case "$status" in
  0) exit 0 ;;
  10) ;;
  *) echo "airflow-init: could not inspect the demo ERP (exit $status)" >&2; exit "$status" ;;
esac

end="${NIGHTCAST_DEMO_END:-$(date -u -d yesterday +%F)}"
args=(--size "${NIGHTCAST_DEMO_SIZE:-small}" --end "$end")
if [[ -n "${NIGHTCAST_DEMO_START:-}" ]]; then
  args+=(--start "$NIGHTCAST_DEMO_START")
fi
echo "airflow-init: seeding the demo ERP (${args[*]})"
# No --url: the CLI maps AIRFLOW_CONN_NIGHTCAST_DEMO_ERP (mysql://...) onto
# mysql+pymysql://..., so the password never appears on a command line.
nightcast demo-erp init "${args[@]}"
