"""Which rows of a polars chunk the columnar path can vouch for (sftdata.rendering.columnar).

A row passes only when both hold for certain:
- polars read its line as orjson does. Checked on the raw line: one object, each mapped key
  written plainly at most once and holding a string or null (or, in an integer id column, a
  small integer), no other key, no surrogate escape (polars reads a lone one, orjson rejects it).
  Polars itself is strict about the rest (syntax, UTF-8, raw control bytes).
- Mapper and the record model accept it and the renderer renders it: required text present and
  not blank (with Python's idea of whitespace), optional fields null or "" (absent), no EOS in
  the text.
The checks are conservative: a row they do not vouch for goes the per-row way, which explains it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import polars as pl

from ..schemas.records import RecordKind, record_model

LINE = "\x00line"  # the raw line column; no mapped key can hold a NUL
_COUNT = "\x00count"  # + key: how often the line holds that key; alone: how many keys it holds
_JSON_WS = "[ \t\r]*"  # JSON whitespace inside a line
# What the record models accept, restated for the checks (tests hold the two paths to each other).
_BLANK_CHECKED = {"instruction", "output", "system", "question", "answer", "context"}  # strict str, not blank
# Python's str.strip()/isspace() whitespace; Rust's \s lacks \x1c-\x1f, so the class is spelt out.
PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                 "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_NOT_BLANK = "[^" + "".join(f"\\x{{{ord(c):x}}}" for c in PY_WHITESPACE) + "]"
PLAIN_KEY = re.compile(r'[^"\\\x00-\x1f]+')  # a key spelt the same in JSON and, escaped, in a regex


@dataclass(frozen=True, slots=True)
class Column:
    """One record field as the mapping fills it: from a top-level key, or a constant."""

    name: str
    key: str | None
    const: str | int | None
    required: bool  # the mapping's flag: a missing key rejects the row


@dataclass(slots=True)
class RowChecks:
    kind: RecordKind
    columns: tuple[Column, ...]
    eos: str | None  # None: records are written, not rendered
    _cache: dict[tuple, tuple] = field(default_factory=dict)

    def passing(self, frame: pl.DataFrame) -> pl.Series:
        """The rows vouched for. Keys are first counted cheaply (a `"` then `:` inside text
        counts too); rows failing only that are counted again exactly."""
        key = tuple(frame.schema.items())
        if key not in self._cache:  # building the expressions costs more than running them on a chunk
            self._cache[key] = self._expressions(frame.schema)
        counts, base, cheap, exact = self._cache[key]
        frame = frame.with_columns(counts)  # each count once: the checks only read them
        flags = frame.select(base, cheap)
        ok = flags["base"] & flags["keys"]
        retry = flags["base"] & ~flags["keys"]
        if retry.any():
            ok = ok.scatter(retry.arg_true(), frame.filter(retry).select(exact).to_series())
        return ok

    def _expressions(self, schema: pl.Schema) -> tuple:
        line, mapped = pl.col(LINE), [k for k in schema if k != LINE]
        counts = [_key_count(key, schema[key]).alias(_COUNT + key) for key in mapped]
        counts.append(line.str.count_matches(f'"{_JSON_WS}:').alias(_COUNT))
        total = pl.sum_horizontal([pl.col(_COUNT + key) for key in mapped])
        base = pl.all_horizontal(_fidelity(mapped) + self._semantics(schema)).fill_null(False)
        exact = line.str.count_matches(r'(?:^|[^\\])(?:\\\\)*"' + _JSON_WS + ":") == total
        return counts, base.alias("base"), (pl.col(_COUNT) == total).alias("keys"), exact

    def _semantics(self, schema: pl.Schema) -> list[pl.Expr]:
        """Mapper keeps the row, the model accepts it, the renderer renders it."""
        checks = []
        for column in self.columns:
            value, kept = column_value(column, schema), kept_by_mapper(column, schema)
            if column.required:
                checks.append(value.is_not_null())  # a null could also be a missing key: per row
            if column.name in _BLANK_CHECKED:
                not_blank = value.str.contains(_NOT_BLANK)
                checks.append(kept & not_blank if model_requires(self.kind, column.name) else ~kept | not_blank)
            if self.eos is not None and column.name != "id":
                checks.append(~kept | ~value.str.contains(self.eos, literal=True))
        return checks


def _key_count(key: str, dtype: pl.DataType) -> pl.Expr:
    """How often the raw line holds the key plainly with a string or null value (or, for an
    integer column, an integer of at most 18 digits or null)."""
    value = f"(?:n|-?[0-9]{{1,18}}{_JSON_WS}[,}}])" if dtype == pl.Int64 else '["n]'
    escaped = re.sub(r"([\\.+*?()|\[\]{}^$#&\-~])", r"\\\1", key)
    return pl.col(LINE).str.count_matches(f'"{escaped}"{_JSON_WS}:{_JSON_WS}{value}')


def _fidelity(mapped: list[str]) -> list[pl.Expr]:
    line = pl.col(LINE)
    checks = [line.str.starts_with("{"), line.str.ends_with("}"), ~line.str.contains(r"\\u[dD][89a-fA-F]")]
    for key in mapped:
        count = pl.col(_COUNT + key)
        checks += [count <= 1, (count == 1) | pl.col(key).is_null()]  # a value under an escaped key fails
    return checks


def column_value(column: Column, schema: pl.Schema) -> pl.Expr:
    if column.key is None:
        return pl.lit(column.const, dtype=pl.Int64 if type(column.const) is int else pl.String)
    return pl.col(column.key) if column.key in schema else pl.lit(None, dtype=pl.String)


def is_int(column: Column, schema: pl.Schema) -> bool:
    return type(column.const) is int or (column.key is not None and schema.get(column.key) == pl.Int64)


def kept_by_mapper(column: Column, schema: pl.Schema) -> pl.Expr:
    """Whether Mapper keeps the value: not null, and not "" for an optional field other than input."""
    value = column_value(column, schema)
    if column.required or column.name == "input" or is_int(column, schema):
        return value.is_not_null()
    return value.is_not_null() & (value != "")


def model_requires(kind: RecordKind, name: str) -> bool:
    return record_model(kind).model_fields[name].is_required()
