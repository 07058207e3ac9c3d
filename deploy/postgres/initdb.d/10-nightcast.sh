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
#       including the tables dbt creates there later (default privileges for the
#       warehouse role, which dbt builds with); no TEMP (revoked from PUBLIC), nothing
#       else. The same grants as `nightcast bi-role` (run that as a superuser to change
#       them or to rotate the password).
#   NIGHTCAST_AUDIT_OWNER
#       A role nobody logs in as that owns the `audit` schema: the warehouse role may only
#       INSERT into and SELECT from the audit tables, so it can neither change rows nor
#       switch off the append-only triggers. The same result as `nightcast audit setup`
#       (for servers that already run Nightcast); the tables match
#       include/nightcast/warehouse/schema.py (tests/deploy/test_compose.py compares them).
#
# Outside Docker (tests, an existing server) run it with PGHOST/PGPORT set and
# POSTGRES_USER/POSTGRES_DB naming a superuser and a database to connect to.
set -euo pipefail

: "${POSTGRES_USER:?the superuser to connect as}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${AIRFLOW_DB_NAME:?}" "${AIRFLOW_DB_USER:?}" "${AIRFLOW_DB_PASSWORD:?}"
: "${NIGHTCAST_WAREHOUSE_DB:?}" "${NIGHTCAST_WAREHOUSE_USER:?}" "${NIGHTCAST_WAREHOUSE_PASSWORD:?}"
: "${NIGHTCAST_BI_USER:?}" "${NIGHTCAST_BI_PASSWORD:?}" "${NIGHTCAST_AUDIT_OWNER:?}"

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
  -v bi_password="$NIGHTCAST_BI_PASSWORD" \
  -v audit_owner="$NIGHTCAST_AUDIT_OWNER" <<'SQL'
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

-- The audit trail, append-only and hash-chained (include/nightcast/audit), owned by a
-- role nobody logs in as; the pipeline appends to it and reads it, nothing else.
CREATE ROLE :"audit_owner" NOLOGIN NOINHERIT;
CREATE SCHEMA audit AUTHORIZATION :"audit_owner";
SET ROLE :"audit_owner";
CREATE TABLE audit.publications (
    event_id varchar not null primary key,
    run_date date not null,
    decided_at timestamp not null,
    decision varchar not null,
    model_version varchar,
    model_params varchar,
    code_version varchar,
    input_snapshot varchar,
    forecast_rows bigint,
    forecast_checksum varchar,
    actor varchar not null,
    reason varchar,
    seq bigint not null unique,
    prev_hash varchar not null,
    row_hash varchar not null
);
CREATE TABLE audit.overrides (
    event_id varchar not null primary key,
    recorded_at timestamp not null,
    actor varchar not null,
    action varchar not null,
    model_version varchar,
    run_date date,
    reason varchar,
    seq bigint not null unique,
    prev_hash varchar not null,
    row_hash varchar not null
);
CREATE FUNCTION audit.reject_change() RETURNS trigger LANGUAGE plpgsql AS $body$
begin
    raise exception 'audit.% is append-only: % refused', tg_table_name, tg_op
        using errcode = 'insufficient_privilege';
end
$body$;
CREATE TRIGGER publications_append_only BEFORE UPDATE OR DELETE ON audit.publications
    FOR EACH ROW EXECUTE FUNCTION audit.reject_change();
CREATE TRIGGER publications_no_truncate BEFORE TRUNCATE ON audit.publications
    FOR EACH STATEMENT EXECUTE FUNCTION audit.reject_change();
CREATE TRIGGER overrides_append_only BEFORE UPDATE OR DELETE ON audit.overrides
    FOR EACH ROW EXECUTE FUNCTION audit.reject_change();
CREATE TRIGGER overrides_no_truncate BEFORE TRUNCATE ON audit.overrides
    FOR EACH STATEMENT EXECUTE FUNCTION audit.reject_change();
RESET ROLE;
GRANT USAGE ON SCHEMA audit TO :"warehouse_user";
GRANT SELECT, INSERT ON audit.publications, audit.overrides TO :"warehouse_user";
SQL

echo "nightcast: created databases $AIRFLOW_DB_NAME, $NIGHTCAST_WAREHOUSE_DB and roles $AIRFLOW_DB_USER, $NIGHTCAST_WAREHOUSE_USER, $NIGHTCAST_BI_USER, $NIGHTCAST_AUDIT_OWNER"
