"""What the routes of one app share: the guard, the settings, the batching queue and the metrics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ragguard.apps.serve.batching import MicroBatcher, QueueFull
from ragguard.apps.serve.http import ApiError, internal_error
from ragguard.apps.serve.settings import ServeSettings
from ragguard.config import SamplingConfig
from ragguard.core.types import Report
from ragguard.errors import RagGuardError, UsageError
from ragguard.pipeline import RagGuard

__all__ = ["ServerState"]


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

    def __post_init__(self) -> None:
        # The server answers to its own name and to the generator's.
        self.model_names = {self.settings.model_name, str(getattr(self.guard.generator, "name", self.settings.model_name))}

    async def answer(self, question: str, sampling: SamplingConfig) -> Report:
        """Queue a question and wait for its report; queue and pipeline errors become API errors.

        Any other error of the model (a ``RuntimeError``, CUDA out of memory) becomes the 500 of
        :func:`~ragguard.apps.serve.http.internal_error`, logged on one line.
        """
        try:
            future = self.batcher.submit(question, sampling)
        except QueueFull as exc:
            self.metrics.rejected.inc()
            raise ApiError(503, str(exc), kind="server_overloaded", code="queue_full",
                           headers={"Retry-After": "1"}) from None
        try:
            report = await asyncio.wrap_future(future)
        except UsageError as exc:
            raise ApiError(400, str(exc), code="invalid_value") from None
        except RagGuardError as exc:
            raise ApiError(500, str(exc), kind="server_error") from None
        except Exception as exc:  # noqa: BLE001 - answered here, so it never reaches Starlette's catch-all
            raise internal_error(exc) from None
        self.metrics.verdicts.labels(report.verdict).inc()
        if self.watcher is not None and self.watcher.stale:
            report.warnings.append(f"{self.watcher.error}; answered from index version {self.watcher.version}")
        return report
