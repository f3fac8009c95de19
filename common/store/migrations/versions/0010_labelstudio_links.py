"""the Label Studio connector's links and applied annotations

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 08:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'labelstudio_links',
        sa.Column('project_id', sa.String(36), sa.ForeignKey('projects.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('stage_uuid', sa.String(36), primary_key=True),
        sa.Column('url', sa.Text, nullable=False),
        sa.Column('ls_project', sa.Integer, nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        'labelstudio_applied',
        sa.Column('project_id', sa.String(36), sa.ForeignKey('projects.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('stage_uuid', sa.String(36), primary_key=True),
        sa.Column('annotation_id', sa.Integer, primary_key=True),
        sa.Column('task_uuid', sa.String(36), nullable=False),
        sa.Column('annotator', sa.String(320), nullable=False),
        sa.Column('action', sa.String(16), nullable=False),
        sa.Column('applied_at', sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('labelstudio_applied')
    op.drop_table('labelstudio_links')
