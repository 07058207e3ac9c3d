#!/usr/bin/env bash
# One-shot initialisation (docker-compose's airflow-init service; safe to rerun):
# `nightcast airflow-setup` = `airflow db migrate` + one Airflow pool per ERP source;
# `nightcast storage-check --create-buckets` = the object store's bucket, and a probe
# written, read and deleted where the lake, models, reports and task logs go.
# The secrets were checked by the preflight service before anything started.
set -euo pipefail

echo "airflow-init: migrating the Airflow metadata DB and creating the ERP pools"
nightcast airflow-setup
echo "airflow-init: checking the object store (lake, models, reports, task logs)"
nightcast storage-check --create-buckets --wait 120
