"""tasks on PostgreSQL keep half of each page free (fillfactor 50), so claims can be HOT updates

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 14:30:00
"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A claim changes no indexed column; with room on the page PostgreSQL writes the new
    # row version there and adds no index entries. Pages written from now on keep the room
    # (existing ones fill as rows are updated). SQLite has no such setting.
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE tasks SET (fillfactor = 50)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE tasks RESET (fillfactor)')
