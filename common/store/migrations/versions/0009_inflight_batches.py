"""the in-flight ledger in the store, for brokers that cannot hold it (RabbitMQ)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 14:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'inflight_batches',
        sa.Column('batch_id', sa.String(64), primary_key=True),
        sa.Column('project_id', sa.String(36), nullable=False),
        sa.Column('stage_uuid', sa.String(36), nullable=False),
        sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_inflight_batches_stage', 'inflight_batches', ['project_id', 'stage_uuid', 'deadline'])


def downgrade() -> None:
    op.drop_index('ix_inflight_batches_stage', table_name='inflight_batches')
    op.drop_table('inflight_batches')
