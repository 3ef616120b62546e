"""Prometheus metrics of the server: requests, verdicts, latency (of every request, and of answers alone), batch
sizes, queue depth and wait, questions in flight, refusals, drops, model-server failures, and the process's own.

Imported by :func:`ragguard.apps.serve.create_app` only, after it checked that prometheus-client is installed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
ROUTES = ("/", "/v1/chat/completions", "/ask", "/v1/models", "/healthz", "/readyz", "/metrics")
ANSWERING = ("/v1/chat/completions", "/ask")
DROP_REASONS = ("disconnected", "queue_timeout", "shutting_down")
UPSTREAM_KINDS = ("timeout", "unreachable", "status", "bad_response")


class Metrics:
    """One app's instruments, in a registry of its own (two apps in one process do not mix counts)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter("ragguard_requests", "HTTP requests by route and status code", ["route", "status"],
                                registry=registry)
        self.verdicts = Counter("ragguard_verdicts", "Answers by verdict", ["verdict"], registry=registry)
        self.latency = Histogram("ragguard_request_seconds", "Request latency by route", ["route"],
                                 buckets=_LATENCY_BUCKETS, registry=registry)
        self.batch_questions = Histogram("ragguard_batch_questions",
                                         "Questions per ask_many call (shared generation passes)",
                                         buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=registry)
        self.queue_depth = Gauge("ragguard_queue_depth", "Requests waiting for generation", registry=registry)
        self.rejected = Counter("ragguard_rejected", "Requests refused because the queue was full", registry=registry)
        self.dropped = Counter("ragguard_dropped", "Queued requests dropped before computation, by reason "
                               "(disconnected: the client left; queue_timeout: waited past --queue-timeout; "
                               "shutting_down: still waiting when the server shut down)",
                               ["reason"], registry=registry)
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        # Answers alone: the fast 400s and 503s of an overloaded server do not hide how long an answer takes.
        self.answer_latency = Histogram("ragguard_answer_seconds", "Latency of answered questions (status 200 of "
                                        "/ask and /v1/chat/completions), by route", ["route"],
                                        buckets=_LATENCY_BUCKETS, registry=registry)
        self.queue_wait = Histogram("ragguard_queue_wait_seconds", "Time a question waited in the queue before its "
                                    "computation started", buckets=_LATENCY_BUCKETS, registry=registry)
        self.in_flight = Gauge("ragguard_in_flight", "Questions being computed now", registry=registry)
        self.upstream_errors = Counter("ragguard_upstream_errors", "Failures of the model server behind the openai "
                                       "backend, by kind", ["kind"], registry=registry)
        for kind in UPSTREAM_KINDS:
            self.upstream_errors.labels(kind)
        ProcessCollector(registry=registry)  # process_resident_memory_bytes, process_cpu_seconds_total, open fds

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)

    async def measure(self, request: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        """HTTP middleware: count every request by route and status, and time it."""
        started = time.perf_counter()
        route = request.url.path if request.url.path in ROUTES else "other"
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            took = time.perf_counter() - started
            self.requests.labels(route, str(status)).inc()
            self.latency.labels(route).observe(took)
            if status == 200 and route in ANSWERING:
                self.answer_latency.labels(route).observe(took)
