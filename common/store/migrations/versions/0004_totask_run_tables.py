"""ToTask runs: label-row backups for rollback and per-task failures

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 14:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('run_label_backup',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('data_hash', sa.String(length=36), nullable=False),
    sa.Column('branch', sa.String(length=200), nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('existed', sa.Integer(), nullable=False),
    sa.Column('objects', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('applied', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'data_hash', 'branch')
    )
    op.create_table('run_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('task_uuid', sa.String(length=36), nullable=False),
    sa.Column('data_title', sa.String(length=500), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('run_failures', schema=None) as batch_op:
        batch_op.create_index('ix_run_failures_run', ['run_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('run_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_run_failures_run')
    op.drop_table('run_failures')
    op.drop_table('run_label_backup')
