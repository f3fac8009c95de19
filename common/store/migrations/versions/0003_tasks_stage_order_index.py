"""index tasks by (project, stage, id) so a stage listing without a status filter pages in id order

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 12:00:00
"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ix_tasks_project_stage_status serves listings filtered by one status; without a
    # status filter its order is (status, id), so SQLite sorted the whole stage for
    # the first page. This one yields a stage's tasks already in keyset order.
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_project_stage_id', ['project_id', 'stage_uuid', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_project_stage_id')
