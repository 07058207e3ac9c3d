"""The ``nightcast`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import date, datetime
from pathlib import Path

from nightcast.env import embedded_defaults, render_dotenv


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _apply_defaults() -> None:
    """Embedded defaults for anything the environment does not set already."""
    for key, value in embedded_defaults().items():
        os.environ.setdefault(key, value)


def cmd_env(args: argparse.Namespace) -> int:
    text = render_dotenv(embedded_defaults())
    if args.write:
        path = Path(args.write)
        if path.exists() and not args.force:
            print(f"{path} exists; keeping it (use --force to regenerate)")
            return 0
        path.write_text(text)
        print(f"wrote {path}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_demo_erp(args: argparse.Namespace) -> int:
    from nightcast import demo_erp
    from nightcast.config import connection_url

    _apply_defaults()
    url = args.url or connection_url("nightcast_demo_erp")
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if args.action == "init":
        counts = demo_erp.generate(
            url,
            size=args.size,
            start=args.start,
            end=args.end,
            seed=args.seed,
            replace=args.replace,
        )
    else:
        if args.day is None:
            raise SystemExit("demo-erp advance needs --day YYYY-MM-DD")
        counts = demo_erp.advance(url, args.day)
    print(", ".join(f"{k}: {v:,}" for k, v in counts.items()))
    return 0


def cmd_airflow_setup(args: argparse.Namespace) -> int:
    from nightcast.demo import airflow_setup

    _apply_defaults()
    airflow_setup()
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Print the configuration reference, or check the current environment's settings."""
    from nightcast.config import get_settings, reference_markdown

    if args.action == "reference":
        print(reference_markdown(), end="")
        return 0
    settings = get_settings()  # raises SettingError naming a bad variable
    print(f"settings ok: lake {settings.lake}, warehouse {settings.warehouse_url.split('@')[-1]}")
    return 0


def cmd_mapping(args: argparse.Namespace) -> int:
    """Print the mapping JSON Schema, or check mapping files (and their sources)."""
    if args.action == "schema":
        from nightcast.sources.mapping_models import schema_text

        print(schema_text(), end="")
        return 0
    from nightcast.redaction import redact
    from nightcast.sources.mapping_check import check_mapping

    connect = not args.no_connect
    if connect:
        _apply_defaults()
    failed = 0
    for path in args.files:
        result = check_mapping(Path(path), connect=connect, night=args.run_date)
        for line in result.problems:
            print(redact(line))
        for line in result.notes:
            print(f"note: {redact(line)}")
        print(redact(result.summary()))
        failed += not result.ok
    return 1 if failed else 0


