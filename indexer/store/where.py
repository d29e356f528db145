"""`where`: a small JSON filter language over a document's fields and metadata.

    {"and": [{"field": "metadata.year", "gte": 2020},
             {"or": [{"field": "tags", "in": ["hr", "legal"]},
                     {"not": {"field": "metadata.draft", "eq": true}}]}]}

A condition names a `field` and one operator:

    field                   operators
    source                  eq, in, prefix
    language, doc_id        eq, in
    key                     eq, in                      (the document's own key: a record's id, a path)
    tags                    eq, in, exists              (any of the document's tags)
    metadata.KEY[.KEY…]     eq, in, gt, gte, lt, lte, exists

`eq` and `in` take strings, numbers or booleans and match a scalar equal to
one of them or a list holding one; `gt`, `gte`, `lt` and `lte` take a number
or an ISO 8601 date (`"2024-05-01"`, `"2024-05-01T09:00:00+09:00"`) and
compare a scalar of the same kind (dates compare as text, so store them in
one ISO form); `exists` takes true or false.

Conditions are three-valued, as in SQL and Milvus: a condition on a metadata
key a document lacks (or holds null), and a range on a value of another kind,
is *unknown*; `not` of unknown is unknown, and only true keeps a document.
So `{"not": {"field": "metadata.year", "gte": 2020}}` keeps the documents with
an earlier year, not those without one (add `{"not": {"field":
"metadata.year", "exists": true}}` in an `or` for those).

`parse` checks a filter and names the place of any mistake
(`where.and[1].gte: …`); the parsed tree compiles to a SQL condition over
`documents d` (`to_sql`), to a Milvus expression over the chunk collection
(`to_milvus`), and evaluates against a document in Python (`evaluate`), with
the same meaning in all three.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from indexer.errors import InputError
from indexer.store.identity import document_id
from indexer.text.normalize import tag_form

OPERATORS = ("eq", "in", "gt", "gte", "lt", "lte", "exists", "prefix")
RANGES = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
FIELD_OPERATORS = {
    "source": ("eq", "in", "prefix"),
    "language": ("eq", "in"),
    "doc_id": ("eq", "in"),
    "key": ("eq", "in"),
    "tags": ("eq", "in", "exists"),
}
METADATA_OPERATORS = ("eq", "in", "gt", "gte", "lt", "lte", "exists")
MAX_DEPTH = 16
MAX_CONDITIONS = 200
MAX_IN = 1000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # the whole numbers SQLite holds
_KEY = re.compile(r"[A-Za-z0-9_\-\u0080-\U0010ffff]+")

Scalar = str | int | float | bool


class FilterError(InputError):
    """A filter that cannot be used; `path` names where in it (e.g. `where.and[1].field`)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason, field=path)
        self.path, self.reason = path, reason


@dataclass(frozen=True)
class Condition:
    field: str          # "source", "language", "doc_id", "tags" or "metadata.a.b"
    op: str
    value: Any          # a scalar, a tuple of scalars (in) or a bool (exists)

    @property
    def keys(self) -> tuple[str, ...]:
        """The metadata keys of a `metadata.…` field."""
        return tuple(self.field.split(".")[1:])


@dataclass(frozen=True)
class All:
    parts: tuple[Where, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Where, ...]


@dataclass(frozen=True)
class Not:
    part: Where


Where = Condition | All | AnyOf | Not


def both(*filters: Where | None) -> Where | None:
    """The filters that all must hold (None when there is none)."""
    present = tuple(f for f in filters if f is not None)
    if not present:
        return None
    return present[0] if len(present) == 1 else All(present)


# ---------------------------------------------------------------- parsing


def parse(data: Any, path: str = "where") -> Where:
    """A checked filter tree from its JSON form; `FilterError` names the place of a mistake."""
    counter = [0]
    return _parse(data, path, 0, counter)


def parse_json(text: str, path: str = "where") -> Where:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FilterError(path, f"not JSON: {exc}") from exc
    return parse(data, path)


