"""The embedded broker writes each message atomically: a reader never sees half a file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from common import fs_transport
from common.celery_app import PipelineSettings, broker_transport, transport_options
from common.settings import Settings


def test_a_message_is_invisible_until_fully_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the embedded broker under a fresh home
    settings = Settings(home=tmp_path)
    url = "filesystem://localhost/"
    options = transport_options(settings, PipelineSettings())
    seen_mid_write: list[Any] = []
    with Connection(url, transport=broker_transport(url), transport_options=options) as conn:
        queue = conn.SimpleQueue("annoflow.test")
        reader = conn.channel()
        real_replace = os.replace

        def replace(src: str, dst: str) -> None:
            # While the message file is still being put in place, a reader finds nothing
            try:
                seen_mid_write.append(reader._get("annoflow.test"))
            except Exception as e:  # kombu's Empty
                seen_mid_write.append(type(e).__name__)
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)
        # When a message is published
        queue.put({"task": "t1"})
        monkeypatch.undo()
        # Then the reader saw no message mid-write, and the whole message arrives after
        assert seen_mid_write == ["Empty"]
        assert queue.get(timeout=2).payload == {"task": "t1"}
        # And no temporary file is left behind
        assert not [n for n in os.listdir(options["data_folder_out"]) if n.startswith(".")]
        queue.close()


def test_messages_written_in_one_millisecond_are_read_in_the_order_written(tmp_path: Path) -> None:
    # Given the embedded broker, and a burst of messages far faster than one per millisecond
    settings = Settings(home=tmp_path)
    url = "filesystem://localhost/"
    options = transport_options(settings, PipelineSettings())
    with Connection(url, transport=broker_transport(url), transport_options=options) as conn:
        queue = conn.SimpleQueue("annoflow.test-order")
        for n in range(200):
            queue.put({"n": n})
        # When they are read back
        received = [queue.get(timeout=2).payload["n"] for _ in range(200)]
        queue.close()
    # Then they come in the order they were written (kombu alone breaks ties at random)
    assert received == list(range(200))


def test_a_message_written_after_the_millisecond_count_gains_a_digit_is_read_after_the_older_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the embedded broker, and a clock that crosses from 9,999 to 10,000 ms between two messages
    settings = Settings(home=tmp_path)
    url = "filesystem://localhost/"
    options = transport_options(settings, PipelineSettings())
    clock = iter([9.999, 10.0])
    monkeypatch.setattr(fs_transport, "_last_stamp", 0)
    monkeypatch.setattr(fs_transport, "wall_clock", lambda: next(clock))
    with Connection(url, transport=broker_transport(url), transport_options=options) as conn:
        queue = conn.SimpleQueue("annoflow.test-digits")
        queue.put({"n": 1})
        queue.put({"n": 2})
        monkeypatch.undo()
        # When they are read back
        received = [queue.get(timeout=2).payload["n"] for _ in range(2)]
        queue.close()
    # Then the older comes first (as text, "10000_..." sorts before "9999_..." unless padded)
    assert received == [1, 2]


def test_a_reader_takes_a_message_within_the_queue_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the embedded broker, and no way to move a file elsewhere (kombu's own reader moves each
    # message to the system's temporary folder: a copy a second reader can overwrite mid-read)
    settings = Settings(home=tmp_path)
    url = "filesystem://localhost/"
    options = transport_options(settings, PipelineSettings())

    def no_move(*_: Any) -> None:
        raise AssertionError("a message left the queue folder")

    monkeypatch.setattr(shutil, "move", no_move)
    with Connection(url, transport=broker_transport(url), transport_options=options) as conn:
        queue = conn.SimpleQueue("annoflow.test-take")
        queue.put({"task": "t1"})
        # When it is read, Then it arrives whole and nothing of it is left in the folder
        assert queue.get(timeout=2).payload == {"task": "t1"}
        assert not [n for n in os.listdir(options["data_folder_in"]) if "annoflow.test-take" in n]
        queue.close()
