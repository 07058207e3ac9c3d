#!/usr/bin/env bash
# One-shot initialisation (docker-compose's airflow-init service; safe to rerun):
# `nightcast airflow-setup` = `airflow db migrate` + one Airflow pool per ERP source.
# The secrets were checked by the preflight service before anything started.
set -euo pipefail

echo "airflow-init: migrating the Airflow metadata DB and creating the ERP pools"
nightcast airflow-setup
