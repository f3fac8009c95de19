"""The store's tables (SQLAlchemy Core). Alembic migrations mirror these."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    literal_column,
)

from common.enums import TaskStatus

__all__ = [
    "CLAIMABLE_STATUS",
    "certifications",
    "data_units",
    "datasets",
    "events",
    "inflight_batches",
    "label_blobs",
    "label_rows",
    "labelstudio_applied",
    "labelstudio_links",
    "lineage_edges",
    "lineage_nodes",
    "memberships",
    "metadata",
    "project_versions",
    "projects",
    "run_failures",
    "run_label_backup",
    "runs",
    "subtasks",
    "tasks",
    "users",
    "version_labels",
    "version_tasks",
    "workflow_versions",
]

metadata = MetaData()

UUID = String(36)

projects = Table(
    "projects",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("workflow_version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

workflow_versions = Table(
    "workflow_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", UUID, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("definition", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project_id", "version", name="uq_workflow_version"),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("project_id", UUID, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project_id", "name", name="uq_dataset_name"),
)

data_units = Table(
    "data_units",
    metadata,
    Column("data_hash", UUID, primary_key=True),
    Column("dataset_id", UUID, ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(500), nullable=False),
    Column("meta", JSON, nullable=False),
    # {specification name: {"url", "original_name", "is_primary"}}
    Column("files", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_data_units_dataset", "dataset_id"),
)

users = Table(
    "users",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("project_id", UUID, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("email", String(320), ForeignKey("users.email", ondelete="CASCADE"), primary_key=True),
    Column("role", String(32), nullable=False),
)

certifications = Table(
    "certifications",
    metadata,
    Column("email", String(320), ForeignKey("users.email", ondelete="CASCADE"), primary_key=True),
    Column("name", String(200), primary_key=True),
)

tasks = Table(
    "tasks",
    metadata,
    # The integer id orders tasks for keyset pagination; uuid is the public id.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uuid", UUID, nullable=False, unique=True),
    Column("project_id", UUID, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    # Copied from the data unit (never change) so filters need no join.
    Column("data_hash", UUID, nullable=False),
    Column("data_title", String(500), nullable=False),
    Column("dataset_id", UUID, nullable=False),
    Column("stage_uuid", UUID, nullable=False),
    Column("status", String(16), nullable=False),
    Column("assignee", String(320)),
    Column("priority", Float, nullable=False, default=0.5),
    Column("label_branch", String(200), nullable=False, default="main"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_actioned_by", String(320)),
    Column("lease_token", String(64)),
    Column("lease_deadline", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    # Bumped by every change: a write that saw an older version loses (optimistic lock).
    Column("version", Integer, nullable=False, default=0),
    Index("ix_tasks_project_stage_status", "project_id", "stage_uuid", "status", "id"),
    # A stage listing without a status filter pages in id order (migration 0003).
    Index("ix_tasks_project_stage_id", "project_id", "stage_uuid", "id"),
    # Iterating a whole project pages in id order (migration 0005). Leaf pages half free on
    # PostgreSQL, as the primary key's and the uuid's (below).
    Index("ix_tasks_project_id", "project_id", "id", postgresql_with={"fillfactor": 50}),
    UniqueConstraint("project_id", "data_hash", name="uq_task_data_unit"),
    # PostgreSQL: 60% of each page stays free, so a claim (which changes no indexed column)
    # can write the row's new version on the same page, a HOT update that adds no entry to
    # the seven indexes (migrations 0008, 0012). A claim takes a page's tasks in one
    # statement, whose old versions cannot be pruned before it commits: at half free, the
    # last of a page's claims (the lease makes a row a sixth longer) found no room.
    postgresql_with={"fillfactor": 40},
)


# PostgreSQL: the new row version a move writes (the stage changes, so it is no HOT update)
# needs an entry beside the old one in the indexes keyed by what a move leaves alone. Tasks
# are created in id order, with time-ordered uuids, which fills those leaf pages to the
# default 90%; the move's entry then costs a dedup pass or a split. Half-free leaves take it
# as it is (migration 0012).
@event.listens_for(tasks, "after_create")
def _index_room(target: Table, connection: Connection, **kw: Any) -> None:
    if connection.dialect.name == "postgresql":
        for name in ("tasks_pkey", "tasks_uuid_key"):
            connection.exec_driver_sql(f"ALTER INDEX {name} SET (fillfactor = 50)")


# A claim never takes a completed task. As a SQL literal, not a bound parameter: the
# planners use a partial index only where the query's own text implies its condition.
CLAIMABLE_STATUS = tasks.c.status != literal_column(f"'{TaskStatus.COMPLETED.value}'")
# The producer claims a stage's tasks highest priority first, then oldest: walking
# this index finds them without sorting the whole stage on every claim (migration 0006).
# It holds the tasks that are not completed (migration 0011): a move into a complete
# stage adds no entry to it, and a finished project's tasks leave it.
Index(
    "ix_tasks_claim_order",
    tasks.c.project_id,
    tasks.c.stage_uuid,
    tasks.c.priority.desc(),
    tasks.c.id,
    postgresql_where=CLAIMABLE_STATUS,
    sqlite_where=CLAIMABLE_STATUS,
)

subtasks = Table(
    "subtasks",
    metadata,
    Column("uuid", UUID, primary_key=True),
    Column("task_uuid", UUID, ForeignKey("tasks.uuid", ondelete="CASCADE"), nullable=False),
    Column("label_branch", String(200), nullable=False),
    Column("assignee", String(320)),
    Column("status", String(16), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_subtasks_task", "task_uuid"),
)

label_rows = Table(
    "label_rows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", UUID, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("data_hash", UUID, nullable=False),
    Column("branch", String(200), nullable=False),
    Column("objects", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project_id", "data_hash", "branch", name="uq_label_row"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", UUID, nullable=False),
    Column("task_uuid", UUID, nullable=False),
    Column("actor", String(320)),
    Column("action", String(32), nullable=False),
    Column("from_stage", UUID),
    Column("to_stage", UUID),
    Column("from_status", String(16)),
    Column("to_status", String(16)),
    Column("pathway", UUID),
    Column("run_id", UUID),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("detail", JSON),
    Index("ix_events_task", "task_uuid", "id"),
    Index("ix_events_project", "project_id", "id"),
)

# The queue pipeline's in-flight ledger when the broker cannot hold it (RabbitMQ and the
# like): one row per published batch not yet applied, until its lease deadline passes.
inflight_batches = Table(
    "inflight_batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("project_id", UUID, nullable=False),
    Column("stage_uuid", UUID, nullable=False),
    Column("deadline", DateTime(timezone=True), nullable=False),
    Index("ix_inflight_batches_stage", "project_id", "stage_uuid", "deadline"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("project_id", UUID, ForeignKey("projects.id", ondelete="CASCADE")),
    Column("kind", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("message", Text, nullable=False, default=""),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_runs_project", "project_id", "created_at"),
)

# ------------------------------------------------------------ lineage and versions
# Lineage: what each run read and wrote. A node is anything a run touches (project,
# version, dataset, file, folder, task, labeling job, app session, the run itself),
# keyed by (kind, key) so recording the same thing twice finds the same node.
lineage_nodes = Table(
    "lineage_nodes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("key", String(1000), nullable=False),
    # The project the node belongs to (scopes filter on it); None for workspace-wide things.
    Column("project_id", UUID),
    Column("settings", JSON, nullable=False),  # display: title, description, icon, colours, url
    Column("attrs", JSON, nullable=False),  # facts: model_weight, version number, path
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("kind", "key", name="uq_lineage_node"),
    Index("ix_lineage_nodes_project", "project_id"),
)

lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source_id", Integer, ForeignKey("lineage_nodes.id", ondelete="CASCADE"), nullable=False),
    Column("target_id", Integer, ForeignKey("lineage_nodes.id", ondelete="CASCADE"), nullable=False),
    Column("run_id", UUID),
    Column("settings", JSON, nullable=False),  # the card's display settings when recorded
    Column("at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("source_id", "target_id", name="uq_lineage_edge"),
    Index("ix_lineage_edges_target", "target_id"),
)

# Versions store deltas: version N holds only the task states and label rows that
# differ from version N-1 (a removed one as a tombstone), so ten versions with 1%
# change each cost about one full copy plus 9%. Label objects live once per content
# hash in label_blobs, shared by every version and project that holds them.
project_versions = Table(
    "project_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", UUID, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("workflow_version", Integer, nullable=False),
    Column("task_count", Integer, nullable=False),
    Column("label_row_count", Integer, nullable=False),
    Column("created_by", String(320)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("project_id", "number", name="uq_project_version"),
)

version_tasks = Table(
    "version_tasks",
    metadata,
    # data_hash first: the "latest entry per task up to version N" query walks this key.
    Column("data_hash", UUID, primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("stage_uuid", UUID, nullable=False),
    Column("status", String(16), nullable=False),
    Column("assignee", String(320)),
    Column("priority", Float, nullable=False),
    Column("label_branch", String(200), nullable=False),
    Column("removed", Integer, nullable=False),  # 1: the task is gone in this version
    sqlite_with_rowid=False,
)

version_labels = Table(
    "version_labels",
    metadata,
    Column("data_hash", UUID, primary_key=True),
    Column("branch", String(200), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("blob_hash", String(64)),  # None: the label row is gone in this version
    sqlite_with_rowid=False,
)

label_blobs = Table(
    "label_blobs",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("objects", JSON, nullable=False),
    sqlite_with_rowid=False,
)

# ---------------------------------------------------------------- ToTask runs
# What a ToTask run needs to roll back: each label row it may change, as it was before
# the run (existed 0: the row did not exist), and whether the run's write was applied.
run_label_backup = Table(
    "run_label_backup",
    metadata,
    Column("run_id", UUID, primary_key=True),
    Column("data_hash", UUID, primary_key=True),
    Column("branch", String(200), primary_key=True),
    Column("project_id", UUID, nullable=False),
    Column("existed", Integer, nullable=False),
    Column("objects", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("applied", Integer, nullable=False, default=0),
)

# Per-task failures of a run ("[Task <id>] Failed: <reason>"), for 'annoflow runs show'.
run_failures = Table(
    "run_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", UUID, nullable=False),
    Column("task_uuid", UUID, nullable=False),
    Column("data_title", String(500), nullable=False),
    Column("error", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_run_failures_run", "run_id", "id"),
)

# Label Studio connector (common/labelstudio): which Label Studio project shows a stage (migration 0010)...
labelstudio_links = Table(
    "labelstudio_links",
    metadata,
    Column("project_id", UUID, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("stage_uuid", UUID, primary_key=True),
    Column("url", Text, nullable=False),
    Column("ls_project", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# ...and the annotations already applied: a second pull or webhook of one finds its row and changes nothing.
labelstudio_applied = Table(
    "labelstudio_applied",
    metadata,
    Column("project_id", UUID, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("stage_uuid", UUID, primary_key=True),
    Column("annotation_id", Integer, primary_key=True),
    Column("task_uuid", UUID, nullable=False),
    Column("annotator", String(320), nullable=False),
    Column("action", String(16), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)
