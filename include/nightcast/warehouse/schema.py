"""Warehouse tables owned by the pipeline (dbt owns ``staging`` and ``marts``).

Column lists here are the contract between the loaders, dbt sources and BI.
Every canonical id is namespaced by its source (``<source>:<native id>``) so
rows from several ERPs land in the same tables without colliding.
"""

from __future__ import annotations

SCHEMAS = ("raw", "forecast", "ops", "audit")

# Canonical tables: one row per natural key (the first column after ``source``).
CANONICAL_TABLES: dict[str, str] = {
    "order_lines": """
        source varchar not null,
        order_line_id varchar not null,
        order_id varchar not null,
        order_date date not null,
        item_id varchar not null,
        location_id varchar not null,
        quantity double precision not null,
        unit_price double precision,
        amount double precision,
        currency varchar,
        status varchar not null,
        updated_at timestamp not null,
        _run_date date not null,
        primary key (order_line_id)
    """,
    "items": """
        source varchar not null,
        item_id varchar not null,
        sku varchar,
        name varchar,
        department varchar,
        category varchar,
        subcategory varchar,
        list_price double precision,
        launch_date date,
        discontinue_date date,
        updated_at timestamp,
        _run_date date not null,
        primary key (item_id)
    """,
    "locations": """
        source varchar not null,
        location_id varchar not null,
        name varchar,
        location_type varchar,
        country varchar,
        region varchar,
        updated_at timestamp,
        _run_date date not null,
        primary key (location_id)
    """,
    "promotions": """
        source varchar not null,
        promotion_id varchar not null,
        item_id varchar not null,
        location_id varchar,
        start_date date not null,
        end_date date not null,
        discount_pct double precision not null,
        updated_at timestamp,
        _run_date date not null,
        primary key (promotion_id)
    """,
    "stockouts": """
        source varchar not null,
        stockout_id varchar not null,
        item_id varchar not null,
        location_id varchar not null,
        stockout_date date not null,
        updated_at timestamp,
        _run_date date not null,
        primary key (stockout_id)
    """,
}

# Natural key of each canonical table (used for upserts and dedupe).
NATURAL_KEYS: dict[str, str] = {
    "order_lines": "order_line_id",
    "items": "item_id",
    "locations": "location_id",
    "promotions": "promotion_id",
    "stockouts": "stockout_id",
}

