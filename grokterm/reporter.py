"""A cohort's writes (metric flushes with their labels, checkpoints) made in order on a
thread of their own, so that the training thread only hands them over.

On a GPU a step takes milliseconds, while a flush may label every changed run's curve
(about 1 ms a run at 400 points: a quarter of a second for 256 runs) and a checkpoint
serializes every run's state; on the training thread both idle the GPU. (Labelling
still holds the GIL here, so the worker makes labels only as often as keeps it within
worker.LABEL_SHARE of the time.) The writes
keep their order (points before the state that follows them, so a checkpoint never
gets ahead of the stored points), and a write's error (LostCohort among them) comes
back to the training thread at its next hand-over or check, after which nothing more
is written."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

Write = Callable[[Any], None]  # a write made on the reporter's sink
DEPTH = 2  # writes queued before the training thread waits for the writer


class Reporter:
    """One producer (the training thread) hands writes to one writer thread."""

    def __init__(self, open_sink: Callable[[], Any], depth: int | None = None):
        self._writes: queue.Queue[Write | None] = queue.Queue(maxsize=depth or DEPTH)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(open_sink,), name="reporter",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def submit(self, write: Write) -> None:
        """Queue a write (waiting while `depth` are queued); raise an earlier write's error."""
        self.check()
        self._writes.put(write)

    def check(self) -> None:
        """Raise the error of a write that failed, if one did."""
        if self.error is not None:
            raise self.error

    def wait(self) -> None:
        """Until every queued write is made; raise the error of one that failed."""
        self._writes.join()
        self.check()

    def close(self) -> None:
        """Drop the queued writes, let the one in progress end, stop the thread. Nothing
        is submitted after."""
        with suppress(queue.Empty):
            while True:
                self._writes.get_nowait()
                self._writes.task_done()
        self._writes.put(None)
        self._thread.join()

    def _run(self, open_sink: Callable[[], Any]) -> None:
        sink = None
        try:
            sink = open_sink()
        except BaseException as err:  # noqa: BLE001  (handed to the training thread)
            self.error = err
        while (write := self._writes.get()) is not None:
            try:
                if self.error is None:
                    write(sink)
            except BaseException as err:  # noqa: BLE001
                self.error = err
            finally:
                self._writes.task_done()
        self._writes.task_done()
        if sink is not None:
            with suppress(Exception):
                sink.close()
