"""drop ix_tasks_data_hash: every lookup by data hash also names the project, which uq_task_data_unit covers

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 14:00:00
"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One random-key index less on tasks: bulk imports touch fewer pages per row.
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_data_hash')


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_data_hash', ['data_hash'], unique=False)
