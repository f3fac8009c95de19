"""tasks on PostgreSQL keep more room: 60% of each table page, half of three indexes' leaf pages

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 21:10:00
"""
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# Keyed by columns a move never changes, and filled in key order as tasks are created (the
# importer's task uuids are time-ordered).
_INDEXES = ('tasks_pkey', 'tasks_uuid_key', 'ix_tasks_project_id')


def upgrade() -> None:
    # A claim takes a page's tasks in one statement, and their old row versions cannot be
    # pruned before it commits: with half of the page free, the last claims on a page found
    # no room (a claimed row is a sixth longer) and were no HOT updates, each adding an entry
    # to every index. A move changes the stage, so its new row version needs an entry in
    # every index; in these three it goes beside the old one, and a leaf page filled to the
    # default 90% first tries to delete dead entries, then deduplicates, then splits.
    # Pages written from now on keep the room (VACUUM FULL or REINDEX gives it to the rest).
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE tasks SET (fillfactor = 40)')
        for name in _INDEXES:
            op.execute(f'ALTER INDEX {name} SET (fillfactor = 50)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE tasks SET (fillfactor = 50)')
        for name in _INDEXES:
            op.execute(f'ALTER INDEX {name} RESET (fillfactor)')
