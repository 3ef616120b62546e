"""The micro-batching queue: concurrent questions share :meth:`RagGuard.ask_many` calls."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ragguard.apps.serve.settings import ServeSettings
from ragguard.config import SamplingConfig
from ragguard.errors import RagGuardError, UpstreamError
from ragguard.pipeline import RagGuard

logger = logging.getLogger("ragguard")

__all__ = ["MicroBatcher", "QueueFull", "QueueTimeout", "ShuttingDown"]


class QueueFull(RagGuardError, RuntimeError):
    """The request queue is full (the server answers 503)."""


class QueueTimeout(RagGuardError, RuntimeError):
    """A request waited in the queue past ``ServeSettings.queue_timeout`` and was not computed (503)."""


class ShuttingDown(RagGuardError, RuntimeError):
    """The server is shutting down: a question not yet started is not computed (503, to retry elsewhere)."""


SHUTTING_DOWN = "the server is shutting down and did not start this request: retry (another replica may answer)"


def queue_timeout_error(timeout: float) -> QueueTimeout:
    return QueueTimeout(f"the request waited {timeout:g} s in the queue without being started and was dropped: "
                        "retry later")


@dataclass
class _Item:
    question: str
    sampling: SamplingConfig
    future: Future = field(default_factory=Future)
    enqueued: float = 0.0  # the batcher's clock when it was queued


class MicroBatcher:
    """Collects concurrent questions into shared :meth:`RagGuard.ask_many` calls on one worker thread.

    The model is one compute resource, so one thread generates; requests wait in a bounded queue.
    Questions with different sampling settings go to separate calls of the same batch: one after
    another for an in-process model, at once for a generator that says ``thread_safe`` (a model
    server behind the ``openai`` backend batches concurrent requests itself).

    A queued item is computed only if nobody gave up on it: an item whose future was cancelled (its
    client left: :meth:`ServerState.answer <ragguard.apps.serve.state.ServerState.answer>` cancels it)
    is skipped, and one that waited past ``settings.queue_timeout`` gets :class:`QueueTimeout` instead of
    a report; ``on_drop(reason)`` counts the latter (``"queue_timeout"``).
    """

    def __init__(self, guard: RagGuard, settings: ServeSettings, observe_batch: Any = None,
                 before_batch: Any = None, on_drop: Any = None, clock: Any = time.monotonic,
                 observe_wait: Any = None) -> None:
        self.guard = guard
        self.settings = settings
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=settings.queue_size)
        self._observe_batch = observe_batch
        self._before_batch = before_batch  # e.g. IndexWatcher.refresh: runs here, between batches
        self._on_drop = on_drop
        self._observe_wait = observe_wait  # seconds each computed question waited in the queue
        self._clock = clock
        self._thread: threading.Thread | None = None
        self._per_item: float | None = None  # measured seconds of computation per question (moving average)
        self._draining = False
        self.running = 0  # questions of the batch being computed now

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def retry_after(self) -> int:
        """Seconds until the queue has drained, from the measured time per question (at least 1)."""
        if self._per_item is None:
            return 1
        waiting = self._queue.qsize() + 1
        return max(1, min(3600, math.ceil(waiting * self._per_item)))

    @property
    def alive(self) -> bool:
        """Whether the worker thread runs (``False`` before :meth:`start`, after :meth:`stop` or if it died)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ragguard-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """End the worker once the questions queued before now are done, waiting ``timeout`` s at most for it.
        Returns ``False`` when it was still computing then (a daemon thread: it ends with the process)."""
        if self._thread is None:
            return True
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        finished = not self._thread.is_alive()
        self._thread = None
        return finished

    def drain(self) -> int:
        """Take no more questions (shutdown): later :meth:`submit` calls and every question still waiting get
        :class:`ShuttingDown`; the batch being computed finishes. Returns how many waiting questions were
        turned away."""
        self._draining = True
        turned = 0
        stop = False
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stop = True
            elif item.future.set_running_or_notify_cancel():
                item.future.set_exception(ShuttingDown(SHUTTING_DOWN))
                turned += 1
                if self._on_drop is not None:
                    self._on_drop("shutting_down")
        if stop:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
        return turned

    def submit(self, question: str, sampling: SamplingConfig) -> Future:
        """Queue a question; raises :class:`QueueFull` instead of waiting when the queue is full, and
        :class:`ShuttingDown` after :meth:`drain`."""
        if self._draining:
            raise ShuttingDown(SHUTTING_DOWN)
        item = _Item(question, sampling, Future(), self._clock())
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            raise QueueFull(f"{self.settings.queue_size} requests are already waiting: retry shortly") from None
        return item.future

    def _take(self, item: _Item) -> bool:
        """Whether to compute ``item`` (it is then running and can no longer be cancelled)."""
        if not item.future.set_running_or_notify_cancel():
            return False  # cancelled: its client left (counted by whoever cancelled it)
        timeout = self.settings.queue_timeout
        waited = self._clock() - item.enqueued
        if timeout and waited > timeout:
            item.future.set_exception(queue_timeout_error(timeout))
            if self._on_drop is not None:
                self._on_drop("queue_timeout")
            return False
        if self._observe_wait is not None:
            self._observe_wait(waited)
        return True

    def _run(self) -> None:
        wait = self.settings.max_wait_ms / 1000
        while True:
            first = self._queue.get()
            if first is None:
                return
            if not self._take(first):
                continue
            batch = [first]
            deadline = time.monotonic() + wait
            stop = False
            while len(batch) < self.settings.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                if self._take(item):
                    batch.append(item)
            if self._before_batch is not None:
                try:
                    self._before_batch()
                except Exception as exc:  # noqa: BLE001 - a failed index check must not stop the server
                    logger.warning("before-batch hook failed: %s", exc)
            started = self._clock()
            self.running = len(batch)
            try:
                self._answer(batch)
            except Exception as exc:  # noqa: BLE001 - escaping here would end the worker: every later request would hang
                logger.error("batching worker: unexpected %s: %s", type(exc).__name__, exc)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
            finally:
                self.running = 0
            per_item = (self._clock() - started) / len(batch)
            self._per_item = per_item if self._per_item is None else 0.7 * self._per_item + 0.3 * per_item
            if stop:
                return

    def _view(self, sampling: SamplingConfig) -> RagGuard:
        """The guard with these sampling settings; shares weights, embedder and index."""
        return self.guard.with_settings(dataclasses.replace(self.guard.config, sampling=sampling))

    def _answer(self, batch: list[_Item]) -> None:
        groups: dict[SamplingConfig, list[_Item]] = {}
        for item in batch:
            groups.setdefault(item.sampling, []).append(item)
        if len(groups) > 1 and getattr(self.guard.generator, "thread_safe", False):
            # A model server (the openai backend) answers concurrent requests together: the round's
            # groups are asked at once instead of one after another.
            with ThreadPoolExecutor(min(len(groups), self.settings.max_batch),
                                    thread_name_prefix="ragguard-group") as pool:
                list(pool.map(lambda group: self._answer_group(*group), groups.items()))
            return
        for sampling, items in groups.items():
            self._answer_group(sampling, items)

    def _answer_group(self, sampling: SamplingConfig, items: list[_Item]) -> None:
        """One :meth:`RagGuard.ask_many` call for questions with the same sampling settings."""
        if self._observe_batch is not None:
            self._observe_batch(len(items))
        try:
            guard = self._view(sampling)
        except Exception as exc:  # noqa: BLE001 - the worker must live on: each request gets the error
            for item in items:
                item.future.set_exception(exc)
            return
        try:
            reports = guard.ask_many([i.question for i in items])
        except Exception as exc:  # noqa: BLE001 - reported to each waiting request
            if len(items) == 1 or isinstance(exc, UpstreamError):  # the server failed, not a question:
                for item in items:  # asking each again would only hold the worker longer
                    item.future.set_exception(exc)
                return
            for item in items:  # find the failing question: the others still get answers
                try:
                    item.future.set_result(guard.ask(item.question))
                except Exception as single:  # noqa: BLE001
                    item.future.set_exception(single)
            return
        for item, report in zip(items, reports, strict=True):
            item.future.set_result(report)
