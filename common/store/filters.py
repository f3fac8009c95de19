"""Task filters: the named keyword filters and the Django-style filter dict.

``{"status__in": ["NEW", "REOPENED"], "assignee": None, "created_at__gte": "2026-01-01"}``
becomes one SQL ``WHERE`` clause over the tasks table; every key is ANDed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import ColumnElement, and_, or_, select, true

from common.enums import TaskStatus
from common.errors import InvalidInputError
from common.store.schema import datasets, tasks

__all__ = ["FILTER_FIELDS", "LOOKUPS", "compile_filters", "named_filters"]

# Public filter name -> tasks column name.
FILTER_FIELDS: dict[str, str] = {
    "uuid": "uuid",
    "data_hash": "data_hash",
    "data_title": "data_title",
    "dataset": "dataset_id",
    "data_collection": "dataset_id",
    "stage": "stage_uuid",
    "status": "status",
    "assignee": "assignee",
    "priority": "priority",
    "label_branch": "label_branch",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "last_actioned_by": "last_actioned_by",
    "attempts": "attempts",
}
LOOKUPS = ("exact", "in", "gte", "lte", "gt", "lt", "contains", "isnull")
# Fields whose values are numbers: a string there would be a database error, not a match.
_NUMBERS: dict[str, type[int] | type[float]] = {"priority": float, "attempts": int}
# Fields compared as text by ``contains``; ids and numbers only match whole values.
_DATES = TypeAdapter(datetime)
_DATE_FIELDS = frozenset({"created_at", "updated_at"})
_TEXT = frozenset(
    f for f, col in FILTER_FIELDS.items() if f not in _NUMBERS and f not in _DATE_FIELDS and col != "dataset_id"
)


def _coerce(field: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Enum):
        # str(TaskStatus.NEW) is "TaskStatus.NEW" on Python 3.11+; the value is what is stored.
        value = value.value
    if field in _NUMBERS:
        if isinstance(value, bool):
            raise InvalidInputError(f"filter on {field}: {value!r} is not a number; pass a number like 0.5")
        try:
            return _NUMBERS[field](value)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"filter on {field}: {value!r} is not a number; pass a number like 0.5") from e
    if field == "status":
        try:
            return TaskStatus(str(value).upper()).value
        except ValueError as e:
            valid = ", ".join(s.value for s in TaskStatus)
            raise InvalidInputError(f"unknown task status {value!r}; valid statuses: {valid}") from e
    if field in _DATE_FIELDS:
        try:
            parsed = _DATES.validate_python(value)
        except ValidationError as e:
            raise InvalidInputError(
                f"filter on {field}: {value!r} is not a date; use ISO 8601 like 2026-01-31T00:00:00Z"
            ) from e
        return parsed
    # UUID objects and the like compare as their text, as they are stored.
    return value if isinstance(value, str) else str(value)


def _dataset_clause(values: Sequence[Any]) -> ColumnElement[bool]:
    # A dataset may be named by id or by name.
    ids = select(datasets.c.id).where(or_(datasets.c.id.in_(values), datasets.c.name.in_(values)))
    return tasks.c.dataset_id.in_(ids)


def _one(key: str, value: Any) -> ColumnElement[bool]:
    field, _, lookup = key.partition("__")
    lookup = lookup or "exact"
    if field not in FILTER_FIELDS:
        raise InvalidInputError(
            f"unknown task filter field {field!r} in {key!r}; valid fields: {', '.join(FILTER_FIELDS)}"
        )
    if lookup not in LOOKUPS:
        raise InvalidInputError(
            f"unknown lookup {lookup!r} in {key!r}; valid lookups: {', '.join(LOOKUPS)} (as field__lookup)"
        )
    col = tasks.c[FILTER_FIELDS[field]]
    is_dataset = FILTER_FIELDS[field] == "dataset_id"
    if lookup == "isnull":
        if not isinstance(value, bool):
            raise InvalidInputError(f"filter {key!r} takes True or False, got {value!r}")
        return col.is_(None) if value else col.is_not(None)
    if lookup == "in":
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise InvalidInputError(f"filter {key!r} needs a list of values, got {value!r}")
        items = [_coerce(field, v) for v in value]
        return _dataset_clause(items) if is_dataset else col.in_(items)
    if lookup == "contains":
        if field not in _TEXT:
            raise InvalidInputError(
                f"filter {key!r}: contains applies to text fields only ({', '.join(sorted(_TEXT))}); "
                f"use {field}__in or {field} for whole values"
            )
        # Case-insensitive on every backend: SQLite's LIKE ignores ASCII case and
        # PostgreSQL's does not, so lower() both sides to get one behaviour.
        return col.icontains(str(value), autoescape=True)
    coerced = _coerce(field, value)
    if lookup == "exact":
        if coerced is None:
            return col.is_(None)
        return _dataset_clause([coerced]) if is_dataset else col == coerced
    if coerced is None or is_dataset:
        raise InvalidInputError(
            f"filter {key!r}: {lookup} compares with a value; pass one that is not None, on a field other than dataset"
        )
    ops: dict[str, ColumnElement[bool]] = {
        "gte": col >= coerced,
        "lte": col <= coerced,
        "gt": col > coerced,
        "lt": col < coerced,
    }
    return ops[lookup]


def compile_filters(filters: Mapping[str, Any] | None) -> tuple[ColumnElement[bool], int | None]:
    """Turn a Django-style filter dict into a WHERE clause and an optional limit.

    Raises:
        InvalidInputError: an unknown field or lookup, or a value of the wrong kind;
            the message lists the valid choices.
    """
    clauses: list[ColumnElement[bool]] = []
    limit: int | None = None
    for key, value in (filters or {}).items():
        if key == "limit":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInputError(f"filter 'limit' must be a positive integer, got {value!r}")
            limit = value
            continue
        clauses.append(_one(key, value))
    return (and_(*clauses) if clauses else true()), limit


_UNSET: Any = object()


def named_filters(
    *,
    status: TaskStatus | str | Sequence[TaskStatus | str] | None = None,
    assignee: str | Sequence[str] | None = _UNSET,
    data_hash: str | Sequence[str] | None = None,
    data_title: str | None = None,
    dataset: str | None = None,
) -> dict[str, Any]:
    """Translate the keyword filters of ``stage.get_tasks`` into a filter dict.

    ``assignee=None`` asks for unassigned tasks; leaving it out asks for all.
    """
    out: dict[str, Any] = {}
    if status is not None:
        out["status__in"] = [status] if isinstance(status, str) else list(status)
    if assignee is not _UNSET:
        if assignee is None:
            out["assignee__isnull"] = True
        else:
            out["assignee__in"] = [assignee] if isinstance(assignee, str) else list(assignee)
    if data_hash is not None:
        out["data_hash__in"] = [data_hash] if isinstance(data_hash, str) else [str(h) for h in data_hash]
    if data_title is not None:
        out["data_title__contains"] = data_title
    if dataset is not None:
        out["dataset"] = dataset
    return out


UNSET = _UNSET