def cmd_storage_check(args: argparse.Namespace) -> int:
    """Prove the lake, models, reports and (when set) the remote task-log folder usable."""
    from nightcast.config import get_settings
    from nightcast.storage import StorageError, check_store, location

    _apply_defaults()
    settings = get_settings()
    targets = {
        "lake (NIGHTCAST_LAKE_URL)": settings.lake,
        "models (NIGHTCAST_MODELS_URL)": settings.models_location,
        "reports (NIGHTCAST_REPORTS_URL)": settings.reports,
    }
    logs = os.environ.get("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "").strip()
    if logs and os.environ.get("AIRFLOW__LOGGING__REMOTE_LOGGING", "").lower() == "true":
        targets["task logs (AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER)"] = location(logs)
    failed = 0
    for what, target in targets.items():
        try:
            print(
                f"{what}: {check_store(target, create_bucket=args.create_buckets, wait_s=args.wait)}"
            )
        except StorageError as exc:
            print(f"{what}: FAILED: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from nightcast.demo import run_demo

    _apply_defaults()
    return run_demo(
        size=args.size, nights=args.nights, first_night=args.first_night, fresh=not args.keep
    )


def cmd_airflow(args: argparse.Namespace) -> int:
    from nightcast.demo import airflow_standalone

    _apply_defaults()
    return airflow_standalone()


def cmd_bi_role(args: argparse.Namespace) -> int:
    from nightcast.config import get_settings
    from nightcast.warehouse.base import is_postgres_url, open_warehouse
    from nightcast.warehouse.bi_role import BiRoleError, grant_bi_role

    _apply_defaults()
    url = get_settings().warehouse_url
    if not is_postgres_url(url):
        raise SystemExit(
            "bi-role needs a PostgreSQL warehouse (NIGHTCAST_WAREHOUSE_URL=postgresql://...); "
            "with DuckDB, give BI tools the file opened read-only (duckdb -readonly data/warehouse.duckdb)"
        )
    password = os.environ.get(args.password_env) if args.password_env else None
    if args.password_env and not password:
        raise SystemExit(f"{args.password_env} is not set: it must hold the BI role's password")
    # ensure=False: the pipeline's schemas belong to the pipeline's role, not to whoever
    # (a superuser, say) runs this command.
    with open_warehouse(url, ensure=False) as wh:
        try:
            builder = grant_bi_role(wh, args.role, password, builder=args.dbt_role)
        except BiRoleError as err:
            raise SystemExit(f"nightcast bi-role: {err}") from None
    print(
        f"role {args.role}: select on marts.* only ({'login' if password else 'nologin'}), "
        f"including what {builder} builds there later; no TEMP, nothing else"
    )
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from nightcast.config import get_settings
    from nightcast.reporting.summary import render_summary

    _apply_defaults()
    print(render_summary(get_settings(), args.run_date, latest_only=not args.all))
    return 0


def cmd_quarantine_replay(args: argparse.Namespace) -> int:
    from nightcast.config import get_settings
    from nightcast.pipeline.replay import replay_quarantine

    _apply_defaults()
    results = replay_quarantine(get_settings(), args.run_date, args.source, args.table)
    if not results:
        print(f"nothing quarantined for source {args.source} on {args.run_date}")
    for r in results:
        print(r.describe())
    total = sum(r.replayed for r in results)
    still = sum(r.still_quarantined for r in results)
    print(f"total: {total} replayed, {still} still quarantined")
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    import json

    from nightcast.forecasting.backtest_file import (
        InputError,
        format_report,
        prepare,
        read_table,
        run_backtest,
    )

    if not args.verbose:
        logging.getLogger("nightcast.forecasting").setLevel(logging.WARNING)
    try:
        raw = read_table(args.input)
        df = prepare(raw, args.id_col, args.date_col, args.target_col, args.freq)
        report = run_backtest(df, args.freq, args.horizon, args.windows)
    except InputError as exc:
        print(f"nightcast backtest: error: {exc}", file=sys.stderr)
        return 2
    report["input"] = str(args.input)
    print(format_report(report))
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        print(f"wrote {out}")
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    from nightcast.config import get_settings
    from nightcast.forecasting import lifecycle, registry
    from nightcast.warehouse.base import open_warehouse

    _apply_defaults()
    with open_warehouse(get_settings().warehouse_url) as wh:
        try:
            if args.action == "list":
                print(lifecycle.format_table(registry.registry_rows(wh)))
            elif args.action == "rollback":
                done = lifecycle.rollback(wh, to=args.to, today=args.as_of)
                print(f"rolled back: {done['champion']} is champion, {done['retired']} retired")
            else:
                done = lifecycle.promote(wh, args.version, reason=args.reason, today=args.as_of)
                print(f"promoted {done['champion']} to champion; fallback: {done['fallback']}")
        except registry.RegistryError as err:
            print(f"nightcast model {args.action}: {err}", file=sys.stderr)
            return 1
    return 0


def cmd_allow_refresh(args: argparse.Namespace) -> int:
    from nightcast.config import get_settings
    from nightcast.pipeline.intake import allow_refresh
    from nightcast.pipeline.stages import get_mapping
    from nightcast.sources.mapping_rules import MappingError
    from nightcast.warehouse.base import open_warehouse

    _apply_defaults()
    settings = get_settings()
    try:
        mapping = get_mapping(settings, args.source)
    except (MappingError, LookupError) as err:
        print(f"nightcast allow-refresh: {err}", file=sys.stderr)
        return 2
    table = mapping.tables.get(args.table)
    if table is None or table.mode != "full":
        known = sorted(t for t, m in mapping.tables.items() if m.mode == "full")
        print(
            f"nightcast allow-refresh: source {args.source!r} has no full-refresh table "
            f"{args.table!r} (full-refresh tables: {', '.join(known) or 'none'})",
            file=sys.stderr,
        )
        return 2
    try:
        with open_warehouse(settings.warehouse_url) as wh:
            event = allow_refresh(wh, args.source, args.table, args.run_date, args.reason)
    except ValueError as err:
        print(f"nightcast allow-refresh: {err}", file=sys.stderr)
        return 2
    print(
        f"allowed: the full refresh of raw.{args.table} from {args.source} for run "
        f"{args.run_date} may empty or shrink the table (audit.overrides event {event}); "
        "rerun the night from its extract"
    )
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from nightcast.audit import show_publications
    from nightcast.config import get_settings
    from nightcast.warehouse.base import open_warehouse

    _apply_defaults()
    if args.action == "verify":
        return _audit_verify()
    if args.action == "setup":
        return _audit_setup(args.writer, args.owner)
    with open_warehouse(get_settings().warehouse_url) as wh:
        text, events = show_publications(
            wh,
            run_date=args.run_date,
            item=args.item,
            location=args.location,
            forecast_date=args.date,
            files=args.files,
        )
    print(text)
    return 0 if events else 1


def _audit_verify() -> int:
    """Exit 0: every audit table's hash chain is intact; 1: one is broken (its first bad row
    is named). Role warnings (PostgreSQL) are printed but do not change the exit status."""
    from nightcast.audit.verify import role_warnings, verify_chains
    from nightcast.config import get_settings
    from nightcast.warehouse.base import open_warehouse

    with open_warehouse(get_settings().warehouse_url, ensure=False) as wh:
        try:
            checks = verify_chains(wh)
        except LookupError as err:
            raise SystemExit(f"nightcast audit verify: {err}") from None
        warnings = role_warnings(wh)
    for check in checks:
        print(check.describe())
    for warning in warnings:
        print(f"warning: {warning}")
    return 0 if all(c.ok for c in checks) else 1


def _audit_setup(writer: str, owner: str) -> int:
    from nightcast.audit.roles import AuditSetupError, setup_audit_owner
    from nightcast.config import get_settings
    from nightcast.warehouse.base import is_postgres_url, open_warehouse
    from nightcast.warehouse.postgres import server_message, sqlstate

    url = get_settings().warehouse_url
    if not is_postgres_url(url):
        raise SystemExit(
            "nightcast audit setup: audit roles are PostgreSQL-only; on DuckDB the hash chain "
            "(nightcast audit verify) is the guarantee"
        )
    with open_warehouse(url, ensure=False) as wh:
        try:
            done = setup_audit_owner(wh, writer, owner)
        except AuditSetupError as err:
            raise SystemExit(f"nightcast audit setup: {err}") from None
        except Exception as err:
            if sqlstate(err) is None:
                raise
            raise SystemExit(f"nightcast audit setup: {server_message(err)}") from None
    print("\n".join(done))
    return 0


def cmd_deadline_check(args: argparse.Namespace) -> int:
    """Exit 0: published or not yet due; 1: the deadline for D was missed (alerted once)."""
    from datetime import UTC, datetime

    from nightcast.config import get_settings
    from nightcast.monitoring.alerts import check_deadline, deadline_status, latest_due_run_date

    _apply_defaults()
    settings = get_settings()
    now = args.now or datetime.now(UTC)
    day = args.run_date or latest_due_run_date(settings, now)
    before = deadline_status(settings, day, now)  # what was known before this call
    alert = check_deadline(settings, day, now)
    print(before.describe())
    if alert is not None:
        print(f"alert {alert.alert_id} raised now (delivered to {','.join(alert.delivered_to)})")
    status = deadline_status(settings, day, now)
    return 1 if status.missed else 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Top feature contributions behind one forecast: stored, or computed on demand."""
    import json

    from nightcast.config import get_settings
    from nightcast.pipeline.explain import ExplainLookupError, explain_one, format_explanation

    _apply_defaults()
    try:
        found = explain_one(
            get_settings(), args.item, args.location, args.date, args.run_date, args.top_k
        )
    except ExplainLookupError as err:
        print(f"nightcast explain: {err}", file=sys.stderr)
        return 1
    print(json.dumps(found.as_dict(), indent=2) if args.json else format_explanation(found))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the nightly HTML report of D (default: the latest run) and print its path."""
    import webbrowser

    from nightcast.config import get_settings
    from nightcast.pipeline.report import report
    from nightcast.storage import location
    from nightcast.warehouse.base import open_warehouse

    _apply_defaults()
    settings = get_settings()
    day = args.date
    if day is None:
        with open_warehouse(settings.warehouse_url) as wh:
            row = wh.fetchone("select max(run_date) from forecast.runs")
        if not row or row[0] is None:
            raise SystemExit("no run in forecast.runs yet: run the nightly DAG, or pass --date D")
        day = row[0]
    result = report(settings, day)
    print(result["path"])
    if args.open:
        page = location(result["path"])
        if not page.is_local:
            raise SystemExit(f"--open opens a local file; the report is on object storage: {page}")
        webbrowser.open(page.local_path().as_uri())
    return 0


def _datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO datetime: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nightcast",
        description="Nightcast: nightly ERP extraction, data-quality gate and LightGBM demand "
        "forecasts. On-call: `summary`, `deadline-check`, `quarantine replay`, `model "
        "rollback`, `storage-check`, `config check`, `mapping check`; each command's --help "
        "says more.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    e = sub.add_parser("env", help="print (or write) the embedded-default environment (.env)")
    e.add_argument("--write", metavar="PATH")
    e.add_argument("--force", action="store_true")
    e.set_defaults(func=cmd_env)

    d = sub.add_parser("demo-erp", help="generate or advance the demo ERP")
    d.add_argument("action", choices=["init", "advance"])
    d.add_argument("--url", help="SQLAlchemy URL (default: AIRFLOW_CONN_NIGHTCAST_DEMO_ERP)")
    d.add_argument("--size", default="default", help="tiny | small | default | medium | m5")
    d.add_argument("--start", type=_date)
    d.add_argument("--end", type=_date)
    d.add_argument("--day", type=_date, help="advance: the business day to simulate")
    d.add_argument("--seed", type=int, default=42)
    d.add_argument("--replace", action="store_true", help="init: overwrite an existing ERP")
    d.set_defaults(func=cmd_demo_erp)

    a = sub.add_parser(
        "airflow-setup", help="migrate the Airflow metadata DB and create the ERP pools"
    )
    a.set_defaults(func=cmd_airflow_setup)

    r = sub.add_parser(
        "demo", help="generate the demo ERP and run the nightly DAG for a few nights"
    )
    r.add_argument("--size", default=os.environ.get("NIGHTCAST_DEMO_SIZE", "default"))
    r.add_argument("--nights", type=int, default=3)
    r.add_argument("--first-night", type=_date, default=date(2025, 12, 1))
    r.add_argument(
        "--keep", action="store_true", help="keep existing data/ instead of starting fresh"
    )
    r.set_defaults(func=cmd_demo)

    af = sub.add_parser(
        "airflow", help="run `airflow standalone` with the project's DAGs (Ctrl-C stops it)"
    )
    af.set_defaults(func=cmd_airflow)

    cf = sub.add_parser(
        "config", help="print the configuration reference or check the environment's settings"
    )
    cf.add_argument("action", choices=("reference", "check"))
    cf.set_defaults(func=cmd_config)
    mg = sub.add_parser(
        "mapping", help="print the source-mapping JSON Schema, or check mapping files"
    )
    mgsub = mg.add_subparsers(dest="action", required=True)
    mgsub.add_parser(
        "schema",
        help="print the JSON Schema of a mapping file (for editors: "
        "# yaml-language-server: $schema=<path>)",
    )
    mc = mgsub.add_parser(
        "check",
        help="validate mapping files and, unless --no-connect, that the source has every "
        "mapped table and column (no rows read; exit 1 on a problem, one line each)",
    )
    mc.add_argument("files", nargs="+", metavar="FILE", help="mapping YAML file(s)")
    mc.add_argument(
        "--no-connect", action="store_true", help="check the file only, not its connection"
    )
    mc.add_argument(
        "--run-date",
        type=_date,
        help="csv_folder: the night folder to check (default: the latest in the drop folder)",
    )
    mg.set_defaults(func=cmd_mapping)
    sc = sub.add_parser(
        "storage-check",
        help="write, read and delete a probe file in the lake, models, reports and task-log stores",
    )
    sc.add_argument(
        "--create-buckets", action="store_true", help="create a missing S3 bucket (deployment init)"
    )
    sc.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds to keep retrying while the store does not answer",
    )
    sc.set_defaults(func=cmd_storage_check)
    b = sub.add_parser("bi-role", help="create the read-only BI role on a PostgreSQL warehouse")
    b.add_argument("--role", default="nightcast_bi")
    b.add_argument(
        "--password-env",
        default="NIGHTCAST_BI_PASSWORD",
        help="variable holding its password ('' for nologin)",
    )
    b.add_argument(
        "--dbt-role",
        metavar="ROLE",
        help="the role dbt builds the marts with (default: the owner of schema marts; "
        "without one, you, or the database owner when you are a superuser)",
    )
    b.set_defaults(func=cmd_bi_role)

    s = sub.add_parser("summary", help="print the summary of a run (default: the latest)")
    s.add_argument("--run-date", type=_date)
    s.add_argument("--all", action="store_true", help="every night in the warehouse")
    s.set_defaults(func=cmd_summary)

    q = sub.add_parser("quarantine", help="work with ops.quarantine")
    qsub = q.add_subparsers(dest="action", required=True)
    qr = qsub.add_parser(
        "replay",
        help="re-clean a night's quarantined rows with the current mapping and load those that pass",
    )
    qr.add_argument("--run-date", type=_date, required=True)
    qr.add_argument("--source", required=True)
    qr.add_argument("--table", help="one canonical table (default: every quarantined table)")
    qr.set_defaults(func=cmd_quarantine_replay)

    m = sub.add_parser("model", help="list, roll back or promote forecast models (registry)")
    msub = m.add_subparsers(dest="action", required=True)
    msub.add_parser("list", help="print forecast.model_registry, newest first")
    mr = msub.add_parser(
        "rollback", help="make the fallback champion again; the champion is retired"
    )
    mr.add_argument("--to", metavar="VERSION", help="a fallback version (default: the latest)")
    mp = msub.add_parser("promote", help="make VERSION champion by hand (recorded)")
    mp.add_argument("version", metavar="VERSION")
    mp.add_argument("--reason", help="why (stored with the status change)")
    for mx in (mr, mp):
        mx.add_argument("--as-of", type=_date, help="the day of the action (default: today)")
    m.set_defaults(func=cmd_model)

    ar = sub.add_parser(
        "allow-refresh",
        help="let one night's thin full export (empty or shrunk) replace a table (recorded)",
    )
    ar.add_argument("source", help="the source (its mapping's 'source')")
    ar.add_argument("table", help="the full-refresh table")
    ar.add_argument("--run-date", type=_date, required=True, help="the night allowed (YYYY-MM-DD)")
    ar.add_argument("--reason", required=True, help="why the export is right (audit.overrides)")
    ar.set_defaults(func=cmd_allow_refresh)

    au = sub.add_parser("audit", help="query the append-only audit trail of published forecasts")
    ausub = au.add_subparsers(dest="action", required=True)
    aus = ausub.add_parser(
        "show",
        help="the forecast published for an item/location/date, then the publication events "
        "behind it (model, code, checksums, inputs)",
    )
    aus.add_argument("--run-date", type=_date, help="the run (business day) that published")
    aus.add_argument("--item", metavar="ID", help="canonical item id (source:native id)")
    aus.add_argument("--location", metavar="ID", help="canonical location id")
    aus.add_argument("--date", type=_date, help="the forecast date")
    aus.add_argument("--files", action="store_true", help="list every input file with its sha256")
    ausub.add_parser(
        "verify",
        help="check every audit row against the hash chain; exit 1 naming the first bad row",
    )
    aup = ausub.add_parser(
        "setup",
        help="PostgreSQL, as a superuser: hand the audit schema to a role nobody logs in as; "
        "the pipeline's role keeps INSERT and SELECT (rerunnable)",
    )
    aup.add_argument("--writer", required=True, metavar="ROLE", help="the pipeline's role")
    aup.add_argument(
        "--owner", default="nightcast_audit", metavar="ROLE", help="the owner (created nologin)"
    )
    au.set_defaults(func=cmd_audit)

    dl = sub.add_parser(
        "deadline-check",
        help="alert once if run date D is not published by NIGHTCAST_PUBLISH_DEADLINE (exit 1)",
    )
    dl.add_argument("--run-date", type=_date, help="D (default: the latest one already due)")
    dl.add_argument("--now", type=_datetime, help="ISO time to check at (default: now)")
    dl.set_defaults(func=cmd_deadline_check)

    ex = sub.add_parser(
        "explain", help="top feature contributions (SHAP) behind one item/location/date forecast"
    )
    ex.add_argument("--item", required=True, metavar="ID", help="namespaced item id")
    ex.add_argument("--location", required=True, metavar="ID", help="namespaced location id")
    ex.add_argument("--date", required=True, type=_date, help="the forecast date")
    ex.add_argument("--run-date", type=_date, help="the run (default: latest published)")
    ex.add_argument("--top-k", type=int, help="features to show (default NIGHTCAST_EXPLAIN_TOP_K)")
    ex.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ex.set_defaults(func=cmd_explain)

    rp = sub.add_parser(
        "report", help="write the nightly HTML report (data/reports/date=D/nightly_report.html)"
    )
    rp.add_argument("--date", type=_date, help="run date D (default: the latest run)")
    rp.add_argument("--open", action="store_true", help="open it in the default browser")
    rp.set_defaults(func=cmd_report)

    bt = sub.add_parser(
        "backtest", help="rolling-origin backtest of the engine and baselines on a CSV/Parquet file"
    )
    bt.add_argument("--input", required=True, help="long-format .csv or .parquet file")
    bt.add_argument("--id-col", default="unique_id", help="series id column")
    bt.add_argument("--date-col", default="ds", help="date column (one row per series and period)")
    bt.add_argument("--target-col", default="y", help="numeric target column")
    bt.add_argument("--freq", default="D", choices=["D", "W"], help="D (daily) or W (weekly)")
    bt.add_argument("--horizon", type=int, help="periods ahead (default 28 daily, 8 weekly)")
    bt.add_argument("--windows", type=int, help="backtest windows (default: 3, or fewer that fit)")
    bt.add_argument("--output", metavar="PATH", help="write the metrics as JSON")
    bt.add_argument("-v", "--verbose", action="store_true", help="log each fit and predict")
    bt.set_defaults(func=cmd_backtest)
    return p


def _own_lines_or_warnings(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or record.name.split(".")[0] == "nightcast"


def configure_logging() -> None:
    """Log Nightcast's own INFO lines (what a command did, progress) and other libraries'
    lines from WARNING up, on stderr. A filter on the handler, not logger levels: Great
    Expectations sets its own loggers to INFO and logs ~200 lines on import. Logging that is
    configured already (a test runner, a program calling ``main``) is left alone."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_own_lines_or_warnings)
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except Exception as err:
        return report_error(args.command, err)


def report_error(command: str, err: Exception) -> int:
    """One line on stderr for a bad setting or an unreachable warehouse (exit 2 and 1);
    the traceback for anything else (exit 1). Credentials redacted either way."""
    import traceback

    from nightcast.config import SettingError
    from nightcast.redaction import redact
    from nightcast.warehouse.base import WarehouseUnavailableError

    if isinstance(err, SettingError | WarehouseUnavailableError):
        line = next((x for x in redact(err).splitlines() if x.strip()), type(err).__name__)
        print(f"nightcast {command}: error: {line}", file=sys.stderr)
        return 2 if isinstance(err, SettingError) else 1
    sys.stderr.write(redact("".join(traceback.format_exception(err))))
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
