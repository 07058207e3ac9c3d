"""The value types of a mapping file's keys, and its errors as one line each.

Each type is a pydantic annotation whose failure reads as a hint a person can act on
("must be a whole number of extraction streams from 1 to 8"), not pydantic's generic
text. :class:`Problems` lets a model validator report several rules across keys at
once, each at its own key. :func:`error_line` writes one pydantic error as
``file: path.to.key = value: what is wrong``.
"""

from __future__ import annotations

import codecs
import difflib
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import annotated_types as at
from pydantic import (
    BaseModel,
    BeforeValidator,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from nightcast.sources.mapping_rules import MAX_PARALLEL, NORMALIZE_FORMS, NormalForm

_INVALID = object()


def rule(hint: str, test: Callable[[Any], bool] = lambda _: True) -> WrapValidator:
    """The type's own checks, then ``test``; any failure is reported as ``hint`` alone."""

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            out = handler(value)
        except ValidationError:
            out = _INVALID
        if out is _INVALID or not test(out):
            raise PydanticCustomError("mapping", hint)
        return out

    return WrapValidator(check)


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _is_codec(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def _scalars_as_text(value: Any) -> Any:
    """YAML reads ``1``, ``1.5`` or ``yes`` as numbers and booleans; they mean the text."""
    scalar = (int, float, bool)
    if isinstance(value, list):
        return [str(v) if isinstance(v, scalar) else v for v in value]
    if isinstance(value, dict):
        return {
            (str(k) if isinstance(k, scalar) else k): (str(v) if isinstance(v, scalar) else v)
            for k, v in value.items()
        }
    return value


def _filled(text: str) -> bool:
    return bool(text.strip())


Text = Annotated[str, at.MinLen(1), rule("must be a non-blank text", _filled)]
FileName = Annotated[
    str, at.MinLen(1), rule("must name tonight's file (or a glob), e.g. sales_lines.csv", _filled)
]
Query = Annotated[str, at.MinLen(1), rule("must be the SQL query returning the rows", _filled)]
Identifier = Annotated[
    str,
    rule("must be a plain identifier (letters, digits, _), e.g. acme_erp", str.isidentifier),
]
Zone = Annotated[str, rule("is not an IANA time zone (e.g. Europe/Berlin, UTC)", _is_zone)]
Normalize = Annotated[
    NormalForm,
    BeforeValidator(lambda v: v.upper() if str(v).upper() in NORMALIZE_FORMS else v),
    WithJsonSchema({"enum": [*NORMALIZE_FORMS, *(f.lower() for f in NORMALIZE_FORMS)]}),
]
Decimal = Literal[".", ","]
Thousands = Literal[",", ".", " ", "'", ""] | None
Formats = Annotated[list[Text], rule('must be a list of strftime formats, e.g. ["%d/%m/%Y"]')]
Tokens = Annotated[
    list[str],
    BeforeValidator(_scalars_as_text),
    rule("must be a list of texts that mean 'missing', e.g. ['', 'NULL', 'N/A']"),
]
ValueMap = Annotated[
    dict[str, str],
    BeforeValidator(_scalars_as_text),
    rule("must map source values to canonical ones, e.g. {O: open, S: shipped}"),
]
Scale = Annotated[float, rule("must be a number the value is multiplied by, e.g. 0.01")]
Streams = Annotated[
    int,
    at.Ge(1),
    at.Le(MAX_PARALLEL),
    rule(f"must be a whole number of extraction streams from 1 to {MAX_PARALLEL} (1: one stream)"),
]
FieldBytes = Annotated[
    int,
    at.Ge(1),
    rule("must be the largest field a file may hold, in bytes (e.g. 33554432 for 32 MiB)"),
]
Shrink = Annotated[
    float,
    at.Ge(0),
    at.Le(1),
    rule("must be the largest fraction of the rows one refresh may remove, 0 to 1 (e.g. 0.2)"),
]
Char = Annotated[str, at.MinLen(1), at.MaxLen(1)]
Delimiter = Annotated[Char, rule("must be one character, e.g. ';' or a tab")]
Encoding = Annotated[
    str, rule("is not a known encoding: use e.g. utf-8, cp1252, latin-1", _is_codec)
]
QuoteChar = Annotated[
    Union[Char, Literal[False], None],  # noqa: UP007 (one annotation for the whole union)
    # Literal[False] alone would take 0 (0 == False).
    BeforeValidator(lambda v: v if v is None or isinstance(v, str | bool) else _INVALID),
    rule("must be one character, or false when the export never uses one"),
]
Watermark = Annotated[list[Text], rule("must be a list of timestamp columns, e.g. [updated_at]")]

_NO_VALUE = object()


class Problems:
    """The problems a model validator finds, raised together, each at its own key."""

    def __init__(self) -> None:
        self.found: list[InitErrorDetails] = []
        self.seen: set[tuple[tuple[str, ...], str]] = set()

    def add(self, key: str | tuple[str, ...], message: str, value: Any = _NO_VALUE) -> None:
        """``message`` at ``key`` (a path below the model; ``()`` for the model itself),
        showing ``value`` unless it is left out (a missing key has none)."""
        kind = "mapping_at" if value is _NO_VALUE else "mapping"
        loc = (key,) if isinstance(key, str) else key
        detail = InitErrorDetails(
            type=PydanticCustomError(kind, message),
            loc=loc,
            input=None if value is _NO_VALUE else value,
        )
        if (loc, message) not in self.seen:  # one rule broken by many columns: said once
            self.seen.add((loc, message))
            self.found.append(detail)

    def raise_any(self, title: str) -> None:
        if self.found:
            raise ValidationError.from_exception_data(title, self.found)


# --- one line per error --------------------------------------------------------------------

_PLAIN = {
    "bool_type": "must be true or false",
    "string_type": "must be a text",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "list_type": "must be a list",
    "dict_type": "must be a mapping of keys to values",
}


def show(value: Any) -> str:
    """``value`` as one short line (a query's whitespace collapsed)."""
    text = repr(" ".join(value.split())) if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:76] + "...'"


def model_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model a key path leads to inside ``root`` (None where it leaves the models)."""
    model = root
    for part in loc:
        info = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        target = info.annotation if info else None
        if not (isinstance(target, type) and issubclass(target, BaseModel)):
            return None
        model = target
    return model


def _unknown_key(owner: type[BaseModel], key: str) -> str:
    """Why ``key`` is not allowed in ``owner``: where it belongs, or the keys that are."""
    misplaced: dict[str, str] = getattr(owner, "misplaced", {})
    if key in misplaced:
        return misplaced[key]
    known = [f.alias or n for n, f in owner.model_fields.items()]
    near = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    return f"{getattr(owner, 'unknown', 'unknown key')} ({hint}known: {', '.join(known)})"


def error_line(file: str, root: type[BaseModel], err: Any) -> str:
    """One pydantic error inside mapping ``root`` as ``file: path = value: what is wrong``."""
    loc: tuple[str | int, ...] = tuple(err["loc"])
    kind = err["type"]
    path = ".".join(str(p) for p in loc) or "(top level)"
    owner = model_at(root, loc[:-1]) if loc else None
    value = f" = {show(err['input'])}"
    if kind == "extra_forbidden" and owner is not None:
        message = _unknown_key(owner, str(loc[-1]))
        if isinstance(err["input"], dict):  # the key is what is wrong, not its contents
            value = ""
    elif kind == "missing":
        info = next(
            (
                f
                for n, f in (owner.model_fields if owner else {}).items()
                if loc[-1] in (n, f.alias)
            ),
            None,
        )
        message, value = f"missing: {info.description}" if info else "missing", ""
    elif kind == "model_type":
        message = f"must be {getattr(model_at(root, loc), 'shape', 'a mapping of keys to values')}"
    elif kind == "mapping_at":
        message, value = str(err["msg"]), ""
    else:
        message = _PLAIN.get(kind) or str(err["msg"]).replace("Input should be", "must be")
    return f"{file}: {path}{value}: {message}"
