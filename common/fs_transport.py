"""kombu's filesystem transport (the embedded broker), with messages written atomically.

kombu writes a message file in place under its final ``.msg`` name, and a reader
that lists the folder at that moment moves and reads it without taking the
writer's lock: it can read an empty or half-written file and fail with a JSON
error. Here a message is written under a hidden temporary name, which readers
skip, and renamed into place once complete; a rename within one folder is atomic.
A reader takes a message the same way, by renaming it to a hidden name in the
same folder: one reader wins it, whole. (kombu moves it to the system's temporary
folder, a copy when that is another file system, which a second reader can
overwrite while the first still reads it.)

Readers take messages in the order of their names (sorted as text), which
start with the millisecond they were written. kombu counts it from the
machine's boot (a message left from before a reboot then sorts after new
ones), breaks a tie at random (a UUID follows) and writes it with as many
digits as it has (a message written after the count gains a digit sorts
before older ones). Here the count is the wall clock's, always 15 digits, and
a process's messages never share one, so messages are read in the order they
were written.
"""

from __future__ import annotations

import os
import threading
import uuid
from queue import Empty
from time import time as wall_clock
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem as kombu_fs
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

__all__ = ["TRANSPORT", "Channel", "Transport"]

# What kombu and Celery accept as ``transport`` / ``broker_transport``.
TRANSPORT = "common.fs_transport:Transport"

_stamp_lock = threading.Lock()
_last_stamp = 0


def _stamp() -> int:
    """The millisecond a message's name starts with: now, or one past this process's last (never the same)."""
    global _last_stamp
    with _stamp_lock:
        _last_stamp = max(round(wall_clock() * 1000), _last_stamp + 1)
        return _last_stamp


class Channel(kombu_fs.Channel):
    """A filesystem channel whose messages appear only once fully written."""

    # kombu names the second argument "message" in its base channel and "payload" in the
    # filesystem one; it is passed by position.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # The name kombu gives a message (readers sort on it), written via a temporary file.
        name = f"{_stamp():015d}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")  # not "<queue>.msg": readers skip it
        try:
            with open(partial, "wb") as f:
                f.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        """The oldest message of ``queue``; raises ``queue.Empty`` when there is none."""
        wanted = f"{queue}.msg"
        folder = self.data_folder_in
        for name in sorted(os.listdir(folder)):
            if name.startswith(".") or name.partition(".")[2] != wanted:
                continue
            taken = os.path.join(folder, f".{name}.{os.getpid()}.taken")  # hidden: readers skip it
            try:
                os.rename(os.path.join(folder, name), taken)
            except OSError:  # another reader took it first
                continue
            try:
                with open(taken, "rb") as f:
                    payload = f.read()
                os.remove(taken)
            except OSError as exc:
                raise ChannelError(f"Cannot read file {taken!r} from queue.") from exc
            return loads(bytes_to_str(payload))
        raise Empty()


class Transport(kombu_fs.Transport):
    """kombu's filesystem transport with :class:`Channel`."""

    Channel = Channel