def _parse(data: Any, path: str, depth: int, counter: list[int]) -> Where:
    if depth > MAX_DEPTH:
        raise FilterError(path, f"nested deeper than {MAX_DEPTH} levels")
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise FilterError(path, f"more than {MAX_CONDITIONS} conditions")
    if not isinstance(data, Mapping):
        raise FilterError(path, f"expected an object, got {_kind(data)}")
    for combinator in ("and", "or"):
        if combinator in data:
            _only(data, (combinator,), path)
            parts = data[combinator]
            if not isinstance(parts, list) or not parts:
                raise FilterError(f"{path}.{combinator}", "expected a non-empty list of filters")
            parsed = tuple(_parse(p, f"{path}.{combinator}[{i}]", depth + 1, counter) for i, p in enumerate(parts))
            return All(parsed) if combinator == "and" else AnyOf(parsed)
    if "not" in data:
        _only(data, ("not",), path)
        return Not(_parse(data["not"], f"{path}.not", depth + 1, counter))
    if "field" not in data:
        raise FilterError(path, "expected `field` with an operator, or `and`, `or` or `not`")
    field = data["field"]
    if not isinstance(field, str):
        raise FilterError(f"{path}.field", f"expected a string, got {_kind(field)}")
    allowed = _field_operators(field, f"{path}.field")
    operators = [key for key in data if key != "field"]
    if len(operators) != 1:
        raise FilterError(path, f"expected exactly one operator ({', '.join(allowed)}) beside `field`, "
                                f"got {', '.join(map(repr, operators)) or 'none'}")
    op = operators[0]
    if op not in OPERATORS:
        raise FilterError(f"{path}.{op}", f"unknown operator; use one of {', '.join(OPERATORS)}")
    if op not in allowed:
        raise FilterError(f"{path}.{op}", f"not available on {field!r}; use one of {', '.join(allowed)}")
    value = _value(op, field, data[op], f"{path}.{op}")
    if field == "key":  # a key names its document through the id it hashes to: one column in every store
        return Condition("doc_id", op, tuple(map(_key_id, value)) if op == "in" else _key_id(value))
    return Condition(field, op, value)


def _key_id(key: Any) -> str:
    return document_id(str(key))


def check_field(field: str, path: str) -> str:
    """A field name a filter or facet may use; FilterError otherwise."""
    _field_operators(field, path)
    return field


def _field_operators(field: str, path: str) -> tuple[str, ...]:
    if field in FIELD_OPERATORS:
        return FIELD_OPERATORS[field]
    head, _, rest = field.partition(".")
    if head != "metadata" or not rest:
        raise FilterError(path, f"unknown field {field!r}; use source, language, doc_id, key, tags or metadata.KEY")
    for key in rest.split("."):
        if not _KEY.fullmatch(key):
            raise FilterError(path, f"metadata key {key!r} may hold letters, digits, '_' and '-' only")
    if rest == "tags":
        return FIELD_OPERATORS["tags"]
    return METADATA_OPERATORS


def _value(op: str, field: str, value: Any, path: str) -> Any:
    if op == "exists":
        if not isinstance(value, bool):
            raise FilterError(path, f"expected true or false, got {_kind(value)}")
        return value
    if op == "in":
        if not isinstance(value, list) or not value:
            raise FilterError(path, "expected a non-empty list")
        if len(value) > MAX_IN:
            raise FilterError(path, f"more than {MAX_IN} values")
        return tuple(_scalar(field, v, f"{path}[{i}]") for i, v in enumerate(value))
    if op == "eq":
        return _scalar(field, value, path)
    if op == "prefix":
        if not isinstance(value, str) or not value:
            raise FilterError(path, "expected a non-empty string")
        return value
    # a range
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FilterError(path, f"expected a number or an ISO 8601 date, got {_kind(value)}")
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            raise FilterError(path, f"{value!r} is neither a number nor an ISO 8601 date "
                                    f"(e.g. 2024-05-01 or 2024-05-01T09:00:00+09:00)") from None
    return _in_range(value, path)


def _scalar(field: str, value: Any, path: str) -> Scalar:
    text_only = field in FIELD_OPERATORS or field == "metadata.tags"
    if text_only and not isinstance(value, str):
        raise FilterError(path, f"{field} holds text: expected a string, got {_kind(value)}")
    if not isinstance(value, str | int | float | bool):
        raise FilterError(path, f"expected a string, number or boolean, got {_kind(value)}")
    if isinstance(value, float) and value != value:
        raise FilterError(path, "NaN matches nothing")
    if field in ("tags", "metadata.tags"):
        return tag_form(str(value))  # as documents keep their tags (`indexer.text.loaders`)
    return _in_range(value, path)


def _in_range(value: Scalar, path: str) -> Scalar:
    """A whole number SQLite can hold (64 bits, signed); it stores larger ones only as text or floats."""
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        raise FilterError(path, f"whole numbers run from {INT64_MIN} to {INT64_MAX}; "
                                f"write a larger one as a decimal (e.g. {float(value):.1e})")
    return value


def _only(data: Mapping[str, Any], keys: Sequence[str], path: str) -> None:
    extra = [k for k in data if k not in keys]
    if extra:
        raise FilterError(path, f"{keys[0]!r} cannot be combined with {', '.join(map(repr, extra))} in one object")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__)


