"""What the routes of one app share: the guard, the settings, the batching queue and the metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ragguard.apps.serve.batching import MicroBatcher, QueueFull, QueueTimeout, ShuttingDown, queue_timeout_error
from ragguard.apps.serve.http import ApiError, internal_error
from ragguard.apps.serve.settings import ServeSettings
from ragguard.config import SamplingConfig
from ragguard.core.types import Report
from ragguard.errors import RagGuardError, UpstreamError, UsageError
from ragguard.pipeline import RagGuard

__all__ = ["ServerState", "upstream_error"]

logger = logging.getLogger("ragguard")

_UPSTREAM_FAILURES = {  # kind -> what the client is told (never the upstream's address)
    "timeout": "the model server did not answer in time",
    "unreachable": "the model server cannot be reached",
    "status": "the model server answered an error",
    "bad_response": "the model server answered something that is not a completion",
}


def upstream_error(exc: UpstreamError) -> ApiError:
    """504 (the model server timed out) or 502 for a failed model server, logged once per failure.

    One failure fails every question of its batch with the same exception: the log line is written
    for the first of them only. It names the kind, the status and ``host:port``, never the URL.
    """
    if not getattr(exc, "_logged", False):
        exc._logged = True  # type: ignore[attr-defined]
        status = f" {exc.status}" if exc.status is not None else ""
        logger.error("upstream %s%s from %s", exc.kind, status, exc.host)
    timeout = exc.kind == "timeout"
    message = _UPSTREAM_FAILURES.get(exc.kind, "the model server failed")
    return ApiError(504 if timeout else 502, f"{message} (upstream {exc.kind}): retry later", kind="upstream_error",
                    code="upstream_timeout" if timeout else "upstream_error")


@dataclass
class ServerState:
    """One app's state (``app.state.server``).

    Args:
        guard: the served pipeline.
        settings: limits, batching, API key, model name and refusals.
        batcher: the queue that answers questions together.
        metrics: the app's :class:`~ragguard.apps.serve.metrics.Metrics`.
        watcher: reloads the index when it changes on disk (:mod:`ragguard.retrieval.index.watch`).
    """

    guard: RagGuard
    settings: ServeSettings
    batcher: MicroBatcher
    metrics: Any
    watcher: Any = None
    model_names: set[str] = field(init=False)
    # The last failure of the model server ({"kind", "status", "at"}), until a question succeeds again.
    upstream_failure: dict[str, Any] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        # The server answers to its own name and to the generator's.
        self.model_names = {self.settings.model_name, str(getattr(self.guard.generator, "name", self.settings.model_name))}

    async def answer(self, question: str, sampling: SamplingConfig, request: Any = None) -> Report:
        """Queue a question and wait for its report; queue and pipeline errors become API errors.

        While the question waits in the queue, it is dropped (never computed) when the client of
        ``request`` disconnects (answered 499, which nobody reads) or when it waited past
        ``settings.queue_timeout`` (503 ``queue_timeout``); both count in ``ragguard_dropped_total``.
        Once computing, it is answered.

        Any other error of the model (a ``RuntimeError``, CUDA out of memory) becomes the 500 of
        :func:`~ragguard.apps.serve.http.internal_error`, logged on one line.
        """
        try:
            future = self.batcher.submit(question, sampling)
        except QueueFull as exc:
            self.metrics.rejected.inc()
            raise ApiError(503, str(exc), kind="server_overloaded", code="queue_full",
                           headers={"Retry-After": str(self.batcher.retry_after())}) from None
        except ShuttingDown as exc:
            raise shutting_down(exc) from None
        try:
            report = await self._wait(future, request)
        except ApiError:  # the client left (499)
            raise
        except ShuttingDown as exc:
            raise shutting_down(exc) from None
        except QueueTimeout as exc:
            raise ApiError(503, str(exc), kind="server_overloaded", code="queue_timeout",
                           headers={"Retry-After": str(self.batcher.retry_after())}) from None
        except UsageError as exc:
            raise ApiError(400, str(exc), code="invalid_value") from None
        except UpstreamError as exc:
            self.metrics.upstream_errors.labels(exc.kind).inc()
            self.upstream_failure = {"kind": exc.kind, "status": exc.status, "at": time.monotonic()}
            raise upstream_error(exc) from None
        except RagGuardError as exc:
            raise ApiError(500, str(exc), kind="server_error") from None
        except Exception as exc:  # noqa: BLE001 - answered here, so it never reaches Starlette's catch-all
            raise internal_error(exc) from None
        self.upstream_failure = None
        self.metrics.verdicts.labels(report.verdict).inc()
        if self.watcher is not None and self.watcher.stale:
            report.warnings.append(f"{self.watcher.error}; answered from index version {self.watcher.version}")
        return report

    async def _wait(self, future: Future, request: Any) -> Report:
        """``future``'s report; cancels it while still queued when the client leaves or the deadline passes."""
        loop = asyncio.get_running_loop()
        result = asyncio.wrap_future(future)
        watchers: set[asyncio.Future] = set()
        if request is not None:
            watchers.add(asyncio.ensure_future(_client_gone(request)))
        timeout = self.settings.queue_timeout
        deadline = loop.time() + timeout if timeout else None
        try:
            while True:
                remaining = None if deadline is None else max(0.0, deadline - loop.time())
                done, _ = await asyncio.wait({result, *watchers}, timeout=remaining,
                                             return_when=asyncio.FIRST_COMPLETED)
                if result in done:
                    return result.result()
                if done:  # the client left
                    watchers.clear()
                    if future.cancel():
                        self.metrics.dropped.labels("disconnected").inc()
                        raise ApiError(499, "the client closed the request before it was started",
                                       code="client_closed")
                    continue  # already computing: finish it
                if deadline is not None:  # waited past the queue deadline
                    deadline = None
                    if future.cancel():
                        self.metrics.dropped.labels("queue_timeout").inc()
                        raise queue_timeout_error(timeout)
        finally:
            for watcher in watchers:
                watcher.cancel()


def shutting_down(exc: ShuttingDown) -> ApiError:
    """503 ``shutting_down``: the request was not started, so a client (or a load balancer) may retry it elsewhere."""
    return ApiError(503, str(exc), kind="server_overloaded", code="shutting_down",
                    headers={"Retry-After": "1", "Connection": "close"})


async def _client_gone(request: Any) -> None:
    """Returns when the client of ``request`` (whose body was read) disconnects."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
