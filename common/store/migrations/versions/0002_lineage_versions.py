"""lineage nodes and edges; project versions stored as deltas with shared label blobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('lineage_nodes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=1000), nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('attrs', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kind', 'key', name='uq_lineage_node')
    )
    with op.batch_alter_table('lineage_nodes', schema=None) as batch_op:
        batch_op.create_index('ix_lineage_nodes_project', ['project_id'], unique=False)

    op.create_table('lineage_edges',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['lineage_nodes.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_id'], ['lineage_nodes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_id', 'target_id', name='uq_lineage_edge')
    )
    with op.batch_alter_table('lineage_edges', schema=None) as batch_op:
        batch_op.create_index('ix_lineage_edges_target', ['target_id'], unique=False)

    op.create_table('project_versions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('workflow_version', sa.Integer(), nullable=False),
    sa.Column('task_count', sa.Integer(), nullable=False),
    sa.Column('label_row_count', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=320), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'number', name='uq_project_version')
    )
    op.create_table('version_tasks',
    sa.Column('data_hash', sa.String(length=36), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('stage_uuid', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('assignee', sa.String(length=320), nullable=True),
    sa.Column('priority', sa.Float(), nullable=False),
    sa.Column('label_branch', sa.String(length=200), nullable=False),
    sa.Column('removed', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('data_hash', 'version_id'),
    sqlite_with_rowid=False
    )
    op.create_table('version_labels',
    sa.Column('data_hash', sa.String(length=36), nullable=False),
    sa.Column('branch', sa.String(length=200), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('blob_hash', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('data_hash', 'branch', 'version_id'),
    sqlite_with_rowid=False
    )
    op.create_table('label_blobs',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('objects', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('hash'),
    sqlite_with_rowid=False
    )


def downgrade() -> None:
    op.drop_table('label_blobs')
    op.drop_table('version_labels')
    op.drop_table('version_tasks')
    op.drop_table('project_versions')
    with op.batch_alter_table('lineage_edges', schema=None) as batch_op:
        batch_op.drop_index('ix_lineage_edges_target')
    op.drop_table('lineage_edges')
    with op.batch_alter_table('lineage_nodes', schema=None) as batch_op:
        batch_op.drop_index('ix_lineage_nodes_project')
    op.drop_table('lineage_nodes')
