"""The store: projects, workflows, data, users, tasks, labels, events and runs."""

from common.store.filters import FILTER_FIELDS, LOOKUPS, compile_filters
from common.store.lifecycle import ActionRequest
from common.store.records import (
    DataFile,
    DataUnit,
    EventRecord,
    LabelRow,
    ProjectRecord,
    RunRecord,
    SubtaskRecord,
    TaskRecord,
    UserRecord,
)
from common.store.store import Store

__all__ = [
    "FILTER_FIELDS",
    "LOOKUPS",
    "ActionRequest",
    "DataFile",
    "DataUnit",
    "EventRecord",
    "LabelRow",
    "ProjectRecord",
    "RunRecord",
    "Store",
    "SubtaskRecord",
    "TaskRecord",
    "UserRecord",
    "compile_filters",
]
