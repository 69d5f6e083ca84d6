"""Large hook calls are answered in a worker process, so that they cannot stall the event loop.

Every call is answered on one event loop. A legal 10 MB call costs seconds of CPU (parsing,
validating thousands of codings); on the loop it stalls every other call for as long
(tools/expensive_load.py: normal p99 26 s with 8 such calls in parallel). A worker thread does
not help enough: the GIL gives the loop a turn only every switch interval, and parsing 10 MB of
JSON or freeing it holds the GIL for 100 ms at a stretch (measured: normal p99 still 240 ms
with one large call at a time). A call whose body passes the threshold is therefore answered
whole (parse, gather, decide, render) in a worker process forked from this one, which already
holds the policies and settings; its objects are freed there too, and only the answer and what
the log line and audit record need come back (about 35 kB, under a millisecond to unpickle).
A small call stays on the loop: the round trip would cost more than its work. The worker runs
at the lowest CPU priority (nice 19): the scheduler then serves the loop's process first, so
the large calls take the spare CPU, not the small calls' share (at nice 10 normal p99 was still
160-630 ms under 8 large calls; at 19, 18-34 ms).

At most `queue` large calls wait or run at once; beyond that a large call is refused with 503
(each waiting call holds its body in memory).

A mid-sized call (over `turn_bytes`, not over the threshold) is answered on the loop, but takes
turns: one such call at a time, and its prefetch is read in slices (api/gather.py), so the small
calls run between the slices. Without turns, 8 parallel 250 kB calls of maximal codings (~110 ms
of CPU each) made every small call wait for all eight at each of its awaits (normal p99 1.2 s,
tools/expensive_load.py --body-bytes 250000). A call keeps its turn while it fetches from the
EHR (rare: EHRs prefetch).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from cds_service.api.errors import HookError

T = TypeVar("T")


class Offload:
    """The large-call worker processes of one app (started at the first large call)."""

    def __init__(self, threshold_bytes: int, workers: int, queue: int, turn_bytes: int) -> None:
        self.threshold, self.workers, self.queue = threshold_bytes, workers, queue
        self.turn_bytes = turn_bytes
        self.turn = asyncio.Semaphore(1)  # the mid-sized calls' turn on the event loop
        self._init: tuple[Callable[[Any], None], Any] | None = None
        self._pool: ProcessPoolExecutor | None = None
        self.in_flight = 0

    def bind(self, initializer: Callable[[Any], None], initarg: Any) -> None:
        """What each worker runs once: `initializer(initarg)`, passed by fork (not pickled)."""
        self._init = (initializer, initarg)

    @property
    def started(self) -> bool:
        return self._pool is not None

    def takes(self, body: bytes, worksheets: bool = False) -> bool:
        """Whether the call goes to the worker process: a large body, or a mid-sized one with
        worksheets (`worksheets`, or a QuestionnaireResponse in it). A worksheet is one resource,
        read in one piece however many items it holds (a 255 kB one costs ~100 ms and more), so
        slicing between resources does not help it (issue 24: 8 such calls, normal p50 979 ms)."""
        if self._init is None:
            return False
        if len(body) > self.threshold:
            return True
        return self.waits_turn(len(body)) and (worksheets or b"QuestionnaireResponse" in body)

    def waits_turn(self, size: int) -> bool:
        """Whether a call answered on the loop takes turns with the other mid-sized ones."""
        return size > self.turn_bytes

    def _executor(self) -> ProcessPoolExecutor:
        if self._init is None:
            raise RuntimeError("Offload.bind was not called")
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                # fork: the worker starts with this process's policies, settings and code
                # loaded, and the initializer's argument need not be picklable.
                mp_context=multiprocessing.get_context("fork"),
                initializer=self._init[0],
                initargs=(self._init[1],),
            )
        return self._pool

    async def run(self, step: Callable[..., T], *args: Any) -> T:
        """`step(*args)` in a worker process; HookError(503) when `queue` are already there."""
        if self.in_flight >= self.queue:
            raise HookError(503, f"{self.queue} large calls are in progress; try again shortly")
        self.in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor(), step, *args)
        except BrokenProcessPool:
            self._pool = None  # a worker died (killed, out of memory): start afresh next time
            raise HookError(503, "the large-call worker stopped; try again") from None
        finally:
            self.in_flight -= 1

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def worker_process_setup() -> None:
    """In a large-call worker: yield the CPU to the loop's process, and end with its parent
    (forked, it holds the parent's listening socket and its own end of the task queue, so it
    would otherwise outlive a parent that was killed)."""
    os.nice(19)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