FORECAST_TABLES: dict[str, str] = {
    # One row per run date (the business day D whose data the run closed).
    "runs": """
        run_date date not null primary key,
        model_version varchar,
        status varchar not null,
        series_count integer,
        horizon_days integer,
        rows_forecast bigint,
        message varchar,
        published_at timestamp
    """,
    # One row per run date, item, location and forecast date (grain enforced by
    # the forecast stage and dbt tests; no index, so a run's partition loads at COPY speed).
    "forecasts": """
        run_date date not null,
        item_id varchar not null,
        location_id varchar not null,
        forecast_date date not null,
        horizon integer not null,
        p10 double precision not null,
        p50 double precision not null,
        p90 double precision not null,
        model_version varchar not null
    """,
    "model_registry": """
        model_version varchar not null primary key,
        trained_for_run date not null,
        train_start date,
        train_end date,
        rows_trained bigint,
        series_count integer,
        params varchar,
        features varchar,
        metrics varchar,
        artifact_path varchar not null,
        checksum varchar not null,
        code_version varchar,
        status varchar not null,
        registered_at timestamp,
        holdout_start date,
        status_reason varchar,
        status_changed_at timestamp,
        fallback_until date
    """,
    # Top-k SHAP contributions of run D's forecasts (nightcast.pipeline.explain): one row
    # per run date, item, location, forecast date, quantile and rank. In units of demand:
    # base_value + all contributions = prediction (the raw quantile, before clipping).
    "explanations": """
        run_date date not null,
        item_id varchar not null,
        location_id varchar not null,
        forecast_date date not null,
        horizon integer not null,
        quantile varchar not null,
        rank integer not null,
        feature varchar not null,
        feature_value double precision,
        category_value varchar,
        contribution double precision not null,
        share double precision not null,
        base_value double precision not null,
        prediction double precision not null,
        model_version varchar not null
    """,
    # Shadow mode (NIGHTCAST_SHADOW=1): the latest challenger's nightly forecasts, same
    # grain as ``forecasts``; never read by the marts.
    "shadow_forecasts": """
        run_date date not null,
        item_id varchar not null,
        location_id varchar not null,
        forecast_date date not null,
        horizon integer not null,
        p10 double precision not null,
        p50 double precision not null,
        p90 double precision not null,
        model_version varchar not null
    """,
    # Holdout metrics of the champion and the challenger of one weekly run, on the
    # same cutoffs; rerunning the evaluation replaces the run date's rows.
    "model_evaluations": """
        run_date date not null,
        model_version varchar not null,
        role varchar not null,
        holdout_start date not null,
        holdout_end date not null,
        cutoffs varchar not null,
        rows_evaluated bigint,
        wape double precision,
        bias double precision,
        coverage_p10_p90 double precision,
        nan_values bigint,
        negative_p50 bigint,
        sane boolean,
        decision varchar,
        reason varchar,
        primary key (run_date, model_version)
    """,
    # Every status change of a model version: weekly decisions, rollbacks and manual promotions.
    "model_events": """
        event_at timestamp not null,
        run_date date not null,
        action varchar not null,
        model_version varchar not null,
        from_status varchar,
        to_status varchar not null,
        reason varchar
    """,
}

