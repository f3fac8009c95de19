"""Label rows: one data unit's objects per branch, saved only at the version they were read at.

:class:`LabelsMixin` gives :class:`common.store.Store` its label methods, each in a
transaction of its own. :func:`save_label_row` and :func:`copy_labels` run inside
the caller's transaction: the result applier's, or a consensus approve's, which
copies the winning annotator's branch onto the task's.
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from common.errors import ConflictError
from common.store.connections import StoreBase
from common.store.records import LabelRow, now
from common.store.schema import label_rows

__all__ = ["LabelsMixin", "copy_labels", "save_label_row"]


class LabelsMixin(StoreBase):
    """The label rows part of :class:`common.store.Store`."""

    def get_label_row(self, project_id: str, data_hash: str, branch: str = "main") -> LabelRow:
        """The label row of one data unit and branch (empty, version 0, if none yet)."""
        with self.read() as conn:
            row = (
                conn.execute(
                    select(label_rows).where(
                        label_rows.c.project_id == project_id,
                        label_rows.c.data_hash == data_hash,
                        label_rows.c.branch == branch,
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            return LabelRow(project_id=project_id, data_hash=data_hash, branch=branch, objects=[], version=0)
        return LabelRow.model_validate(dict(row))

    def save_label_row(self, row: LabelRow) -> LabelRow:
        """Save ``row``'s objects if nobody saved since it was read (its version).

        Raises:
            ConflictError: the row was saved by someone else meanwhile.
        """
        with self.write() as conn:
            return save_label_row(conn, row)


def save_label_row(conn: Connection, row: LabelRow) -> LabelRow:
    """Write a label row inside an open transaction, checking its version."""
    at = now()
    if row.version == 0:
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(label_rows).values(
                        project_id=row.project_id,
                        data_hash=row.data_hash,
                        branch=row.branch,
                        objects=row.objects,
                        version=1,
                        updated_at=at,
                    )
                )
        except IntegrityError as e:
            raise ConflictError(f"label row of {row.data_hash}/{row.branch} was created meanwhile; re-read it") from e
        return row.model_copy(update={"version": 1})
    done = conn.execute(
        update(label_rows)
        .where(
            label_rows.c.project_id == row.project_id,
            label_rows.c.data_hash == row.data_hash,
            label_rows.c.branch == row.branch,
            label_rows.c.version == row.version,
        )
        .values(objects=row.objects, version=row.version + 1, updated_at=at)
    )
    if done.rowcount != 1:
        raise ConflictError(f"label row of {row.data_hash}/{row.branch} was saved by someone else; re-read it")
    return row.model_copy(update={"version": row.version + 1})


def copy_labels(conn: Connection, project_id: str, data_hash: str, source: str, target: str) -> None:
    """Make branch ``target`` hold the objects of branch ``source``."""
    src = conn.execute(
        select(label_rows.c.objects).where(
            label_rows.c.project_id == project_id,
            label_rows.c.data_hash == data_hash,
            label_rows.c.branch == source,
        )
    ).scalar()
    objects = src if src is not None else []
    done = conn.execute(
        update(label_rows)
        .where(
            label_rows.c.project_id == project_id,
            label_rows.c.data_hash == data_hash,
            label_rows.c.branch == target,
        )
        .values(objects=objects, version=label_rows.c.version + 1, updated_at=now())
    )
    if done.rowcount == 0:
        conn.execute(
            insert(label_rows).values(
                project_id=project_id,
                data_hash=data_hash,
                branch=target,
                objects=objects,
                version=1,
                updated_at=now(),
            )
        )
