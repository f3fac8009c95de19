"""The editable label row a handler receives: add, change and remove annotation objects.

Edits stay in memory; the handler's result carries the whole row back
(``TaskCompletionResult.labels``) and the result applier saves it, checking
that nobody saved the row since the task's spec was built.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

from common.errors import InvalidInputError, NotFoundError
from common.models import LabelPayload

__all__ = ["LabelRowEditor"]

OBJECT_KEY = "object_hash"  # every annotation object is addressed by this key


class LabelRowEditor:
    """The annotation objects of one task's label row, editable by a handler.

    Example::

        @runner.stage("Pre-label", include_labels=True)
        def pre_label(label_row: LabelRowEditor) -> str:
            label_row.add({"name": "apple", "box": [10, 10, 50, 50]})
            return "labelled"
    """

    def __init__(self, payload: LabelPayload | None, *, loaded: bool = True) -> None:
        self._payload = payload or LabelPayload()
        self._objects: list[dict[str, Any]] = copy.deepcopy(self._payload.objects)
        self._loaded = loaded and payload is not None
        self.dirty = False
        self.priority: float | None = None

    @property
    def branch(self) -> str:
        return self._payload.branch

    @property
    def version(self) -> int:
        """The version of the row the spec was built from (0: no row saved yet)."""
        return self._payload.version

    @property
    def objects(self) -> list[dict[str, Any]]:
        """A copy of the objects; edit through :meth:`add`, :meth:`change` and :meth:`remove`."""
        return copy.deepcopy(self._objects)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.objects)

    def __len__(self) -> int:
        return len(self._objects)

    def get(self, object_hash: str) -> dict[str, Any]:
        """The object with this hash.

        Raises:
            NotFoundError: no such object; the message lists the hashes there are.
        """
        return copy.deepcopy(self._objects[self._index(object_hash)])

    def add(self, obj: dict[str, Any]) -> str:
        """Add an annotation object; return its hash (a new one unless ``obj`` has one).

        Raises:
            InvalidInputError: an object with that hash is already in the row.
        """
        self._check_loaded()
        item = copy.deepcopy(obj)
        key = str(item.setdefault(OBJECT_KEY, uuid.uuid4().hex[:8]))
        if any(o.get(OBJECT_KEY) == key for o in self._objects):
            raise InvalidInputError(f"the label row already has an object {key!r}; use change() to edit it")
        self._objects.append(item)
        self.dirty = True
        return key

    def change(self, object_hash: str, **fields: Any) -> None:
        """Set ``fields`` on the object with this hash.

        Raises:
            NotFoundError: no such object.
        """
        self._check_loaded()
        fields.pop(OBJECT_KEY, None)  # the hash is the object's identity
        self._objects[self._index(object_hash)].update(copy.deepcopy(fields))
        self.dirty = True

    def remove(self, object_hash: str) -> None:
        """Remove the object with this hash.

        Raises:
            NotFoundError: no such object.
        """
        self._check_loaded()
        del self._objects[self._index(object_hash)]
        self.dirty = True

    def set_priority(self, priority: float) -> None:
        """Set the task's priority (0.0 to 1.0) when the result is applied."""
        if not 0.0 <= priority <= 1.0:
            raise InvalidInputError(f"priority {priority} is outside 0.0..1.0; pass a value in that range")
        self.priority = priority

    def payload(self) -> LabelPayload:
        """The row as a result carries it: the objects and the version they were read at."""
        return LabelPayload(branch=self.branch, version=self.version, objects=self.objects)

    def _index(self, object_hash: str) -> int:
        for i, o in enumerate(self._objects):
            if o.get(OBJECT_KEY) == object_hash:
                return i
        hashes = ", ".join(str(o.get(OBJECT_KEY)) for o in self._objects) or "none"
        raise NotFoundError(f"the label row has no object {object_hash!r}; its objects: {hashes}")

    def _check_loaded(self) -> None:
        if not self._loaded:
            # Editing a row that was never read would overwrite the labels people made.
            raise InvalidInputError(
                "this task's spec carries no labels, so the label row cannot be edited; "
                "register the stage with include_labels=True"
            )