OPS_TABLES: dict[str, str] = {
    # The exact window each extract of (source, table, run_date) read; a rerun
    # of the same run date reads this window again instead of a new one.
    "extract_windows": """
        source varchar not null,
        table_name varchar not null,
        run_date date not null,
        mode varchar not null,
        window_start timestamp,
        window_end timestamp,
        rows_extracted bigint not null,
        landed_path varchar not null,
        primary key (source, table_name, run_date)
    """,
    "watermarks": """
        source varchar not null,
        table_name varchar not null,
        high_watermark timestamp,
        run_date date not null,
        primary key (source, table_name)
    """,
    # One row per rejected input row and failing column. ``held_back``: the gate stopped
    # the night (validate wrote the row; nothing of the night was loaded); otherwise the
    # night loaded its other rows (load wrote it, and ``nightcast quarantine replay`` may).
    "quarantine": """
        run_date date not null,
        source varchar not null,
        table_name varchar not null,
        row_number bigint not null,
        natural_key varchar,
        column_name varchar,
        reason varchar not null,
        raw_value varchar,
        raw_row varchar not null,
        held_back boolean not null default false
    """,
    "dq_results": """
        run_date date not null,
        suite varchar not null,
        expectation varchar not null,
        column_name varchar,
        severity varchar not null,
        success boolean not null,
        observed_value varchar,
        details varchar
    """,
    # Schema drift seen at extract time: an unmapped column the previous landing of the
    # table did not have ('added': recorded and logged, the run goes on) or a mapped
    # column the landed file lacks ('missing': the extract fails). Rerunning the extract
    # replaces the run date's rows.
    "schema_drift": """
        run_date date not null,
        source varchar not null,
        table_name varchar not null,
        column_name varchar not null,
        change varchar not null,
        landed_path varchar not null
    """,
    # Reconciliation and timings per run and task; rerunning a task replaces its row.
    "task_runs": """
        run_date date not null,
        task varchar not null,
        source varchar not null,
        table_name varchar not null,
        rows_in bigint,
        rows_out bigint,
        rows_quarantined bigint,
        seconds double precision,
        summary varchar,
        finished_at timestamp,
        primary key (run_date, task, source, table_name)
    """,
    # Accuracy of published forecasts (nightcast.monitoring.accuracy): one row per
    # evaluation date (the night the scoring ran), forecast run date, horizon bucket,
    # segment_type ('all' | 'category' | 'location') and segment. Each night rescores
    # the runs with a forecast date in the lookback and replaces its evaluation date.
    "forecast_accuracy": """
        evaluation_date date not null,
        run_date date not null,
        model_version varchar,
        horizon_bucket varchar not null,
        horizon_min integer not null,
        horizon_max integer not null,
        segment_type varchar not null,
        segment varchar not null,
        n_forecasts bigint not null,
        actual_quantity double precision not null,
        forecast_quantity double precision not null,
        abs_error double precision not null,
        wape double precision,
        mase double precision,
        bias double precision,
        p10_p90_coverage double precision,
        last_forecast_date date not null,
        primary key (evaluation_date, run_date, horizon_bucket, segment_type, segment)
    """,
    # Feature drift of tonight's design matrix against the reference bins stored with
    # the champion (nightcast.monitoring.drift): one row per run date and feature.
    "feature_drift": """
        run_date date not null,
        model_version varchar not null,
        feature varchar not null,
        feature_kind varchar not null,
        psi double precision not null,
        ks double precision,
        status varchar not null,
        threshold double precision not null,
        rows_compared bigint not null,
        primary key (run_date, feature)
    """,
    # Every on-call alert raised (nightcast.monitoring.alerts): failed tasks, missed
    # publish deadlines, DQ warnings; ``delivered_to`` lists the channels that worked.
    "alerts": """
        alert_id varchar not null primary key,
        raised_at timestamp not null,
        run_date date not null,
        kind varchar not null,
        dag_id varchar not null,
        task_id varchar,
        severity varchar not null,
        message varchar not null,
        rerun_hint varchar,
        delivered_to varchar not null,
        delivery_errors varchar
    """,
    # Numeric metrics per run, DAG, task and name (nightcast.monitoring.metrics), also sent
    # to StatsD when configured; re-emitting a metric replaces its row.
    "metrics": """
        run_date date not null,
        dag_id varchar not null,
        task_id varchar not null,
        name varchar not null,
        value double precision not null,
        recorded_at timestamp not null
    """,
}

# Columns added after a release: ``open_warehouse`` adds them to an older warehouse's
# table (portable ``alter table ... add column if not exists``; DuckDB cannot add a NOT
# NULL column that way, so the default fills the old rows instead).
ADDED_COLUMNS: dict[str, dict[str, str]] = {
    "ops.quarantine": {"held_back": "boolean default false"},
}

# Append-only audit trail (PostgreSQL: triggers reject UPDATE/DELETE/TRUNCATE and the schema
# belongs to a role the pipeline does not log in as; DuckDB: the only writer,
# ``nightcast.audit``, issues INSERTs only). Every row is hash-chained to the row before it
# (``seq``, ``prev_hash``, ``row_hash``: see ``nightcast.warehouse.audit_chain``), so a change
# by anyone, a superuser included, fails ``nightcast audit verify``. See ``nightcast/audit``.
AUDIT_TABLES: dict[str, str] = {
    # One row per publish decision of a run: published, held back by the gate, rolled back.
    "publications": """
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
    """,
    # Human overrides (manual promotion, rollback): who, what and why.
    "overrides": """
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
    """,
}

# Tables whose rows for one value of a column are replaced as a unit; on
# PostgreSQL they are LIST-partitioned by it and replaced by a partition swap.
PARTITIONED: dict[str, str] = {
    "forecast.forecasts": "run_date",
    "forecast.explanations": "run_date",
}

ALL_TABLES: dict[str, dict[str, str]] = {
    "raw": CANONICAL_TABLES,
    "forecast": FORECAST_TABLES,
    "ops": OPS_TABLES,
    "audit": AUDIT_TABLES,
}
