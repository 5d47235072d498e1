"""observability/log_writer.py: log lines written by a thread, never blocking the caller."""

from __future__ import annotations

import json
import threading
import time

import pytest

from observability.log_writer import LineWriter

DEADLINE_S = 10.0


class Stream:
    """A text stream that records what it is given; `gate` cleared makes write() block, `broken`
    makes it raise like a closed pipe."""

    def __init__(self) -> None:
        self.text = ""
        self.writes = 0
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.broken = False
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        self.entered.set()
        self.gate.wait()
        if self.broken:
            raise BrokenPipeError("closed")
        with self.lock:
            self.text += text
            self.writes += 1
        return len(text)

    def flush(self) -> None:
        pass

    def lines(self) -> list[str]:
        with self.lock:
            return self.text.splitlines()


def wait_for(predicate) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.001)


def call_returns(fn) -> bool:
    """Run fn in a thread: True if it returned before the deadline (False: it blocked)."""
    done = threading.Event()
    thread = threading.Thread(target=lambda: (fn(), done.set()), daemon=True)
    thread.start()
    return done.wait(DEADLINE_S)


def blocked_writer(stream: Stream, first: str, **kwargs) -> LineWriter:
    """A writer whose thread is inside the stream's write() of `first`, held there until gate.set()."""
    writer = LineWriter(stream, **kwargs)
    stream.gate.clear()
    writer.write(first)
    assert stream.entered.wait(DEADLINE_S)
    return writer


@pytest.fixture
def stream():
    s = Stream()
    yield s
    s.gate.set()


def test_lines_reach_the_stream_in_order(stream):
    writer = LineWriter(stream)
    for i in range(500):
        writer.write(f"line {i}\n")
    wait_for(lambda: len(stream.lines()) == 500)
    assert stream.lines() == [f"line {i}" for i in range(500)]
    writer.close()


def test_a_line_waits_for_the_next_pass_and_a_full_batch_wakes_the_writer_at_once(stream):
    writer = LineWriter(stream, interval_s=3600, batch_lines=3)  # no timed pass during the test
    writer.write("a\n")
    writer.write("b\n")
    writer.write("c\n")  # the batch is full: the writer wakes now, not in an hour
    wait_for(lambda: len(stream.lines()) == 3)
    assert stream.writes == 1  # a and b did not wake it: all three went out together
    writer.close()


def test_a_lone_line_goes_out_with_the_next_timed_pass(stream):
    writer = LineWriter(stream, interval_s=0.01, batch_lines=1000)
    writer.write("alone\n")
    wait_for(lambda: stream.lines() == ["alone"])
    writer.close()


def test_lines_waiting_together_are_written_in_one_call(stream):
    writer = blocked_writer(stream, "first\n")
    for i in range(100):
        writer.write(f"queued {i}\n")
    stream.gate.set()
    wait_for(lambda: len(stream.lines()) == 101)
    assert stream.writes == 2
    writer.close()


def test_a_blocked_stream_does_not_block_the_writer(stream):
    writer = blocked_writer(stream, "blocks the thread\n")
    assert call_returns(lambda: [writer.write(f"more {i}\n") for i in range(1000)])
    assert stream.lines() == []  # nothing got through while blocked
    stream.gate.set()
    wait_for(lambda: len(stream.lines()) == 1001)
    writer.close()


def test_a_full_buffer_drops_lines_and_says_how_many(stream):
    writer = blocked_writer(stream, "in flight\n", max_lines=10)
    for i in range(25):
        writer.write(f"line {i}\n")
    assert writer.dropped == 15
    stream.gate.set()
    wait_for(lambda: len(stream.lines()) == 12)
    lines = stream.lines()
    assert lines[:11] == ["in flight"] + [f"line {i}" for i in range(10)]
    report = json.loads(lines[11])
    assert report["dropped"] == 15 and report["level"] == "warning" and report["component"] == "log_writer"
    assert writer.dropped == 0
    writer.close()


def test_a_failing_stream_never_raises_and_the_loss_is_reported(stream):
    writer = LineWriter(stream)
    stream.broken = True
    assert writer.write("lost\n") == len("lost\n")  # the caller never sees the failure
    wait_for(lambda: writer.dropped == 1)
    stream.broken = False
    writer.write("back\n")
    wait_for(lambda: len(stream.lines()) == 2)
    assert stream.lines()[0] == "back"
    assert json.loads(stream.lines()[1])["dropped"] == 1
    writer.close()


def test_close_writes_what_is_waiting_and_later_lines_go_straight_out(stream):
    writer = blocked_writer(stream, "a\n")
    writer.write("b\n")
    writer.write("c\n")
    stream.gate.set()
    writer.close()
    assert stream.lines() == ["a", "b", "c"]
    writer.write("after close\n")
    assert stream.lines()[-1] == "after close"  # written by the caller itself, at once
