"""the claim-order index holds only tasks that are not completed

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 13:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_COLUMNS = ['project_id', 'stage_uuid', sa.text('priority DESC'), 'id']
_NOT_COMPLETED = sa.text("status <> 'COMPLETED'")


def upgrade() -> None:
    # A claim never takes a completed task (common.store.leases): a move into a complete stage
    # then writes no entry here, and the index shrinks as a project finishes.
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_claim_order')
        batch_op.create_index(
            'ix_tasks_claim_order', _COLUMNS, unique=False,
            postgresql_where=_NOT_COMPLETED, sqlite_where=_NOT_COMPLETED,
        )


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_claim_order')
        batch_op.create_index('ix_tasks_claim_order', _COLUMNS, unique=False)
