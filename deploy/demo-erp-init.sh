#!/usr/bin/env bash
# docker-compose's `demo-erp-init` service (--profile demo): seeds the MariaDB demo ERP
# behind AIRFLOW_CONN_NIGHTCAST_DEMO_ERP with `nightcast demo-erp init` when it holds
# no ERP yet; leaves a seeded one alone, so it is safe on every `up`.
#
# Environment: NIGHTCAST_DEMO_SIZE (default small), NIGHTCAST_DEMO_START (default: the
# simulator's), NIGHTCAST_DEMO_END (default: yesterday, UTC, so tonight's run has a
# business day to close).
set -euo pipefail

# Exit status 10: no ERP there yet; 0: already seeded; anything else: an error.
status=0
python - <<'PY' || status=$?
import sys

from nightcast.config import connection_url
from nightcast.demo_erp import last_simulated_day

last = last_simulated_day(connection_url("nightcast_demo_erp"))
if last is not None:
    print(f"demo-erp-init: the demo ERP is already seeded (last simulated day {last}); leaving it")
sys.exit(10 if last is None else 0)
PY
case "$status" in
  0) exit 0 ;;
  10) ;;
  *) echo "demo-erp-init: could not inspect the demo ERP (exit $status)" >&2; exit "$status" ;;
esac

end="${NIGHTCAST_DEMO_END:-$(date -u -d yesterday +%F)}"
args=(--size "${NIGHTCAST_DEMO_SIZE:-small}" --end "$end")
if [[ -n "${NIGHTCAST_DEMO_START:-}" ]]; then
  args+=(--start "$NIGHTCAST_DEMO_START")
fi
echo "demo-erp-init: seeding the demo ERP (${args[*]})"
# No --url: the CLI maps AIRFLOW_CONN_NIGHTCAST_DEMO_ERP (mysql://...) onto
# mysql+pymysql://..., so the password never appears on a command line.
nightcast demo-erp init "${args[@]}"
