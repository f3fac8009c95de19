"""Workflow files: loading YAML and JSON, stable UUIDs, routers hidden, and every validation problem."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from common.enums import StageType
from common.errors import InvalidInputError, NotFoundError, WorkflowDefinitionError
from common.sdk import AgentStage, Client, ReviewStage
from common.store import Store
from common.workflow import load_workflow, parse_workflow
from tests.conftest import FIXTURES
from tests.helpers import make_project

GOOD_TAIL = """
  - title: Review 1
    type: review
    pathways: {approve: Complete, reject: Annotate 1}
  - title: Complete
    type: complete
"""


def write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_and_json_give_the_same_graph() -> None:
    # Given the seed workflow as YAML and as JSON
    # When both are loaded
    from_yaml = load_workflow(FIXTURES / "apples.yaml")
    from_json = load_workflow(FIXTURES / "apples.json")
    # Then they are the same graph, with the same UUIDs
    assert from_yaml.to_dict() == from_json.to_dict()
    assert from_yaml.start.title == "Annotate 1"
    assert [p.name for p in from_yaml.stage("Review 1").pathways] == ["approve", "reject"]


def test_uuids_are_stable_across_loads_and_round_trips() -> None:
    # Given the same file loaded twice, and once re-read from its exported form
    first = load_workflow(FIXTURES / "pipeline.yaml")
    second = load_workflow(FIXTURES / "pipeline.yaml")
    again = parse_workflow(json.loads(json.dumps(first.to_dict())))
    # Then every stage and pathway keeps its UUID
    ids = {s.title: (s.uuid, [p.uuid for p in s.pathways]) for s in first.stages.values()}
    assert ids == {s.title: (s.uuid, [p.uuid for p in s.pathways]) for s in second.stages.values()}
    assert ids == {s.title: (s.uuid, [p.uuid for p in s.pathways]) for s in again.stages.values()}
    assert len({u for u, _ in ids.values()}) == len(ids)


def _with_uuids(stage_id: str, path_id: str) -> str:
    """A workflow whose first stage and its pathway have the UUIDs given."""
    return f"""
name: Fixed
start: Annotate 1
stages:
  - title: Annotate 1
    type: annotation
    uuid: {stage_id}
    pathways: {{submit: {{to: Review 1, uuid: {path_id}}}}}
{GOOD_TAIL}"""


def test_uuids_given_in_the_file_are_kept(tmp_path: Path) -> None:
    # Given a file that fixes a stage's and a pathway's UUID
    stage_id, path_id = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
    # When it is loaded
    wf = load_workflow(write(tmp_path, _with_uuids(stage_id, path_id)))
    # Then those UUIDs are used
    assert wf.start.uuid == stage_id
    assert wf.start.pathways[0].uuid == path_id


def test_uuids_written_in_upper_case_are_kept_as_tasks_and_results_spell_them(tmp_path: Path) -> None:
    # Given a file that writes a stage's and a pathway's UUID in upper case
    stage_id, path_id = "AAAAAAAA-1111-4111-8111-111111111111", "BBBBBBBB-2222-4222-8222-222222222222"
    # When it is loaded
    wf = load_workflow(write(tmp_path, _with_uuids(stage_id, path_id)))
    # Then they are stored as str(UUID) writes them, which is what specs and results carry
    assert wf.start.uuid == str(uuid.UUID(stage_id)) == stage_id.lower()
    assert wf.start.pathways[0].uuid == path_id.lower()
    # And either spelling finds the stage and the pathway
    assert wf.stage(stage_id) is wf.stage(stage_id.lower()) is wf.start
    assert wf.start.pathway(path_id).uuid == path_id.lower()


def test_a_uuid_that_is_not_one_is_refused_with_how_to_write_it(tmp_path: Path) -> None:
    # Given a stage whose uuid is not a UUID
    text = f"""
