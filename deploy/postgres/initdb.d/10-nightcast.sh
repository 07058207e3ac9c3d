#!/usr/bin/env bash
# Creates the Nightcast databases and roles in a fresh PostgreSQL cluster.
#
# The postgres image runs this once, when its data volume is initialised
# (/docker-entrypoint-initdb.d); it connects as the superuser over the local
# socket. Every name and password comes from the environment, and a missing one
# stops the script naming it:
#
#   AIRFLOW_DB_NAME / AIRFLOW_DB_USER / AIRFLOW_DB_PASSWORD
#       Airflow's metadata database (also the Celery result backend), owned by its role.
#   NIGHTCAST_WAREHOUSE_DB / NIGHTCAST_WAREHOUSE_USER / NIGHTCAST_WAREHOUSE_PASSWORD
#       The warehouse database, owned by the role the pipeline and dbt write with.
#   NIGHTCAST_BI_USER / NIGHTCAST_BI_PASSWORD
#       A login role for BI: CONNECT on the warehouse, read-only on schema `marts`,
#       including the tables dbt creates there later (default privileges).
#
# Outside Docker (tests, an existing server) run it with PGHOST/PGPORT set and
# POSTGRES_USER/POSTGRES_DB naming a superuser and a database to connect to.
set -euo pipefail

: "${POSTGRES_USER:?the superuser to connect as}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${AIRFLOW_DB_NAME:?}" "${AIRFLOW_DB_USER:?}" "${AIRFLOW_DB_PASSWORD:?}"
: "${NIGHTCAST_WAREHOUSE_DB:?}" "${NIGHTCAST_WAREHOUSE_USER:?}" "${NIGHTCAST_WAREHOUSE_PASSWORD:?}"
: "${NIGHTCAST_BI_USER:?}" "${NIGHTCAST_BI_PASSWORD:?}"

# psql variables (:"name" quotes an identifier, :'name' a literal): no value is
# ever spliced into the SQL text by the shell.
psql -v ON_ERROR_STOP=1 -X -q \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v airflow_db="$AIRFLOW_DB_NAME" \
  -v airflow_user="$AIRFLOW_DB_USER" \
  -v airflow_password="$AIRFLOW_DB_PASSWORD" \
  -v warehouse_db="$NIGHTCAST_WAREHOUSE_DB" \
  -v warehouse_user="$NIGHTCAST_WAREHOUSE_USER" \
  -v warehouse_password="$NIGHTCAST_WAREHOUSE_PASSWORD" \
  -v bi_user="$NIGHTCAST_BI_USER" \
  -v bi_password="$NIGHTCAST_BI_PASSWORD" <<'SQL'
CREATE ROLE :"airflow_user" LOGIN PASSWORD :'airflow_password';
CREATE DATABASE :"airflow_db" OWNER :"airflow_user";
REVOKE ALL ON DATABASE :"airflow_db" FROM PUBLIC;

CREATE ROLE :"warehouse_user" LOGIN PASSWORD :'warehouse_password';
CREATE DATABASE :"warehouse_db" OWNER :"warehouse_user";
REVOKE ALL ON DATABASE :"warehouse_db" FROM PUBLIC;

CREATE ROLE :"bi_user" LOGIN PASSWORD :'bi_password';
GRANT CONNECT ON DATABASE :"warehouse_db" TO :"bi_user";

\connect :"warehouse_db"
-- The pipeline and dbt create raw/staging/forecast/ops themselves; marts exists
-- up front so BI's grants are in place before the first night.
CREATE SCHEMA IF NOT EXISTS marts AUTHORIZATION :"warehouse_user";
GRANT USAGE ON SCHEMA marts TO :"bi_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"warehouse_user" IN SCHEMA marts
    GRANT SELECT ON TABLES TO :"bi_user";
SQL

echo "nightcast: created databases $AIRFLOW_DB_NAME, $NIGHTCAST_WAREHOUSE_DB and roles $AIRFLOW_DB_USER, $NIGHTCAST_WAREHOUSE_USER, $NIGHTCAST_BI_USER"
