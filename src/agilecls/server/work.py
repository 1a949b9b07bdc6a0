"""Model work off the event loop: one worker thread, a bounded queue, dynamic micro-batching.

Why one worker: a CPU runs one model computation well; two at once share the cores and each runs
slower (on 2 cores, 10-70× slower). Why a bounded queue: a server that queues without limit
answers every request late instead of some requests at once with 503 and ``Retry-After``. Why
micro-batching: a batch of 32 short texts costs little more than one on a language model, so
requests that wait together are scored in one call and split again.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field


class QueueFull(RuntimeError):
    """The queue holds ``max_pending`` jobs; the caller should answer 503 with ``retry_after``."""

    def __init__(self, pending: int, retry_after: int):
        super().__init__(f"the server is busy ({pending} requests waiting); retry in {retry_after} s")
        self.retry_after = retry_after


class WorkTimeout(RuntimeError):
    """The job did not finish within the request's time limit (it is dropped if it has not started)."""

    def __init__(self, seconds: float):
        super().__init__(f"the work took over the time limit of {seconds:g} s; send less at once or retry later")


async def wait_for(future: Future, time_limit: float):
    """The result of a submitted job, awaited without blocking the event loop, or :class:`WorkTimeout`."""
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), time_limit)
    except asyncio.TimeoutError:
        future.cancel()
        raise WorkTimeout(time_limit) from None


@dataclass
class _Job:
    key: Hashable | None
    run: Callable[[list], Sequence]
    items: list
    future: Future = field(default_factory=Future)


class WorkQueue:
    """Runs jobs one batch at a time on a daemon thread.

    A job is ``run(items) -> results`` (one result per item). Jobs submitted with the same batch
    ``key`` that wait together are merged, up to ``max_batch`` items, into one ``run`` call whose
    results are split back; after the first job of a batch the worker waits at most ``max_wait``
    seconds for more (work queued while the previous batch ran is taken at once). ``key=None``
    never merges.

    Parameters
    ----------
    max_pending : int, default=64
        Jobs allowed to wait; one more raises :class:`QueueFull`.
    max_batch : int, default=64
        Items per merged call (1 turns micro-batching off).
    max_wait : float, default=0.02
        Seconds the worker waits to fill a batch: small beside a model call on a CPU (0.1 to 10 s),
        long enough for clients answered by the previous batch to send their next request.

    Examples
    --------
    >>> queue = WorkQueue(max_batch=8)
    >>> queue.submit(lambda xs: [x * 2 for x in xs], [1, 2], key="double").result()
    [2, 4]
    >>> queue.close()
    """

    def __init__(self, max_pending: int = 64, max_batch: int = 64, max_wait: float = 0.02):
        self.max_pending, self.max_batch, self.max_wait = max_pending, max(1, max_batch), max_wait
        self._jobs: deque[_Job] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self.running = False
        self.batches = self.items_run = 0
        self.seconds_per_batch = 0.0
        self._thread = threading.Thread(target=self._serve, name="agilecls-model-worker", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return len(self._jobs)

    def submit(self, run: Callable[[list], Sequence], items: list, key: Hashable | None = None) -> Future:
        """Queue ``run(items)``; the future gets this job's results (or its exception)."""
        job = _Job(key, run, list(items))
        with self._ready:
            if self._closed:
                raise RuntimeError("the work queue is closed")
            if len(self._jobs) >= self.max_pending:  # jobs whose caller gave up no longer count
                self._jobs = deque(j for j in self._jobs if not j.future.cancelled())
            if len(self._jobs) >= self.max_pending:
                raise QueueFull(len(self._jobs), self.retry_after())
            self._jobs.append(job)
            self._ready.notify()
        return job.future

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained: pending batches × the mean batch time."""
        return max(1, round(self.seconds_per_batch * (len(self._jobs) + 1)))

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def _serve(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            live = [job for job in batch if job.future.set_running_or_notify_cancel()]  # timed-out jobs drop
            if live:
                self._run(live)

    def _next_batch(self) -> list[_Job] | None:
        with self._ready:
            while not self._jobs and not self._closed:
                self._ready.wait()
            if not self._jobs:
                return None
            first = self._jobs.popleft()
            batch, size = [first], len(first.items)
            if first.key is None:
                return batch
            deadline = time.monotonic() + self.max_wait
            while size < self.max_batch:
                job = next((j for j in self._jobs if j.key == first.key and size + len(j.items) <= self.max_batch),
                           None)
                if job is not None:
                    self._jobs.remove(job)
                    batch.append(job)
                    size += len(job.items)
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    break
                self._ready.wait(left)
            return batch

    def _run(self, batch: list[_Job]) -> None:
        self.running = True
        start = time.perf_counter()
        items = [item for job in batch for item in job.items]
        try:
            results = list(batch[0].run(items))
            if len(results) != len(items):
                raise RuntimeError(f"a batch of {len(items)} items gave {len(results)} results")
        except BaseException as err:  # every waiting request learns why
            for job in batch:
                job.future.set_exception(err)
        else:
            at = 0
            for job in batch:
                job.future.set_result(results[at:at + len(job.items)])
                at += len(job.items)
        finally:
            seconds = time.perf_counter() - start
            self.batches += 1
            self.items_run += len(items)
            self.seconds_per_batch += (seconds - self.seconds_per_batch) / min(self.batches, 20)
            self.running = False
