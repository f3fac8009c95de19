"""Task events for Flower, sent in groups: one broker publish per 50 ms, not one per event.

Celery's worker buffers its task events (received, started, succeeded, ...)
and asks its event loop to flush them on the next turn, so nearly every event
becomes a publish of its own: a Redis round trip in the worker's parent
process for each. :class:`GroupedEventDispatcher` flushes the buffer at most
every ``flush_interval`` seconds instead (and at once when the buffer holds
``buffer_limit`` events, or when the worker stops), so a busy worker sends one
``task.multi`` message, a list that Flower reads event by event, for many
tasks. Flower sees each event at most ``flush_interval`` seconds later.

Celery closes the dispatcher at shutdown (and on a lost broker connection)
without flushing its buffers, which the timer leaves holding up to 50 ms of
events: :class:`FlushEventsOnStop`, a consumer step that stops just before
Celery's own events step, sends them first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import bootsteps
from celery.app.events import Events
from celery.events.dispatcher import EventDispatcher
from kombu.asynchronous.hub import get_event_loop

__all__ = ["FlushEventsOnStop", "GroupedEventDispatcher", "GroupedEvents"]


class GroupedEventDispatcher(EventDispatcher):  # type: ignore[misc]
    """An event dispatcher that flushes its buffered task events on a timer; see the module docstring."""

    flush_interval = 0.05
    # Celery flushes a group once it holds this many events (its default is 24).
    buffer_limit_default = 200

    def __init__(self, *args: Any, on_send_buffered: Callable[[], None] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("buffer_limit", self.buffer_limit_default)
        # Celery passes on_send_buffered only when the worker runs an event loop.
        super().__init__(*args, on_send_buffered=self._flush_soon if on_send_buffered else None, **kwargs)
        self._flush_pending = False

    def _flush_soon(self) -> None:
        if self._flush_pending:
            return
        hub = get_event_loop()
        if hub is None:  # no event loop to wait on: flush now, as Celery would
            self.flush()
            return
        self._flush_pending = True
        hub.call_later(self.flush_interval, self._timed_flush)

    def _timed_flush(self) -> None:
        self._flush_pending = False
        self.flush()


class GroupedEvents(Events):  # type: ignore[misc]
    """The app's events, with :class:`GroupedEventDispatcher` as the dispatcher."""

    dispatcher_cls = GroupedEventDispatcher


class FlushEventsOnStop(bootsteps.StartStopStep):  # type: ignore[misc]
    """A worker consumer step that sends the buffered task events before Celery closes the dispatcher.

    It requires Celery's events step, so it starts after it and stops before it.
    """

    requires = ("celery.worker.consumer.events:Events",)

    def stop(self, c: Any) -> None:
        self._flush(c)

    def shutdown(self, c: Any) -> None:
        self._flush(c)

    @staticmethod
    def _flush(c: Any) -> None:
        dispatcher = getattr(c, "event_dispatcher", None)
        if dispatcher is not None:
            # A publish that fails here is kept in the dispatcher's outbound buffer,
            # which Celery hands to the next dispatcher after a reconnect.
            dispatcher.flush()
