"""Task leases: claim the tasks of a stage for processing, in one statement.

A lease is a token and a deadline on the task row. The producer (or the
sequential runner) claims tasks that hold no live lease; the result applier
accepts a result only while the task still holds the lease it was claimed
with. What the ``lease_token`` column holds:

* ``NULL``: free; the next claim takes the task.
* ``L<hex>:<id>``: claimed, a worker is on it until ``lease_deadline``; once
  the deadline passes the task is claimed again (an expired lease is how a
  lost message or a killed worker is re-published).
* ``retry:<hex>``: the last attempt failed; claimed again once
  ``lease_deadline`` (the backoff) passes.
* ``hold:<hex>``: the handler asked to stay; claimed again after the hold.
* ``failed``: the retries are used up; ``lease_deadline`` is NULL so no claim
  takes it until :func:`release_failed` (``annoflow tasks retry``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Select,
    String,
    and_,
    any_,
    cast,
    func,
    literal,
    or_,
    select,
    type_coerce,
    union_all,
    update,
)

from common.store.records import TaskRecord, now
from common.store.schema import CLAIMABLE_STATUS, tasks
from common.store.store import Store

__all__ = [
    "FAILED",
    "HOLD_PREFIX",
    "RETRY_PREFIX",
    "ClaimCursor",
    "claim_tasks",
    "count_live_leases",
    "list_failed",
    "next_retry_at",
    "release_failed",
]

FAILED = "failed"  # retries used up; never claimed until released
RETRY_PREFIX = "retry:"  # failed attempt waiting out its backoff
HOLD_PREFIX = "hold:"  # the handler asked to stay; waiting for the next refresh
CLAIM_PREFIX = "L"  # a live claim


def _claimable(at: datetime, pass_started: datetime | None) -> ColumnElement[bool]:
    free: ColumnElement[bool] = tasks.c.lease_token.is_(None)
    if pass_started is not None:
        # A sequential pass takes each free task once: one that was released
        # (or arrived) after the pass began waits for the next pass.
        free = and_(free, tasks.c.updated_at < pass_started)
    # NULL < at is not true, so 'failed' (deadline NULL) is never claimable.
    return or_(free, tasks.c.lease_deadline < at)


@dataclass
class ClaimCursor:
    """Where a producer's last claim in one stage ended, so the next starts there.

    The tasks a producer has in flight hold live leases and sit first in the
    stage's claim order. A claim that starts from the top walks past every one
    of them (15,000 at the default depth) before it finds a free task: on
    PostgreSQL that walk was most of a claim's cost. With a cursor a claim
    starts just after the last task claimed, and looks from the top again
    (a rescan) when the tasks ahead of the cursor run short or ``rescan_s``
    has passed since the last rescan. A task that becomes claimable behind the
    cursor (a retry coming due, an expired lease, a task moved in with a higher
    priority or a lower id) therefore waits at most ``rescan_s``, or until the
    tasks ahead run out.
    """

    rescan_s: float = 1.0
    priority: float | None = None
    last_id: int | None = None
    rescanned_at: float = float("-inf")

    def due(self) -> bool:
        return self.last_id is None or time.monotonic() - self.rescanned_at >= self.rescan_s

    def moved_to(self, claimed: list[TaskRecord]) -> None:
        """Past the last of ``claimed`` (in claim order); no tasks leave it where it is."""
        if claimed:
            self.priority, self.last_id = claimed[-1].priority, claimed[-1].id


def claim_tasks(
    store: Store,
    project_id: str,
    stage_uuid: str,
    limit: int,
    lease_seconds: float,
    *,
    pass_started: datetime | None = None,
    by_priority: bool = True,
    cursor: ClaimCursor | None = None,
) -> list[TaskRecord]:
    """Claim up to ``limit`` tasks of a stage that hold no live lease.

    One ``UPDATE ... WHERE id = ANY(ARRAY(SELECT ... LIMIT n)) RETURNING`` statement
    (with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent producers
    never claim the same task) sets a fresh lease token per task, the deadline
    ``now + lease_seconds``, ``attempts + 1`` and ``version + 1``. Tasks whose
    lease expired are claimed again.

    Args:
        store: the store.
        project_id: the project's id.
        stage_uuid: the stage whose tasks to claim.
        limit: the most tasks to claim.
        lease_seconds: how long the claim holds before it may be claimed again.
        pass_started: leave out free tasks that changed after this time (a
            sequential runner's pass takes each task once).
        by_priority: claim the highest priority first (then oldest); else by id.
        cursor: start after the previous claim's last task (see :class:`ClaimCursor`);
            moved past the tasks this claim takes.

    Returns:
        The claimed tasks, highest priority first.
    """
    if limit <= 0:
        return []
    at = now()
    order = [tasks.c.priority.desc(), tasks.c.id] if by_priority else [tasks.c.id]
    claimable = [
        tasks.c.project_id == project_id,
        tasks.c.stage_uuid == stage_uuid,
        CLAIMABLE_STATUS,  # the claim-order index holds these tasks only
        _claimable(at, pass_started),
    ]
    # One random prefix per claim plus the task id: unique per task and unguessable.
    prefix = f"{CLAIM_PREFIX}{uuid.uuid4().hex}:"
    claimed: list[TaskRecord] = []
    if cursor is not None and not cursor.due():
        ahead = _ahead(store, claimable, cursor, by_priority, limit)
        claimed = lease_picked(store, ahead, prefix, lease_seconds, at, locks_itself=True)
    if len(claimed) < limit:  # no cursor, a rescan due, or the tasks ahead ran short: from the top
        top = select(tasks.c.id).where(*claimable).order_by(*order).limit(limit - len(claimed))
        claimed += lease_picked(store, top, prefix, lease_seconds, at)
        if cursor is not None:
            cursor.rescanned_at = time.monotonic()
    # RETURNING gives no order; hand them out in claim order.
    claimed.sort(key=(lambda t: (-t.priority, t.id)) if by_priority else (lambda t: t.id))
    if cursor is not None:
        cursor.moved_to(claimed)
    return claimed


def _ahead(
    store: Store, claimable: list[ColumnElement[bool]], cursor: ClaimCursor, by_priority: bool, limit: int
) -> Select[tuple[int]]:
    """The first ``limit`` claimable ids after the cursor, in claim order.

    Two ranges of the claim-order index, each entered at its start: the rest of
    the cursor's priority after its task, then the lower priorities. (One
    ``priority < p OR (priority = p AND id > i)`` would be a filter, walked from
    the top of the stage, which is the walk the cursor is there to skip.)
    """
    assert cursor.last_id is not None
    if not by_priority:
        return select(tasks.c.id).where(*claimable, tasks.c.id > cursor.last_id).order_by(tasks.c.id).limit(limit)
    same = (
        select(tasks.c.id)
        .where(*claimable, tasks.c.priority == cursor.priority, tasks.c.id > cursor.last_id)
        .order_by(tasks.c.id)
        .limit(limit)
    )
    lower = (
        select(tasks.c.id)
        .where(*claimable, tasks.c.priority < cursor.priority)
        .order_by(tasks.c.priority.desc(), tasks.c.id)
        .limit(limit)
    )
    if not store.is_sqlite:
        same, lower = same.with_for_update(skip_locked=True), lower.with_for_update(skip_locked=True)
    # Each range as a subquery of its own (its LIMIT and lock stay with it); the second is read
    # only when the first runs short.
    first, second = same.subquery(), lower.subquery()
    both = union_all(select(first.c.id), select(second.c.id)).subquery()
    return select(both.c.id).limit(limit)


def lease_picked(
    store: Store,
    pick: Select[tuple[int]],
    token_prefix: str,
    lease_seconds: float,
    at: datetime,
    *,
    locks_itself: bool = False,
) -> list[TaskRecord]:
    """Lease the tasks whose ids ``pick`` selects, in one statement; return them (in no order).

    Each gets the token ``<token_prefix><id>``, the deadline ``at + lease_seconds``,
    ``attempts + 1`` and ``version + 1``. On PostgreSQL the pick skips rows another
    transaction holds, so concurrent claimers never share a task; a pick that
    ``locks_itself`` (its subqueries say ``FOR UPDATE SKIP LOCKED``) is taken as it is.
    """
    if store.is_sqlite:
        picked: ColumnElement[bool] = tasks.c.id.in_(pick.scalar_subquery())
    else:
        # The ids as one array (an InitPlan), so each row is found by primary key. With
        # ``id IN (subquery)`` PostgreSQL hash-joins the pick against a scan of the whole
        # table, a cost that grows with the project instead of with the claim.
        locked = pick if locks_itself else pick.with_for_update(skip_locked=True)
        picked = tasks.c.id == any_(func.array(locked.scalar_subquery()))
    stmt = (
        update(tasks)
        .where(picked)
        .values(
            lease_token=literal(token_prefix, String) + cast(tasks.c.id, String),
            lease_deadline=at + timedelta(seconds=lease_seconds),
            attempts=tasks.c.attempts + 1,
            version=tasks.c.version + 1,
            updated_at=at,
        )
        .returning(*_RETURNED)
    )
    with store.write(wake=False) as conn:  # a claim takes work; it gives none
        rows = conn.execute(stmt).all()
    validate, keys = TaskRecord.model_validate, _KEYS
    return [validate(dict(zip(keys, row, strict=True))) for row in rows]


# The timestamps come back as the driver hands them over: pydantic parses SQLite's
# text into the values SQLAlchemy's processor would give, for a third of the cost.
_RETURNED = [type_coerce(c, String) if isinstance(c.type, DateTime) else c for c in tasks.c]
_KEYS = list(tasks.c.keys())


def release_failed(store: Store, project_id: str, task_uuids: Collection[str] | None = None) -> int:
    """Make failed tasks claimable again (``annoflow tasks retry``); return how many.

    Their attempts start again from zero; ``last_error`` stays until they succeed.
    """
    where = [tasks.c.project_id == project_id, tasks.c.lease_token == FAILED]
    if task_uuids is not None:
        where.append(tasks.c.uuid.in_(list(task_uuids)))
    with store.write() as conn:
        done = conn.execute(
            update(tasks)
            .where(*where)
            .values(lease_token=None, lease_deadline=None, attempts=0, version=tasks.c.version + 1, updated_at=now())
        )
    return int(done.rowcount)


def list_failed(store: Store, project_id: str) -> list[TaskRecord]:
    """The project's tasks whose retries are used up, with their last error, in task order."""
    with store.read() as conn:
        rows = conn.execute(
            select(tasks).where(tasks.c.project_id == project_id, tasks.c.lease_token == FAILED).order_by(tasks.c.id)
        ).mappings()
        return [TaskRecord.model_validate(dict(r)) for r in rows]


def count_live_leases(store: Store, project_id: str) -> dict[str, int]:
    """How many tasks per stage UUID a worker holds right now (claimed, deadline not passed).

    Retries waiting out a backoff, held tasks and failed tasks do not count.
    """
    with store.read() as conn:
        rows = conn.execute(
            select(tasks.c.stage_uuid, func.count())
            .where(
                tasks.c.project_id == project_id,
                tasks.c.lease_token.startswith(CLAIM_PREFIX),
                tasks.c.lease_deadline >= now(),
            )
            .group_by(tasks.c.stage_uuid)
        ).all()
    return {str(stage): int(n) for stage, n in rows}


def next_retry_at(store: Store, project_id: str, stage_uuid: str) -> datetime | None:
    """When the next task of the stage waiting out a retry backoff becomes claimable, if any."""
    with store.read() as conn:
        value = conn.execute(
            select(func.min(tasks.c.lease_deadline)).where(
                tasks.c.project_id == project_id,
                tasks.c.stage_uuid == stage_uuid,
                tasks.c.lease_token.startswith(RETRY_PREFIX),
            )
        ).scalar()
    return value if isinstance(value, datetime) else None
