"""Two OS processes act on the same task at the same instant: exactly one wins, nothing is half-moved.

Each backend gets one pair of spawned processes that play several rounds. In
every round both processes read the task, meet at a barrier, and act at once;
the test then checks the outcomes, the task row and its event history.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text

from common.enums import Action, Role, TaskStatus
from common.errors import AnnoflowError
from common.store import ActionRequest, Store
from common.workflow import Workflow
from tests.helpers import make_project

pytestmark = pytest.mark.integration

ANN, BOB, REV, ADMIN = "ann@acme.com", "bob@acme.com", "rev@acme.com", "admin@acme.com"
USERS = {ANN: Role.ANNOTATOR, BOB: Role.ANNOTATOR, REV: Role.REVIEWER, ADMIN: Role.ADMIN}
REPEATS = 3  # each kind of race is run this many times, on fresh tasks


@dataclass(frozen=True)
class Move:
    """One process's half of a round."""

    action: str
    args: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Round:
    """Both processes act on ``task`` at once; ``versioned``: they pass the version they read."""

    name: str
    task: str
    moves: tuple[Move, Move]
    versioned: bool = True


def _play(url: str, schema: str | None, rounds: list[Round], side: int, barrier: Any, out: Any) -> None:
    """Child process: play ``side`` of every round, meeting the other process at the barrier."""
    store = Store.open(url, schema=schema, upgrade=False)
    results: list[tuple[str, str]] = []
    try:
        for r in rounds:
            # Read first, as a user's script would, and warm the workflow cache so both go straight in.
            seen = store.get_task(r.task)
            store.workflow(seen.project_id)
            move = r.moves[side]
            request = ActionRequest(
                r.task, Action(move.action), expected_version=seen.version if r.versioned else None, **move.args
            )
            barrier.wait(timeout=30)
            try:
                done = store.act(request)
                results.append(("ok", f"{done.stage_uuid}/{done.status.value}/{done.assignee}"))
            except AnnoflowError as e:
                results.append((type(e).__name__, str(e)))
    finally:
        store.close()
        out.put((side, results))


def _where(store: Store) -> tuple[str, str | None]:
    url = store.engine.url.render_as_string(hide_password=False)
    if store.is_sqlite:
        return url, None
    with store.read() as conn:
        return url, str(conn.execute(text("SHOW search_path")).scalar())


def _setup(store: Store, wf: Workflow, consensus: Workflow) -> list[Round]:
    """Tasks in the states each race needs, and the rounds to play on them."""
    titles = [f"t{i:02}.jpg" for i in range(5 * REPEATS)]
    project = make_project(store, wf, titles, users=USERS)
    tasks = list(store.iter_tasks(project.id))
    rounds: list[Round] = []
    for k in range(REPEATS):
        both, assign_submit, unversioned, review, release = tasks[5 * k : 5 * k + 5]
        for t in (both, assign_submit, unversioned, release):
            store.assign(t.uuid, ANN)
        store.assign(review.uuid, ANN)
        store.act(ActionRequest(review.uuid, Action.SUBMIT))
        store.assign(review.uuid, REV)
        submit = Move("submit")
        rounds += [
            Round("both submit", both.uuid, (submit, submit)),
            Round("assign vs submit", assign_submit.uuid, (Move("assign", {"assignee": BOB, "by": ADMIN}), submit)),
            Round("both submit, unversioned", unversioned.uuid, (submit, submit), versioned=False),
            Round("approve vs reject", review.uuid, (Move("approve"), Move("reject"))),
            Round("release vs submit", release.uuid, (Move("release"), submit)),
        ]
    # Consensus: one annotator grabbing both subtasks of a task at once.
    other = make_project(store, consensus, [f"c{i:02}.jpg" for i in range(REPEATS)], name="consensus", users=USERS)
    for t in store.iter_tasks(other.id):
        one, two = (s.uuid for s in store.subtasks(t.uuid))
        grab = (Move("assign", {"subtask": one, "assignee": ANN}), Move("assign", {"subtask": two, "assignee": ANN}))
        rounds.append(Round("one annotator, two subtasks", t.uuid, grab))
    return rounds


def test_two_processes_race_on_the_same_task(
    store: Store, seed_workflow: Workflow, consensus_workflow: Workflow
) -> None:
    # Given tasks ready for each race, and two spawned processes on the same database
    rounds = _setup(store, seed_workflow, consensus_workflow)
    projects = {r.task: store.get_task(r.task).project_id for r in rounds}
    events_before = {r.task: len(store.events(projects[r.task], r.task)) for r in rounds}
    url, schema = _where(store)
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_play, args=(url, schema, rounds, side, barrier, out)) for side in (0, 1)]

    # When they play every round, acting at the same instant
    for p in procs:
        p.start()
    outcomes = dict(out.get(timeout=90) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    assert [p.exitcode for p in procs] == [0, 0]

    # Then in every round exactly one wins and the other gets a clear refusal
    for i, r in enumerate(rounds):
        pair = [outcomes[0][i], outcomes[1][i]]
        winners = [o for o in pair if o[0] == "ok"]
        losers = [o for o in pair if o[0] != "ok"]
        assert len(winners) == 1, (r.name, pair)
        allowed = {"ConflictError"} if r.versioned else {"ConflictError", "TransitionNotAllowedError"}
        assert losers[0][0] in allowed, (r.name, pair)
        assert "read it again" in losers[0][1] or not r.versioned, (r.name, pair)
        # And the task is exactly where the winner left it
        task = store.get_task(r.task)
        assert f"{task.stage_uuid}/{task.status.value}/{task.assignee}" == winners[0][1], r.name
        # And the history holds exactly one new event: the winner's, never a half move
        new = store.events(projects[r.task], r.task)[events_before[r.task] :]
        assert len(new) == 1, (r.name, [(e.action, e.to_status) for e in new])
        assert new[0].to_stage == task.stage_uuid

    # And a consensus task never ends with one annotator on two subtasks
    for r in rounds:
        if r.name == "one annotator, two subtasks":
            assert [s.assignee for s in store.subtasks(r.task)].count(ANN) == 1
    # And every "both submit" task was submitted once: it waits, NEW, in review
    assert {store.get_task(r.task).status for r in rounds if r.name == "both submit"} == {TaskStatus.NEW}
