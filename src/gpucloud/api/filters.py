"""`X-Filter`: Linode's JSON filter and sort header, parsed once and applied to list items.

    {"+and": [{"vcpus": {"+gte": 8}}, {"label": {"+contains": "RTX"}}], "+order_by": "label"}

Keys are filterable fields of the object (dotted for nested ones: `entity.id`); several keys
in one object are ANDed; `+and` / `+or` take lists of such objects and nest freely. A field's
value is either a plain value (equality) or an object of operators (`+gt +gte +lt +lte
+contains +neq`). `+order_by` / `+order` sort, `+limit` caps the result; linode_api4 puts
`+order_by` inside `+and` when it combines it with a filter, so it is accepted there too.

Filters run on the JSON shapes the API returns, so a filter means exactly what the client
sees. On a list-valued field (`tags`, `ipv4`, `capabilities`) every condition holds when
it holds for some element: equality means "contains", `+gt 1` means "some element above 1".
Comparisons only compare numbers with numbers and text with text (anything else does not
match); `+contains` is case-insensitive. `null` (or an empty header) is no filter. Anything
malformed or unfilterable is a 400 naming the `X-Filter` field, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gpucloud.errors import GpucloudError

MAX_DEPTH = 16
_COMPARISONS = {"+gt": lambda a, b: a > b, "+gte": lambda a, b: a >= b,
                "+lt": lambda a, b: a < b, "+lte": lambda a, b: a <= b}
_FIELD_OPERATORS = {*_COMPARISONS, "+contains", "+neq"}
_MISSING = object()

Predicate = Callable[[dict], bool]


class FilterError(GpucloudError):
    def __init__(self, reason: str):
        super().__init__(reason, field="X-Filter")


@dataclass(frozen=True)
class Filterable:
    """The fields a collection may be filtered and sorted on; `details.*` admits a subtree."""

    fields: frozenset[str]

    @classmethod
    def of(cls, *names: str) -> Filterable:
        return cls(frozenset(names))

    def allows(self, name: str) -> bool:
        if name in self.fields:
            return True
        return any(p.endswith(".*") and name.startswith(p[:-1]) for p in self.fields)


@dataclass(frozen=True)
class ListQuery:
    match: Predicate = lambda item: True
    order_by: str | None = None
    descending: bool | None = None  # None: the collection's default direction
    limit: int | None = None
    # top-level equality conditions, for queries that can narrow in the database first
    equalities: dict[str, Any] = field(default_factory=dict)

    def apply(self, items: Iterable[dict], *, default_descending: bool = False) -> list[dict]:
        """Filter, sort (stably, on top of the collection's default order) and limit."""
        out = [item for item in items if self.match(item)]
        order_by = self.order_by
        if order_by is not None:  # ties go by id, in the same direction
            reverse = bool(self.descending)
            out.sort(key=lambda item: (_sort_key(resolve(item, order_by)), _sort_key(resolve(item, "id"))),
                     reverse=reverse)
        elif self.descending is not None and self.descending != default_descending:
            out.reverse()
        return out[: self.limit] if self.limit is not None else out


NO_FILTER = ListQuery()


def parse(header: str | None, filterable: Filterable) -> ListQuery:
    """The X-Filter header (or None) as a ListQuery; FilterError when it is not usable."""
    if header is None or not header.strip():
        return NO_FILTER
    try:
        raw = json.loads(header)
    except (ValueError, RecursionError):
        raise FilterError("X-Filter is not valid JSON") from None
    if raw is None:
        return NO_FILTER
    if not isinstance(raw, dict):
        raise FilterError("X-Filter must be a JSON object")
    parser = _Parser(filterable)
    match = parser.conjunction(raw, depth=0, top=True)
    return ListQuery(match=match, order_by=parser.order_by, descending=parser.descending, limit=parser.limit,
                     equalities=parser.equalities)


class _Parser:
    def __init__(self, filterable: Filterable):
        self.filterable = filterable
        self.order_by: str | None = None
        self.descending: bool | None = None
        self.limit: int | None = None
        self.equalities: dict[str, Any] = {}

    def conjunction(self, obj: dict, *, depth: int, top: bool, in_or: bool = False) -> Predicate:
        """One filter object: all its conditions must hold. `top` covers the object itself and
        objects reached from it through `+and` only (where ordering keys may appear)."""
        if depth > MAX_DEPTH:
            raise FilterError("X-Filter is nested too deeply")
        parts: list[Predicate] = []
        for key, value in obj.items():
            if not isinstance(key, str):
                raise FilterError("X-Filter keys must be strings")
            if key in ("+and", "+or"):
                children = self._children(key, value, depth, top and key == "+and", in_or or key == "+or")
                parts.append(_all(children) if key == "+and" else _any(children))
            elif key in ("+order_by", "+order", "+limit"):
                if not top:
                    raise FilterError(f"{key} may not appear inside +or")
                self._ordering(key, value)
            elif key.startswith("+"):
                raise FilterError(f"Unknown operator {key}")
            else:
                if not self.filterable.allows(key):
                    raise FilterError(f"Cannot filter on {key}")
                parts.append(self._condition(key, value))
                if top and not in_or and _is_scalar(value):
                    self.equalities.setdefault(key, value)
        return _all(parts)

    def _children(self, key: str, value: Any, depth: int, top: bool, in_or: bool) -> list[Predicate]:
        if not isinstance(value, list) or not value:
            raise FilterError(f"{key} must be a non-empty list of filter objects")
        if not all(isinstance(v, dict) for v in value):
            raise FilterError(f"{key} must be a list of filter objects")
        return [self.conjunction(v, depth=depth + 1, top=top, in_or=in_or) for v in value]

    def _ordering(self, key: str, value: Any) -> None:
        if key == "+order_by":
            if not isinstance(value, str) or not self.filterable.allows(value):
                raise FilterError(f"Cannot order by {value}")
            self.order_by = value
        elif key == "+order":
            if value not in ("asc", "desc"):
                raise FilterError("+order must be asc or desc")
            self.descending = value == "desc"
        else:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FilterError("+limit must be a positive integer")
            self.limit = value

    def _condition(self, name: str, value: Any) -> Predicate:
        if _is_scalar(value):
            return lambda item: _equals(resolve(item, name), value)
        if not isinstance(value, dict) or not value:
            raise FilterError(f"Invalid filter value for {name}")
        checks: list[Predicate] = []
        for op, operand in value.items():
            if op not in _FIELD_OPERATORS:
                raise FilterError(f"Unknown operator {op} for {name}")
            checks.append(_operator(name, op, operand))
        return _all(checks)


def _operator(name: str, op: str, operand: Any) -> Predicate:
    if op == "+neq":
        if not _is_scalar(operand):
            raise FilterError(f"+neq on {name} needs a plain value")
        return lambda item: not _equals(resolve(item, name), operand)
    if op == "+contains":
        if not isinstance(operand, str):
            raise FilterError(f"+contains on {name} needs a string")
        needle = operand.lower()
        return lambda item: _contains(resolve(item, name), needle)
    if isinstance(operand, bool) or not isinstance(operand, (int, float, str)):
        raise FilterError(f"{op} on {name} needs a number")
    compare = _COMPARISONS[op]

    def check(actual: Any) -> bool:
        if isinstance(actual, list):
            return any(check(a) for a in actual)
        if isinstance(operand, str):
            return isinstance(actual, str) and compare(actual, operand)
        return isinstance(actual, (int, float)) and not isinstance(actual, bool) and compare(actual, operand)

    return lambda item: check(resolve(item, name))


def resolve(item: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(item, dict) or part not in item:
            return _MISSING
        item = item[part]
    return item


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _equals(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list):
        return any(_equals(a, expected) for a in actual)
    if actual is _MISSING:
        return False
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    if actual == expected:
        return True
    # "123" and 123 name the same id: clients send numbers as either
    if isinstance(actual, (int, float)) and isinstance(expected, str):
        return str(actual) == expected
    if isinstance(actual, str) and isinstance(expected, (int, float)):
        return actual == str(expected)
    return False


def _contains(actual: Any, needle: str) -> bool:
    if isinstance(actual, list):
        return any(_contains(a, needle) for a in actual)
    return isinstance(actual, str) and needle in actual.lower()


def _sort_key(value: Any) -> tuple:
    """Numbers before strings before lists, missing and null last; never a TypeError."""
    if value is _MISSING or value is None:
        return (3, 0)
    if isinstance(value, (int, float)):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    return (2, json.dumps(value, sort_keys=True, default=str))


def _all(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    return lambda item: all(p(item) for p in preds)


def _any(preds: list[Predicate]) -> Predicate:
    return lambda item: any(p(item) for p in preds)
