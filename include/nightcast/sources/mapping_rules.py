"""Per-column rules of a source mapping: what a column is produced from and how it parses.

One :class:`ColumnRule` per canonical column of a table; :func:`column_rule` validates
its YAML spec (type, ``from``/``value``, parsing conventions, with source-level defaults
filled in) so that a typo names the file, table, column and key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nightcast.errors import DeterministicError

COLUMN_TYPES = ("id", "string", "float", "int", "date", "timestamp")
NUMBER_KEYS = ("decimal", "thousands", "currency")
DATE_KEYS = ("formats", "excel_serial", "timezone")
NORMALIZE_FORMS = ("NFC", "NFKC", "NFD", "NFKD")


class MappingError(ValueError, DeterministicError):
    """A source mapping file is invalid (fixed by editing it, never by a retry)."""


@dataclass(frozen=True)
class ColumnRule:
    """How one canonical column is produced from the landed source columns."""

    name: str
    type: str
    source_column: str | None = None
    value: Any = None
    required: bool = False
    default: Any = None
    format: str | None = None
    values: dict[str, str] | None = None
    null_tokens: tuple[str, ...] = ()
    scale: float | None = None
    # Parsing conventions (see nightcast.cleaning.parsers): explicit per source, never guessed.
    formats: tuple[str, ...] = ()
    excel_serial: bool = False
    timezone: str | None = None
    decimal: str = "."
    thousands: str = ","
    currency: bool = False
    normalize: str | None = None
    trim: bool = True


COLUMN_KEYS = (
    "from",
    "value",
    "type",
    "required",
    "default",
    "format",
    "values",
    "null_tokens",
    "scale",
    *NUMBER_KEYS,
    *DATE_KEYS,
    "normalize",
    "trim",
)


def check_timezone(where: str, zone: Any) -> str:
    try:
        ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(
            f"{where}: 'timezone' {zone!r} is not an IANA time zone (e.g. Europe/Berlin, UTC)"
        ) from None
    return str(zone)


def _parse_options(
    where: str, ctype: str, spec: dict[str, Any], defaults: dict[str, Any]
) -> dict[str, Any]:
    """Validated parsing keys of one column; source-level defaults fill what it leaves out."""
    for key in NUMBER_KEYS:
        if key in spec and ctype not in ("float", "int"):
            raise MappingError(f"{where}: {key!r} applies to float and int columns only")
    for key in DATE_KEYS:
        if key in spec and ctype not in ("date", "timestamp"):
            raise MappingError(f"{where}: {key!r} applies to date and timestamp columns only")
    if "timezone" in spec and ctype != "timestamp":
        raise MappingError(f"{where}: 'timezone' applies to timestamp columns only")
    if "format" in spec and "formats" in spec:
        raise MappingError(f"{where}: use 'format' (one) or 'formats' (a list), not both")
    opts: dict[str, Any] = {}
    raw_formats = spec.get("formats", [spec["format"]] if "format" in spec else [])
    if not isinstance(raw_formats, list) or not all(
        isinstance(f, str) and f.strip() for f in raw_formats
    ):
        raise MappingError(
            f"{where}: 'formats' must be a list of strftime formats, e.g. [\"%d/%m/%Y\"]"
        )
    opts["formats"] = tuple(raw_formats)
    merged = {**defaults, **spec}
    if ctype in ("float", "int"):
        decimal = str(merged.get("decimal", "."))
        if decimal not in (".", ","):
            raise MappingError(f"{where}: 'decimal' must be '.' or ',', not {decimal!r}")
        thousands = merged.get("thousands", "," if decimal == "." else ".")
        thousands = "" if thousands is None else str(thousands)
        if thousands not in (",", ".", " ", "'", "") or thousands == decimal:
            raise MappingError(
                f"{where}: 'thousands' must be one of ',', '.', ' ', \"'\" or '' and differ "
                f"from 'decimal' ({decimal!r}), not {thousands!r}"
            )
        opts.update(decimal=decimal, thousands=thousands)
    for key in ("currency", "excel_serial", "trim"):
        if key in merged and not isinstance(merged[key], bool):
            raise MappingError(f"{where}: {key!r} must be true or false")
    if ctype in ("float", "int"):
        opts["currency"] = bool(merged.get("currency", False))
    opts["excel_serial"] = bool(spec.get("excel_serial", False))
    opts["trim"] = bool(merged.get("trim", True))
    if ctype == "timestamp" and merged.get("timezone") is not None:
        opts["timezone"] = check_timezone(where, merged["timezone"])
    normalize = merged.get("normalize")
    if normalize is not None:
        if str(normalize).upper() not in NORMALIZE_FORMS:
            raise MappingError(
                f"{where}: 'normalize' must be one of {NORMALIZE_FORMS}, not {normalize!r}"
            )
        opts["normalize"] = str(normalize).upper()
    return opts


def column_rule(
    where: str,
    name: str,
    spec: Any,
    null_tokens: tuple[str, ...],
    defaults: dict[str, Any] | None = None,
) -> ColumnRule:
    if not isinstance(spec, dict):
        raise MappingError(
            f"{where}: column {name!r} must be a mapping like {{from: col, type: string}}"
        )
    unknown = set(spec) - set(COLUMN_KEYS)
    if unknown:
        raise MappingError(f"{where}: column {name!r} has unknown keys {sorted(unknown)}")
    ctype = spec.get("type", "string")
    if ctype not in COLUMN_TYPES:
        raise MappingError(
            f"{where}: column {name!r} has type {ctype!r}; use one of {COLUMN_TYPES}"
        )
    if ("from" in spec) == ("value" in spec):
        raise MappingError(
            f"{where}: column {name!r} needs exactly one of 'from' (a source column) or 'value' (a constant)"
        )
    if "scale" in spec and ctype != "float":
        raise MappingError(f"{where}: column {name!r}: 'scale' applies to float columns only")
    values = spec.get("values")
    if values is not None and not isinstance(values, dict):
        raise MappingError(
            f"{where}: column {name!r}: 'values' must map source values to canonical ones"
        )
    opts = _parse_options(f"{where} column {name!r}", ctype, spec, defaults or {})
    return ColumnRule(
        name=name,
        type=ctype,
        source_column=spec.get("from"),
        value=spec.get("value"),
        required=bool(spec.get("required", False)),
        default=spec.get("default"),
        format=spec.get("format"),
        values={str(k): str(v) for k, v in values.items()} if values else None,
        null_tokens=tuple(spec.get("null_tokens", null_tokens)),
        scale=float(spec["scale"]) if "scale" in spec else None,
        **opts,
    )
