"""Worker task events go to the broker in groups: one publish per flush interval, not one per event."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from kombu import Connection, Exchange, Queue
from kombu.asynchronous.hub import get_event_loop, set_event_loop

from common.celery_app import PipelineSettings, make_celery_app
from common.settings import Settings
from common.worker_events import FlushEventsOnStop, GroupedEventDispatcher


class _Hub:
    """The part of kombu's event loop the dispatcher uses: timers that the test fires by hand."""

    def __init__(self) -> None:
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.timers.append((delay, callback))

    def fire(self) -> None:
        timers, self.timers = self.timers, []
        for _, callback in timers:
            callback()


@pytest.fixture
def hub() -> Iterator[_Hub]:
    previous = get_event_loop()
    loop = _Hub()
    set_event_loop(loop)  # type: ignore[arg-type]
    yield loop
    set_event_loop(previous)


@pytest.fixture
def app(tmp_path: Any) -> Celery:
    return make_celery_app(Settings(home=tmp_path), PipelineSettings())


def _messages(conn: Connection, queue: Queue) -> list[Any]:
    bound = queue(conn.default_channel)
    out = []
    while (message := bound.get(accept=["json"])) is not None:
        out.append(message.payload)
    return out


def _dispatcher(app: Celery, conn: Connection, **kwargs: Any) -> GroupedEventDispatcher:
    dispatcher: GroupedEventDispatcher = app.events.Dispatcher(
        conn, hostname="w1@test", buffer_group=["task"], **kwargs
    )
    return dispatcher


def test_the_app_sends_events_with_the_grouping_dispatcher(app: Celery) -> None:
    # Given annoflow's Celery app; then its event dispatcher is the grouping one
    assert issubclass(app.events.Dispatcher, GroupedEventDispatcher)


def test_buffered_events_wait_for_the_timer_and_go_out_in_one_message(app: Celery, hub: _Hub) -> None:
    # Given a dispatcher on an in-memory broker, with a queue that sees every event
    with Connection("memory://") as conn:
        queue = Queue("events-test", Exchange("celeryev", type="topic"), routing_key="#")
        queue(conn.default_channel).declare()
        dispatcher = _dispatcher(app, conn, on_send_buffered=lambda: None)
        # When three task events are sent
        for kind in ("task-received", "task-started", "task-succeeded"):
            dispatcher.send(kind, uuid="t1")
        # Then nothing is published yet, and one flush is scheduled 50 ms out
        assert _messages(conn, queue) == []
        assert [delay for delay, _ in hub.timers] == [GroupedEventDispatcher.flush_interval]
        # When the timer fires
        hub.fire()
        # Then one message carries the three events in order
        (batch,) = _messages(conn, queue)
        assert [e["type"] for e in batch] == ["task-received", "task-started", "task-succeeded"]
        assert {e["uuid"] for e in batch} == {"t1"} and hub.timers == []
        dispatcher.close()


def test_a_full_buffer_is_published_at_once(app: Celery, hub: _Hub) -> None:
    # Given a dispatcher whose buffer holds two events
    with Connection("memory://") as conn:
        queue = Queue("events-full", Exchange("celeryev", type="topic"), routing_key="#")
        queue(conn.default_channel).declare()
        dispatcher = _dispatcher(app, conn, on_send_buffered=lambda: None, buffer_limit=2)
        # When two events are sent
        dispatcher.send("task-received", uuid="t1")
        dispatcher.send("task-started", uuid="t1")
        # Then they are published without waiting for the timer
        (batch,) = _messages(conn, queue)
        assert [e["type"] for e in batch] == ["task-received", "task-started"]
        dispatcher.close()


def test_without_an_event_loop_each_buffered_event_is_flushed_at_once(app: Celery) -> None:
    # Given no event loop in this process
    previous = get_event_loop()
    set_event_loop(None)
    try:
        with Connection("memory://") as conn:
            queue = Queue("events-noloop", Exchange("celeryev", type="topic"), routing_key="#")
            queue(conn.default_channel).declare()
            dispatcher = _dispatcher(app, conn, on_send_buffered=lambda: None)
            # When an event is sent
            dispatcher.send("task-received", uuid="t2")
            # Then it is on the broker at once
            (batch,) = _messages(conn, queue)
            assert [e["uuid"] for e in batch] == ["t2"]
            dispatcher.close()
    finally:
        set_event_loop(previous)


def test_the_worker_sends_buffered_events_before_celery_closes_the_dispatcher(app: Celery, hub: _Hub) -> None:
    # Given annoflow's app, whose consumer runs the flushing step, and a dispatcher holding an event
    assert FlushEventsOnStop in app.steps["consumer"]
    with Connection("memory://") as conn:
        queue = Queue("events-stop", Exchange("celeryev", type="topic"), routing_key="#")
        queue(conn.default_channel).declare()
        dispatcher = _dispatcher(app, conn, on_send_buffered=lambda: None)
        dispatcher.send("task-succeeded", uuid="t3")
        assert _messages(conn, queue) == []
        # When the worker's consumer shuts down (the timer never fired)
        FlushEventsOnStop(SimpleNamespace()).shutdown(SimpleNamespace(event_dispatcher=dispatcher))
        # Then the event was published
        (batch,) = _messages(conn, queue)
        assert [e["type"] for e in batch] == ["task-succeeded"]
        dispatcher.close()
