"""PostgreSQL: drop the tasks' two id-order listing indexes; the stage-status index serves the listings

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 12:00:00
"""
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_INDEXES = {
    'ix_tasks_project_stage_id': ['project_id', 'stage_uuid', 'id'],
    'ix_tasks_project_id': ['project_id', 'id'],
}


def upgrade() -> None:
    # The applier's move of a task to another stage changes indexed columns, so it is not a
    # HOT update: each moved task gets an entry in every index of the table. On PostgreSQL the
    # listings merge id-ordered ranges of ix_tasks_project_stage_status instead (Merge Append),
    # so these two only cost. SQLite keeps them: its update touches only the indexes whose
    # columns change, and its planner would sort a whole project per page without them.
    if op.get_bind().dialect.name == 'postgresql':
        for name in _INDEXES:
            op.drop_index(name, table_name='tasks')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for name, columns in _INDEXES.items():
            op.create_index(name, 'tasks', columns, unique=False)
