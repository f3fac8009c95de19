"""The store: one API over SQLite or PostgreSQL for projects, data, users, tasks, labels and runs.

:class:`Store` opens the database and brings its schema up to date; its methods
come, one concept per module, from the mixins it combines: projects
(:mod:`common.store.projects`), users (:mod:`common.store.users`), data
(:mod:`common.store.data`), tasks and events (:mod:`common.store.tasks`), label
rows (:mod:`common.store.labels`) and runs (:mod:`common.store.runs`), all on the
transactions of :mod:`common.store.connections`.
"""

from __future__ import annotations

from common.store.data import DataMixin
from common.store.engine import make_engine, migrate
from common.store.labels import LabelsMixin, save_label_row
from common.store.runs import RunsMixin
from common.store.tasks import TasksMixin
from common.store.users import UsersMixin

# save_label_row lives in common.store.labels; it is re-exported for the callers that import it from here.
__all__ = ["Store", "save_label_row"]


class Store(TasksMixin, DataMixin, UsersMixin, LabelsMixin, RunsMixin):
    """Everything annoflow keeps, behind one object.

    Open it with :meth:`Store.open`; it creates or upgrades the schema.
    """

    @classmethod
    def open(cls, url: str, schema: str | None = None, upgrade: bool = True) -> Store:
        """Connect to the store at ``url`` and bring its schema up to date.

        Raises:
            InvalidInputError: the URL is malformed.
            TransientError: the database cannot be reached.
        """
        engine = make_engine(url, schema)
        if upgrade:
            migrate(engine)
        return cls(engine)
