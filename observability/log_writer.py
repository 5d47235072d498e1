"""Log lines leave the event loop through one writer thread.

A write to stdout can block: a slow disk under a log file, a full pipe to the container's log
collector. Done on the event loop, it stalls every request for as long (measured: 54 ms in one
write of an `interaction finished` line, in the middle of an ACK latency run; BENCHMARKS.md).
`LineWriter` is the file-like object the log handlers write to: `write()` only appends to a bounded
in-memory buffer. The writer thread wakes every `interval_s` (50 ms) and writes everything waiting in
one call, then flushes; `write()` wakes it early only when `batch_lines` are waiting. Waking the
thread for every line cost the event loop more than the line itself (a lock handoff and a thread
switch per line: 15–20 % of the OpenAI API's requests per second under Hypercorn, BENCHMARKS.md). While the stream stays blocked and the buffer is full, new lines are dropped and counted;
one line says how many once writing works again. `close()` writes what is left (at exit); after it,
writes go straight to the stream.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from typing import TextIO

from config.settings import MODULE_NAME

DEFAULT_MAX_LINES = 10_000  # ~4 MB of typical lines: a few seconds of a very busy service
DEFAULT_INTERVAL_S = 0.05  # how late a line may reach the stream
DEFAULT_BATCH_LINES = 256  # this many waiting wake the writer at once


class LineWriter:
    def __init__(self, stream: TextIO, max_lines: int = DEFAULT_MAX_LINES,
                 interval_s: float = DEFAULT_INTERVAL_S, batch_lines: int = DEFAULT_BATCH_LINES) -> None:
        self.stream = stream
        self.max_lines = max_lines
        self.interval_s = interval_s
        self.batch_lines = batch_lines
        self.dropped = 0  # lines lost since the last report (buffer full, or the stream failed)
        self._pending: collections.deque[str] = collections.deque()
        self._wake = threading.Event()
        self._drop_lock = threading.Lock()
        self._stopping = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def write(self, text: str) -> int:
        if self._closed:
            self._write_out(text)
            return len(text)
        if len(self._pending) >= self.max_lines:
            with self._drop_lock:
                self.dropped += 1
            return 0
        self._pending.append(text)
        # Otherwise the writer's next pass (at most interval_s away) takes it.
        if len(self._pending) >= self.batch_lines and not self._wake.is_set():
            self._wake.set()
        return len(text)

    def isatty(self) -> bool:
        """Whether the stream is a terminal (LOG_FORMAT=auto picks the console format then)."""
        try:
            return bool(self.stream.isatty())
        except (AttributeError, ValueError):
            return False

    def flush(self) -> None:
        """Nothing to do here: the writer thread flushes after every batch."""

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is waiting (up to `timeout_s` when the stream is blocked); later writes are direct."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._closed = True
            self._write_pending()  # lines that came in while the thread was finishing

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self._write_pending()
            if self._stopping and not self._pending:
                return

    def _write_pending(self) -> None:
        pending = self._pending
        while pending:
            parts = [pending.popleft() for _ in range(len(pending))]
            if not self._write_out("".join(parts)):
                with self._drop_lock:
                    self.dropped += len(parts)
        # Reported after the lines that were buffered before the loss, once the buffer is empty.
        if self.dropped:
            with self._drop_lock:
                dropped, self.dropped = self.dropped, 0
            if not self._write_out(_dropped_line(dropped)):
                with self._drop_lock:
                    self.dropped += dropped

    def _write_out(self, text: str) -> bool:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stdout closed or broken: nothing better to do with a log line
            return False
        return True


def _dropped_line(count: int) -> str:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1_000_000):06d}Z"
    return json.dumps({
        "event": "log lines dropped: the log stream was blocked and the buffer full",
        "level": "warning", "module": MODULE_NAME, "component": "log_writer", "action": "write_logs",
        "dropped": count, "timestamp": stamp,
    }) + "\n"
