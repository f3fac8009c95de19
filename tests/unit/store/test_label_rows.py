"""Label rows: a version counter per data unit and branch, and a conflict on a stale save."""

from __future__ import annotations

import pytest

from common.errors import ConflictError
from common.sdk import Client
from common.store import ProjectRecord, Store
from common.workflow import Workflow
from tests.helpers import make_project


@pytest.fixture
def project(store: Store, seed_workflow: Workflow) -> ProjectRecord:
    return make_project(store, seed_workflow, ["a.jpg"])


def data_hash(store: Store, project: ProjectRecord) -> str:
    return next(iter(store.iter_tasks(project.id))).data_hash


def test_new_row_is_empty_and_each_save_bumps_the_version(store: Store, project: ProjectRecord) -> None:
    # Given a data unit with no labels yet
    h = data_hash(store, project)
    empty = store.get_label_row(project.id, h)
    assert (empty.objects, empty.version, empty.branch) == ([], 0, "main")
    # When it is saved twice
    first = store.save_label_row(empty.model_copy(update={"objects": [{"name": "apple"}]}))
    second = store.save_label_row(first.model_copy(update={"objects": [{"name": "apple"}, {"name": "leaf"}]}))
    # Then the version counts the saves and a fresh read sees the last one
    assert (first.version, second.version) == (1, 2)
    stored = store.get_label_row(project.id, h)
    assert stored.version == 2 and stored.objects == [{"name": "apple"}, {"name": "leaf"}]


def test_stale_save_is_a_conflict(store: Store, project: ProjectRecord) -> None:
    # Given two users who read the same row
    h = data_hash(store, project)
    store.save_label_row(store.get_label_row(project.id, h).model_copy(update={"objects": [{"name": "v1"}]}))
    mine, theirs = store.get_label_row(project.id, h), store.get_label_row(project.id, h)
    # When they save one after the other
    store.save_label_row(theirs.model_copy(update={"objects": [{"name": "theirs"}]}))
    # Then the second save is refused and the first one's labels stay
    with pytest.raises(ConflictError, match="saved by someone else; re-read it"):
        store.save_label_row(mine.model_copy(update={"objects": [{"name": "mine"}]}))
    assert store.get_label_row(project.id, h).objects == [{"name": "theirs"}]


def test_two_first_saves_conflict(store: Store, project: ProjectRecord) -> None:
    # Given two users who both read the row before it existed
    h = data_hash(store, project)
    a, b = store.get_label_row(project.id, h), store.get_label_row(project.id, h)
    # When both create it / Then the second is refused
    store.save_label_row(a.model_copy(update={"objects": [{"name": "a"}]}))
    with pytest.raises(ConflictError, match="was created meanwhile"):
        store.save_label_row(b.model_copy(update={"objects": [{"name": "b"}]}))


def test_branches_are_separate_rows(store: Store, project: ProjectRecord) -> None:
    # Given the SDK project
    sdk = Client(store).get_project("apples")
    h = data_hash(store, project)
    # When a branch is saved
    sdk.save_label_row(sdk.get_label_row(h, "consensus-1").model_copy(update={"objects": [{"name": "x"}]}))
    # Then main is untouched and each row has its own version
    rows = sdk.list_label_rows([h], "consensus-1") + sdk.list_label_rows([h])
    assert [(r.branch, r.version, r.objects) for r in rows] == [("consensus-1", 1, [{"name": "x"}]), ("main", 0, [])]