def to_json(where: Where) -> Any:
    """The JSON form of a parsed filter (`parse(to_json(w)) == w`)."""
    if isinstance(where, All):
        return {"and": [to_json(p) for p in where.parts]}
    if isinstance(where, AnyOf):
        return {"or": [to_json(p) for p in where.parts]}
    if isinstance(where, Not):
        return {"not": to_json(where.part)}
    value = list(where.value) if isinstance(where.value, tuple) else where.value
    return {"field": where.field, where.op: value}


# ---------------------------------------------------------------- evaluation in Python


def evaluate(where: Where, doc_id: str, source: str, language: str, metadata: Mapping[str, Any]) -> bool:
    """True when a document passes the filter (unknown does not pass)."""
    return _eval(where, {"doc_id": doc_id, "source": source, "language": language}, metadata) is True


def _eval(where: Where, fields: dict[str, str], metadata: Mapping[str, Any]) -> bool | None:
    if isinstance(where, Not):
        inner = _eval(where.part, fields, metadata)
        return None if inner is None else not inner
    if isinstance(where, All | AnyOf):
        values = [_eval(p, fields, metadata) for p in where.parts]
        decided = isinstance(where, AnyOf)  # the value that decides: any True for or, any False for and
        if decided in values:
            return decided
        return None if None in values else not decided
    if where.field in fields:
        own = fields[where.field]
        if where.op == "prefix":
            return own.startswith(where.value)
        return own in (where.value if where.op == "in" else (where.value,))
    if where.field in ("tags", "metadata.tags"):
        tags = metadata.get("tags")
        tags = [str(t) for t in tags] if isinstance(tags, list) else []
        if where.op == "exists":
            return bool(tags) == where.value
        return any(t in (where.value if where.op == "in" else (where.value,)) for t in tags)
    value: Any = metadata
    for key in where.keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    if where.op == "exists":
        return (value is not None) == where.value
    if value is None:
        return None
    if where.op in ("eq", "in"):
        wanted = where.value if where.op == "in" else (where.value,)
        items = value if isinstance(value, list) else [value]
        return any(_same(item, w) for item in items for w in wanted)
    if isinstance(where.value, str):
        if not isinstance(value, str):
            return None
    elif isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return {"gt": value > where.value, "gte": value >= where.value,
            "lt": value < where.value, "lte": value <= where.value}[where.op]


def _same(item: Any, wanted: Scalar) -> bool:
    if isinstance(wanted, bool) or isinstance(item, bool):
        return isinstance(item, bool) and isinstance(wanted, bool) and item == wanted
    if isinstance(wanted, str) or isinstance(item, str):
        return item == wanted
    return isinstance(item, int | float) and item == wanted


# ---------------------------------------------------------------- SQLite