name: Typo
start: Annotate 1
stages:
  - title: Annotate 1
    type: annotation
    uuid: stage-one
    pathways: {{submit: Review 1}}
{GOOD_TAIL}"""
    # When it is loaded, Then the error names the value and the form to use
    with pytest.raises(InvalidInputError, match=r"uuid 'stage-one' is not a UUID; write it as 32 hex digits"):
        load_workflow(write(tmp_path, text))


def test_routers_are_hidden_from_users(store: Store) -> None:
    # Given a project whose workflow has a percentage router and a user router
    wf = load_workflow(FIXTURES / "pipeline.yaml")
    make_project(store, wf, ["a.jpg"], name="pipeline")
    project = Client(store).get_project("pipeline")
    # When its stages are listed
    titles = [s.title for s in project.workflow.stages]
    # Then the routers are not among them and cannot be fetched as stages
    assert titles == ["Triage", "Annotate fast", "Annotate careful", "Review", "Complete", "Archive"]
    assert all(not s.type.is_router for s in project.workflow.stages)
    with pytest.raises(NotFoundError, match="'Split' is a router"):
        project.workflow.get_stage(name="Split")
    assert isinstance(project.workflow.get_stage(name="Triage"), AgentStage)


def test_get_stage_by_uuid_checks_the_type(store: Store) -> None:
    # Given the seed project
    wf = load_workflow(FIXTURES / "apples.yaml")
    make_project(store, wf, ["a.jpg"])
    project = Client(store).get_project("apples")
    review_id = wf.stage("Review 1").uuid
    # When stages are fetched by UUID, with the right and the wrong type, and by an unknown name
    review = project.workflow.get_stage(uuid=review_id, type_=ReviewStage)
    # Then the right one comes back and the mistakes are named
    assert review.title == "Review 1"
    with pytest.raises(InvalidInputError, match="'Review 1' is a ReviewStage, not a AgentStage"):
        project.workflow.get_stage(uuid=review_id, type_=AgentStage)
    with pytest.raises(NotFoundError, match="no stage 'Annotate 9'; stages: 'Annotate 1', 'Review 1', 'Complete'"):
        project.workflow.get_stage(name="Annotate 9")


def test_stage_fields_are_compiled() -> None:
    # Given the pipeline workflow
    wf = load_workflow(FIXTURES / "pipeline.yaml")
    # When its stages are read
    triage, careful, who = wf.stage("Triage"), wf.stage("Annotate careful"), wf.stage("Who")
    # Then types, certifications, on_failure and router pathways are as written
    assert triage.type is StageType.AGENT and triage.on_failure == triage.pathway("broken").uuid
    assert careful.certifications == ("medical", "polygons")
    assert who.pathway("seniors").users == ("senior@acme.com",)
    assert [p.percentage for p in wf.stage("Split").pathways] == [30, 70]


BAD_WORKFLOWS = [
    pytest.param(
        "name: X\nstart: Annotate 1\nstages:\n  - title: Annotate 1\n    type: annotation\n"
        "    pathways: {submit: Reveiw 1}\n" + GOOD_TAIL,
        ["stage 'Annotate 1'", "pathway 'submit' goes to unknown stage 'Reveiw 1'"],
        id="unknown-destination",
    ),
    pytest.param(
        "name: X\nstart: Annotate 1\nstages:\n  - title: Annotate 1\n    type: annotation\n"
        "    pathways: {submit: Review 1}\n  - title: Orphan\n    type: annotation\n"
        "    pathways: {submit: Review 1}\n" + GOOD_TAIL,
        ["stage 'Orphan'", "unreachable from the start stage 'Annotate 1'"],
        id="unreachable-stage",
    ),
    pytest.param(
        "name: X\nstart: Annotate 1\nstages:\n  - title: Annotate 1\n    type: annotation\n"
        "    pathways: {submit: Review 1}\n  - title: Review 1\n    type: review\n"
        "    pathways: {approve: Annotate 1, reject: Annotate 1}\n",
        ["no final stage", "add a stage of type 'complete' or 'archive'"],
        id="no-final-stage",
    ),
    pytest.param(
        "name: X\nstart: Annotate 1\nstages:\n  - title: Annotate 1\n    type: annotation\n"
        "    pathways: {submit: Review 1}\n  - title: Annotate 1\n    type: annotation\n"
        "    pathways: {submit: Review 1}\n" + GOOD_TAIL,
        ["stage 'Annotate 1'", "duplicate stage title"],
        id="duplicate-stage-title",
    ),
    pytest.param(
        "name: X\nstart: Annotate 1\nstages:\n  - title: Annotate 1\n    type: annotation\n"
        "    pathways:\n      - {name: submit, to: Review 1}\n      - {name: submit, to: Complete}\n" + GOOD_TAIL,
        ["stage 'Annotate 1'", "pathway name 'submit' appears twice"],
        id="duplicate-pathway-name-in-list",
    ),
    pytest.param(
        "name: X\nstart: Split\nstages:\n  - title: Split\n    type: percentage_router\n    pathways:\n"
        "      a: {to: Annotate 1, percentage: 60}\n      b: {to: Review 1, percentage: 30}\n"
        "  - title: Annotate 1\n    type: annotation\n    pathways: {submit: Review 1}\n" + GOOD_TAIL,
        ["stage 'Split'", "router percentages sum to 90, not 100"],
        id="percentages-not-100",
    ),
    pytest.param(
        "name: X\nstart: Split\nstages:\n  - title: Split\n    type: percentage_router\n    pathways:\n"
        "      a: {to: Annotate 1, percentage: 150}\n      b: {to: Review 1, percentage: -50}\n"
        "  - title: Annotate 1\n    type: annotation\n    pathways: {submit: Review 1}\n" + GOOD_TAIL,
        ["stage 'Split'", "between 0 and 100"],
        id="percentage-out-of-range",
    ),
    pytest.param(
        "name: X\nstart: Split\nstages:\n  - title: Split\n    type: percentage_router\n    pathways:\n"
        "      a: Annotate 1\n  - title: Annotate 1\n    type: annotation\n    pathways: {submit: Review 1}\n"
        + GOOD_TAIL,
        ["stage 'Split'", "needs a 'percentage'"],
        id="percentage-missing",
    ),
    pytest.param(
        "name: X\nstart: Annotate 1\nstages:\n  - title: Annotate 1\n    type: annotation\n"
        "    pathways: {submit: Review 1}\n  - title: Review 1\n    type: review\n"
        "    pathways: {approve: Complete}\n  - title: Complete\n    type: complete\n",
        ["stage 'Review 1'", "a review stage needs a pathway named 'reject'"],
        id="review-without-reject",
    ),
    pytest.param(
        "name: X\nstart: Annotate 1\nstages:\n  - title: Annotate 1\n    type: annotation\n"
        "    pathways: {submit: Review 1}\n  - title: Review 1\n    type: review\n"
        "    pathways: {ok: Complete, reject: Annotate 1}\n  - title: Complete\n    type: complete\n",
        ["stage 'Review 1'", "a review stage needs a pathway named 'approve'"],
        id="review-without-approve",
    ),
    pytest.param(
        "name: X\nstart: A\nstages:\n  - title: A\n    type: percentage_router\n"
        "    pathways: {x: {to: B, percentage: 100}}\n  - title: B\n    type: user_router\n"
        "    pathways: {back: A}\n  - title: Complete\n    type: complete\n",
        ["stage 'A'", "routers loop back to it (A -> B -> A)"],
        id="router-loop",
    ),
    pytest.param(
        "name: X\nstart: Who\nstages:\n  - title: Who\n    type: user_router\n"
        "    pathways: {x: {to: Complete, users: [a@b.c]}}\n  - title: Complete\n    type: complete\n",
        ["stage 'Who'", "needs one pathway without 'users' as the default"],
        id="user-router-without-default",
    ),
    pytest.param(
        "name: X\nstart: C\nstages:\n  - title: C\n    type: consensus_annotation\n"
        "    pathways: {submit: Complete}\n  - title: Complete\n    type: complete\n",
        ["stage 'C'", "needs 'annotators: N' with N >= 2"],
        id="consensus-without-annotators",
    ),
    pytest.param(
        "name: X\nstart: Annotate 1\nstages:\n  - title: Annotate 1\n    type: annotaton\n"
        "    pathways: {submit: Review 1}\n" + GOOD_TAIL,
        ["stage 'Annotate 1' (stages[0]) type", "'annotation'"],
        id="unknown-stage-type",
    ),
    pytest.param(
        "name: X\nstart: Nowhere\nstages:\n  - title: Annotate 1\n    type: annotation\n"
        "    pathways: {submit: Review 1}\n" + GOOD_TAIL,
        ["start: unknown stage 'Nowhere'"],
        id="unknown-start",
    ),
    pytest.param(
        "name: X\nstart: Annotate 1\nstages:\n  - title: Annotate 1\n    type: annotation\n"
        "    pathways: {submit: Review 1}\n  - title: Review 1\n    type: review\n"
        "    pathways: {approve: Complete, reject: Annotate 1}\n  - title: Complete\n    type: complete\n"
        "    pathways: {again: Annotate 1}\n",
        ["stage 'Complete'", "a final stage has no pathways"],
        id="final-with-pathways",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_WORKFLOWS)
def test_invalid_workflow_names_file_stage_and_problem(tmp_path: Path, text: str, expected: list[str]) -> None:
    # Given a workflow file with one mistake
    path = write(tmp_path, text)
    # When it is loaded
    with pytest.raises(WorkflowDefinitionError) as caught:
        load_workflow(path)
    # Then the message names the file, the stage and the problem
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid workflow")
    for part in expected:
        assert part in message, message
    assert caught.value.source == str(path)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    # Given a file with three independent mistakes
    text = (
        "name: X\nstart: A\nstages:\n  - title: A\n    type: annotation\n    pathways: {submit: Nowhere}\n"
        "  - title: R\n    type: review\n    pathways: {approve: A}\n"
    )
    # When it is loaded
    with pytest.raises(WorkflowDefinitionError) as caught:
        load_workflow(write(tmp_path, text))
    # Then all of them are listed, not only the first
    assert len(caught.value.problems) == 3
    assert "3 problem(s)" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "name: X\nstages: [\n", "not valid YAML"),
        ("bad.json", '{"name": "X", "stages": [}', "not valid JSON"),
        ("dup.yaml", "name: X\nname: Y\nstart: A\nstages: []\n", "duplicate key 'name'"),
        ("dup.json", '{"name": "X", "name": "Y"}', "duplicate key 'name'"),
        ("list.yaml", "- just\n- a list\n", "holds a mapping with 'name', 'start' and 'stages'"),
    ],
)
def test_unreadable_files_are_named(tmp_path: Path, name: str, text: str, message: str) -> None:
    # Given a file that is not a workflow mapping / When it is loaded / Then the error names the file and the problem
    path = write(tmp_path, text, name)
    with pytest.raises(InvalidInputError, match=message) as caught:
        load_workflow(path)
    assert str(path) in str(caught.value)


def test_duplicate_pathway_key_in_yaml_is_refused(tmp_path: Path) -> None:
    # Given a stage that names its "submit" pathway twice (YAML would keep only the last)
    text = (
        "name: X\nstart: Annotate 1\nstages:\n  - title: Annotate 1\n    type: annotation\n"
        "    pathways:\n      submit: Review 1\n      submit: Complete\n" + GOOD_TAIL
    )
    # When it is loaded / Then it is refused, with the line
    with pytest.raises(InvalidInputError, match=r"(?s)duplicate key 'submit'.*line 8"):
        load_workflow(write(tmp_path, text))


def test_missing_file_says_to_check_the_path(tmp_path: Path) -> None:
    # Given a path with no file / When it is loaded / Then the error names it and the fix
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InvalidInputError, match=f"{missing}: cannot read workflow file.*check the path"):
        load_workflow(missing)


def test_percentages_that_add_up_only_after_rounding_are_accepted() -> None:
    # Given a three-way split written with one decimal
    pathways = {n: {"to": "Complete", "percentage": p} for n, p in (("a", 33.3), ("b", 33.3), ("c", 33.4))}
    data = {
        "name": "Thirds",
        "start": "Split",
        "stages": [
            {"title": "Split", "type": "percentage_router", "pathways": pathways},
            {"title": "Complete", "type": "complete"},
        ],
    }
    # When it is parsed / Then it is valid and the router keeps all three ways
    assert [p.name for p in parse_workflow(data).stage("Split").pathways] == ["a", "b", "c"]