def to_sql(where: Where) -> tuple[str, list[Any]]:
    """A SQL condition over `documents d` (true, false or NULL for unknown), with its parameters."""
    if isinstance(where, Not):
        sql, params = to_sql(where.part)
        return f"(NOT {sql})", params
    if isinstance(where, All | AnyOf):
        compiled = [to_sql(p) for p in where.parts]
        joiner = " AND " if isinstance(where, All) else " OR "
        return "(" + joiner.join(s for s, _ in compiled) + ")", [p for _, ps in compiled for p in ps]
    if where.field in ("source", "language", "doc_id"):
        column = "d.id" if where.field == "doc_id" else f"d.{where.field}"
        if where.op == "prefix":
            return f"(substr({column}, 1, ?) = ?)", [len(where.value), where.value]
        values = where.value if where.op == "in" else (where.value,)
        return f"({column} IN ({','.join('?' * len(values))}))", list(values)
    if where.field in ("tags", "metadata.tags"):
        if where.op == "exists":
            sql = "EXISTS (SELECT 1 FROM doc_tags t WHERE t.doc_id = d.id)"
            return (f"({sql})" if where.value else f"(NOT {sql})"), []
        values = where.value if where.op == "in" else (where.value,)
        marks = ",".join("?" * len(values))
        return f"(EXISTS (SELECT 1 FROM doc_tags t WHERE t.doc_id = d.id AND t.tag IN ({marks})))", list(values)
    path = "$" + "".join(f'."{key}"' for key in where.keys)
    kind = "coalesce(json_type(d.metadata, ?), 'null')"
    if where.op == "exists":
        return f"({kind} {'!=' if where.value else '='} 'null')", [path]
    if where.op in ("eq", "in"):
        values = where.value if where.op == "in" else (where.value,)
        # by kind, each kind one IN list (a test per value nests too deep for SQLite past ~350 values):
        # JSON true/false, text, numbers (a number never equals a text)
        flags = sorted({"true" if value else "false" for value in values if isinstance(value, bool)})
        texts = [value for value in values if isinstance(value, str)]
        numbers = [value for value in values if not isinstance(value, bool | str)]
        item_tests: list[str] = []
        item_params: list[Any] = []
        scalar_tests: list[str] = []
        scalar_params: list[Any] = []
        if flags:
            listed = ", ".join(f"'{flag}'" for flag in flags)
            item_tests.append(f"j.type IN ({listed})")
            scalar_tests.append(f"{kind} IN ({listed})")
            scalar_params.append(path)
        for group, kinds in ((texts, "('text')"), (numbers, "('integer', 'real')")):
            if group:
                marks = ",".join("?" * len(group))
                item_tests.append(f"(j.type IN {kinds} AND j.value IN ({marks}))")
                item_params += group
                scalar_tests.append(f"({kind} IN {kinds} AND json_extract(d.metadata, ?) IN ({marks}))")
                scalar_params += [path, path, *group]
        # a scalar (the common case) is compared directly; only a list is walked with json_each
        any_item = f"EXISTS (SELECT 1 FROM json_each(d.metadata, ?) j WHERE {' OR '.join(item_tests)})"
        return (f"(CASE {kind} WHEN 'null' THEN NULL WHEN 'array' THEN {any_item} "
                f"ELSE ({' OR '.join(scalar_tests)}) END)", [path, path, *item_params, *scalar_params])
    kinds = "('text')" if isinstance(where.value, str) else "('integer', 'real')"
    return (f"(CASE WHEN json_type(d.metadata, ?) IN {kinds} "
            f"THEN json_extract(d.metadata, ?) {RANGES[where.op]} ? END)", [path, path, where.value])


# ---------------------------------------------------------------- Milvus


def to_milvus(where: Where) -> str:
    """A Milvus filter expression over the chunk collection (`source`, `language`, `doc_id`, `tags`, `metadata`)."""
    if isinstance(where, Not):
        return f"(not {to_milvus(where.part)})"
    if isinstance(where, All | AnyOf):
        joiner = " and " if isinstance(where, All) else " or "
        return "(" + joiner.join(to_milvus(p) for p in where.parts) + ")"
    if where.field in ("source", "language", "doc_id"):
        if where.op == "prefix":
            return milvus_prefix(where.field, where.value)
        values = where.value if where.op == "in" else (where.value,)
        return f"({where.field} in [{', '.join(milvus_literal(v) for v in values)}])"
    if where.field in ("tags", "metadata.tags"):
        if where.op == "exists":
            return f"(array_length(tags) {'>' if where.value else '=='} 0)"
        values = where.value if where.op == "in" else (where.value,)
        return f"array_contains_any(tags, [{', '.join(milvus_literal(v) for v in values)}])"
    field = "metadata" + "".join(f"[{milvus_literal(key)}]" for key in where.keys)
    if where.op == "exists":
        return f"({'' if where.value else 'not '}exists {field})"
    if where.op in ("eq", "in"):
        values = where.value if where.op == "in" else (where.value,)
        literals = ", ".join(milvus_literal(v) for v in values)
        equal = " or ".join(f"{field} == {milvus_literal(v)}" for v in values)
        return f"({equal} or json_contains_any({field}, [{literals}]))"
    return f"({field} {RANGES[where.op]} {milvus_literal(where.value)})"


def milvus_literal(value: Scalar) -> str:
    """A Milvus expression literal holding `value` exactly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def milvus_prefix(field: str, value: str) -> str:
    """A Milvus condition: `field` starts with `value`, every character of it taken literally.

    Written as the range [value, next string with another prefix) rather than a
    `like` pattern: Milvus (server and Lite) reads a backslash in a pattern as an
    escape on one evaluation path and as itself on another, so no escaping of
    `\\`, `%` and `_` holds on both. Strings compare by code point (UTF-8 bytes).
    """
    upper = _prefix_successor(value)
    lower = f"{field} >= {milvus_literal(value)}"
    return f"({lower})" if upper is None else f"({lower} and {field} < {milvus_literal(upper)})"


def _prefix_successor(value: str) -> str | None:
    """The least string greater than every string that starts with `value` (None: there is none)."""
    while value:
        last = ord(value[-1])
        if last < 0x10FFFF:
            following = 0xE000 if 0xD800 <= last + 1 <= 0xDFFF else last + 1  # surrogates are not characters
            return value[:-1] + chr(following)
        value = value[:-1]
    return None
