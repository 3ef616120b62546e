"""``ragguard serve``: ragguard as an OpenAI-compatible endpoint (``pip install "ragguard[serve]"``).

Routes:

* ``POST /v1/chat/completions``: the last user message is the question. ragguard retrieves from its
  configured index, draws its samples, votes, and answers with the voted answer as the message; the
  whole consistency report rides along in an extra top-level ``ragguard`` field (in the last chunk
  when ``stream`` is true). Request fields: ``model`` (``"ragguard"`` or the generator's name),
  ``seed`` (the base seed of the samples), ``temperature`` (of the seeded samples; 0 draws only the
  greedy answer, so the verdict then measures nothing and says so in ``warnings``), ``top_p``,
  ``max_tokens`` (per answer, at most ``--max-tokens``), ``n`` (must be 1: ragguard returns one
  voted answer), ``stream``, and the extension ``samples`` (answers drawn, at most ``--max-samples``).
  Other OpenAI fields are accepted and ignored; earlier messages are not used (ragguard answers
  one question from its index).
* ``POST /ask``: ``{"question": str, "samples"?: int, "seed"?: int}`` -> the ``ask --json`` record.
* ``GET /v1/models``, ``GET /healthz`` (never needs the API key), ``GET /metrics`` (Prometheus).

Concurrent requests are answered together: a micro-batching queue hands up to ``max_batch``
questions that arrive within ``max_wait_ms`` of each other to one :meth:`RagGuard.ask_many` call,
whose generation passes they share. Each report equals the one a request asked alone gets (seeds
derive from the question). When ``queue_size`` requests already wait, the server answers 503 with
``Retry-After`` instead of piling up work.

With ``RAGGUARD_API_KEY`` set, every route but ``/healthz`` needs ``Authorization: Bearer KEY``.
Errors have OpenAI's JSON shape ``{"error": {"message", "type", "param", "code"}}``.
"""


import asyncio
import contextlib
import dataclasses
import hmac
import importlib
import json
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ragguard.config import SamplingConfig
from ragguard.core.types import Report
from ragguard.errors import ConfigError, RagGuardError, UsageError
from ragguard.pipeline import RagGuard

__all__ = ["ServeSettings", "MicroBatcher", "create_app", "load_guard_factory", "QueueFull"]

logger = logging.getLogger("ragguard")

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_ROUTES = ("/v1/chat/completions", "/ask", "/v1/models", "/healthz", "/metrics")


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching of the server.

    Args:
        max_batch: most questions answered in one :meth:`RagGuard.ask_many` call (1 = no batching).
        max_wait_ms: how long the first queued request waits for others to join its batch.
        queue_size: requests allowed to wait; one more gets 503 with ``Retry-After``.
        max_body_bytes: largest request body; a larger one gets 413.
        max_tokens: largest ``max_tokens`` a request may ask for (per answer).
        max_samples: largest ``samples`` a request may ask for.
        api_key: bearer token every route but ``/healthz`` requires (``None`` = open).
        model_name: the model name the server answers to and reports.
    """

    max_batch: int = 8
    max_wait_ms: float = 10.0
    queue_size: int = 64
    max_body_bytes: int = 64 * 1024
    max_tokens: int = 1024
    max_samples: int = 16
    api_key: str | None = None
    model_name: str = "ragguard"

    def __post_init__(self) -> None:
        checks = [
            ("max_batch", isinstance(self.max_batch, int) and 1 <= self.max_batch <= 1024, "an integer from 1 to 1024"),
            ("max_wait_ms", 0 <= self.max_wait_ms <= 10_000, "a number of milliseconds from 0 to 10000"),
            ("queue_size", isinstance(self.queue_size, int) and self.queue_size >= 1, "an integer >= 1"),
            ("max_body_bytes", isinstance(self.max_body_bytes, int) and self.max_body_bytes >= 256, "an integer >= 256"),
            ("max_tokens", isinstance(self.max_tokens, int) and 1 <= self.max_tokens <= 4096, "an integer from 1 to 4096"),
            ("max_samples", isinstance(self.max_samples, int) and 1 <= self.max_samples <= 64, "an integer from 1 to 64"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"serve setting {name} has bad value {getattr(self, name)!r}: expected {expected}")


class QueueFull(RagGuardError, RuntimeError):
    """The request queue is full (the server answers 503)."""


@dataclass
class _Item:
    question: str
    sampling: SamplingConfig
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """Collects concurrent questions into shared :meth:`RagGuard.ask_many` calls on one worker thread.

    The model is one compute resource, so one thread generates; requests wait in a bounded queue.
    Questions with different sampling settings go to separate calls of the same batch.
    """

    def __init__(self, guard: RagGuard, settings: ServeSettings, observe_batch: Any = None) -> None:
        self.guard = guard
        self.settings = settings
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=settings.queue_size)
        self._views: dict[SamplingConfig, RagGuard] = {}
        self._observe_batch = observe_batch
        self._thread: threading.Thread | None = None

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ragguard-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=timeout)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, question: str, sampling: SamplingConfig) -> Future:
        """Queue a question; raises :class:`QueueFull` instead of waiting when the queue is full."""
        item = _Item(question, sampling)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            raise QueueFull(f"{self.settings.queue_size} requests are already waiting: retry shortly") from None
        return item.future

    def _run(self) -> None:
        wait = self.settings.max_wait_ms / 1000
        while True:
            first = self._queue.get()
            if first is None:
                return
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
                batch.append(item)
            self._answer(batch)
            if stop:
                return

    def _view(self, sampling: SamplingConfig) -> RagGuard:
        """The guard with these sampling settings; shares weights, embedder and index."""
        view = self._views.get(sampling)
        if view is None:
            # The pipeline draws with the view's sampling (a weight-sharing copy of the generator).
            base = self.guard
            cfg = dataclasses.replace(base.config, sampling=sampling)
            view = RagGuard(cfg, base.generator, base.embedder, base.retriever, base.index_path)
            if len(self._views) < 64:  # a bounded cache of request settings
                self._views[sampling] = view
        return view

    def _answer(self, batch: list[_Item]) -> None:
        groups: dict[SamplingConfig, list[_Item]] = {}
        for item in batch:
            groups.setdefault(item.sampling, []).append(item)
        for sampling, items in groups.items():
            if self._observe_batch is not None:
                self._observe_batch(len(items))
            guard = self._view(sampling)
            try:
                reports = guard.ask_many([i.question for i in items])
            except Exception as exc:  # noqa: BLE001 - reported to each waiting request
                if len(items) == 1:
                    items[0].future.set_exception(exc)
                    continue
                for item in items:  # find the failing question: the others still get answers
                    try:
                        item.future.set_result(guard.ask(item.question))
                    except Exception as single:  # noqa: BLE001
                        item.future.set_exception(single)
                continue
            for item, report in zip(items, reports, strict=True):
                item.future.set_result(report)


def load_guard_factory(spec: str) -> RagGuard:
    """Build a guard with ``module:function`` (a callable returning a :class:`RagGuard`)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"--guard {spec!r} is not MODULE:FUNCTION: pass e.g. --guard myapp.guards:build")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--guard {spec!r} cannot be loaded ({exc}): check the module is importable") from None
    if not callable(factory):
        raise UsageError(f"--guard {spec!r} names a {type(factory).__name__}, not a function returning a RagGuard")
    guard = factory()
    if not isinstance(guard, RagGuard):
        raise UsageError(f"--guard {spec!r} returned {type(guard).__name__}, not a ragguard.RagGuard")
    return guard


# --------------------------------------------------------------------- the app
class _ApiError(Exception):
    """An error answered in OpenAI's JSON shape."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param
        self.headers = headers or {}


def _error_body(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _int_field(body: dict[str, Any], name: str, low: int, high: int, what: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _ApiError(400, f"'{name}' must be an integer from {low} to {high} ({what}), got {value!r}",
                        param=name, code="invalid_value")
    return value


def _number_field(body: dict[str, Any], name: str, low: float, high: float, low_open: bool = False) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (low < value if low_open else low <= value) and value <= high
    if not ok:
        bound = "(" if low_open else "["
        raise _ApiError(400, f"'{name}' must be a number in {bound}{low:g}, {high:g}], got {value!r}",
                        param=name, code="invalid_value")
    return float(value)


def _message_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise _ApiError(400, f"messages[{index}] has a non-text content part: ragguard reads text only",
                                param=f"messages[{index}].content", code="invalid_value")
        return "".join(parts)
    raise _ApiError(400, f"messages[{index}].content must be a string or a list of text parts",
                    param=f"messages[{index}].content", code="invalid_value")


def _question_of(messages: Any) -> str:
    """The last user message: the question ragguard answers from its index."""
    if not isinstance(messages, list) or not messages:
        raise _ApiError(400, "'messages' must be a non-empty list of {role, content} objects", param="messages",
                        code="invalid_value")
    question = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _ApiError(400, f"messages[{i}] must be an object with a 'role' and a 'content'",
                            param=f"messages[{i}]", code="invalid_value")
        if message["role"] == "user":
            question = _message_text(message.get("content"), i)
    if question is None or not question.strip():
        raise _ApiError(400, "no non-empty user message: the last user message is the question ragguard answers",
                        param="messages", code="invalid_value")
    return question


def create_app(guard: RagGuard, settings: ServeSettings | None = None) -> Any:
    """The FastAPI application serving ``guard`` (run it with uvicorn, or ``ragguard serve``)."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
        from starlette.exceptions import HTTPException as StarletteHTTPException
    except ImportError as exc:
        raise UsageError(f'ragguard serve needs fastapi, uvicorn and prometheus-client ({exc}): '
                         'run `pip install "ragguard[serve]"`') from None
    settings = settings or ServeSettings()
    registry = CollectorRegistry()
    requests_total = Counter("ragguard_requests", "HTTP requests by route and status code", ["route", "status"],
                             registry=registry)
    verdicts_total = Counter("ragguard_verdicts", "Answers by verdict", ["verdict"], registry=registry)
    latency = Histogram("ragguard_request_seconds", "Request latency by route", ["route"], buckets=_LATENCY_BUCKETS,
                        registry=registry)
    batch_questions = Histogram("ragguard_batch_questions", "Questions per ask_many call (shared generation passes)",
                                buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=registry)
    queue_depth = Gauge("ragguard_queue_depth", "Requests waiting for generation", registry=registry)
    rejected_total = Counter("ragguard_rejected", "Requests refused because the queue was full", registry=registry)

    batcher = MicroBatcher(guard, settings, observe_batch=batch_questions.observe)
    queue_depth.set_function(lambda: batcher.depth)
    model_names = {settings.model_name, str(getattr(guard.generator, "name", settings.model_name))}

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await asyncio.to_thread(batcher.stop)

    app = FastAPI(title="ragguard", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.batcher = batcher
    app.state.settings = settings

    def error_response(exc: _ApiError) -> Any:
        return JSONResponse(_error_body(exc.message, exc.kind, exc.code, exc.param), status_code=exc.status,
                            headers=exc.headers)

    @app.exception_handler(_ApiError)
    async def _api_error(_: Any, exc: _ApiError) -> Any:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Any, exc: StarletteHTTPException) -> Any:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(_error_body(str(exc.detail), kind), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Any, exc: Exception) -> Any:
        logger.error("unexpected %s: %s", type(exc).__name__, exc)
        return JSONResponse(_error_body(f"internal error ({type(exc).__name__})", "server_error"), status_code=500)

    @app.middleware("http")
    async def _measure(request: Any, call_next: Any) -> Any:
        started = time.perf_counter()
        route = request.url.path if request.url.path in _ROUTES else "other"
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            requests_total.labels(route, str(status)).inc()
            latency.labels(route).observe(time.perf_counter() - started)

    def authorize(request: Any) -> None:
        if settings.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.api_key.encode()):
            raise _ApiError(401, "missing or wrong API key: send the header 'Authorization: Bearer <RAGGUARD_API_KEY>'",
                            code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    async def read_json(request: Any) -> dict[str, Any]:
        limit = settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise _ApiError(413, f"the request body is larger than the server's limit of {limit} bytes",
                            code="request_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _ApiError(413, f"the request body is larger than the server's limit of {limit} bytes",
                                code="request_too_large")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks) or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _ApiError(400, f"the request body is not valid JSON ({str(exc)[:120]})", code="invalid_json") from None
        if not isinstance(body, dict):
            raise _ApiError(400, "the request body must be a JSON object", code="invalid_json")
        return body

    async def answer(question: str, sampling: SamplingConfig) -> Report:
        try:
            future = batcher.submit(question, sampling)
        except QueueFull as exc:
            rejected_total.inc()
            raise _ApiError(503, str(exc), kind="server_overloaded", code="queue_full",
                            headers={"Retry-After": "1"}) from None
        try:
            report = await asyncio.wrap_future(future)
        except UsageError as exc:
            raise _ApiError(400, str(exc), code="invalid_value") from None
        except RagGuardError as exc:
            raise _ApiError(500, str(exc), kind="server_error") from None
        verdicts_total.labels(report.verdict).inc()
        return report

    def sampling_for(body: dict[str, Any]) -> tuple[SamplingConfig, list[str]]:
        changes: dict[str, Any] = {}
        notes: list[str] = []
        samples = _int_field(body, "samples", 1, settings.max_samples, "answers drawn")
        if samples is not None:
            changes["samples"] = samples
        seed = _int_field(body, "seed", 0, 2**63 - 1, "the base seed of the samples")
        if seed is not None:
            changes["seed"] = seed
        top_p = _number_field(body, "top_p", 0.0, 1.0, low_open=True)
        if top_p is not None:
            changes["top_p"] = top_p
        limit = settings.max_tokens
        tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if tokens is not None:
            if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
                raise _ApiError(400, f"'max_tokens' must be a positive integer, got {tokens!r}", param="max_tokens",
                                code="invalid_value")
            if tokens > limit:
                raise _ApiError(400, f"'max_tokens' {tokens} exceeds this server's limit of {limit}: ask for at most "
                                     f"{limit}", param="max_tokens", code="max_tokens_exceeded")
            changes["max_new_tokens"] = tokens
        temperature = _number_field(body, "temperature", 0.0, 2.0)
        if temperature == 0.0:
            changes["samples"] = 1  # seeded samples at temperature 0 would all equal the greedy answer
            notes.append("temperature=0: only the greedy answer was drawn, so the verdict does not measure "
                         "consistency (use a temperature > 0)")
        elif temperature is not None:
            changes["temperature"] = temperature
        try:
            sampling = dataclasses.replace(guard.config.sampling, **changes)
        except ConfigError as exc:
            raise _ApiError(400, str(exc), code="invalid_value") from None
        return sampling, notes

    @app.get("/healthz")
    async def healthz() -> Any:
        return {"status": "ok", "model": settings.model_name, "generator": str(getattr(guard.generator, "name", "")),
                "queue": batcher.depth, "max_batch": settings.max_batch}

    @app.get("/metrics")
    async def metrics(request: Request) -> Any:
        authorize(request)
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models(request: Request) -> Any:
        authorize(request)
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "ragguard"}
                                           for name in sorted(model_names)]}

    @app.post("/ask")
    async def ask(request: Request) -> Any:
        authorize(request)
        body = await read_json(request)
        question = body.get("question")
        if not isinstance(question, str) or not question.strip():
            raise _ApiError(400, "'question' must be a non-empty string", param="question", code="invalid_value")
        sampling, notes = sampling_for({k: body[k] for k in ("samples", "seed") if k in body})
        report = await answer(question, sampling)
        report.warnings.extend(notes)
        return report.to_dict()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        authorize(request)
        body = await read_json(request)
        model = body.get("model")
        if model is not None and model not in model_names:
            raise _ApiError(404, f"the model {model!r} does not exist here: use one of {', '.join(sorted(model_names))}",
                            kind="not_found_error", param="model", code="model_not_found")
        n = body.get("n")
        if n is not None and n != 1:
            raise _ApiError(400, f"'n' must be 1, got {n!r}: ragguard returns one voted answer per question",
                            param="n", code="invalid_value")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise _ApiError(400, f"'stream' must be true or false, got {stream!r}", param="stream", code="invalid_value")
        question = _question_of(body.get("messages"))
        sampling, notes = sampling_for(body)
        report = await answer(question, sampling)
        report.warnings.extend(notes)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        name = model or settings.model_name
        fingerprint = f"rg-{report.fingerprint.config_hash}" if report.fingerprint is not None else None
        if not stream:
            return {
                "id": completion_id, "object": "chat.completion", "created": created, "model": name,
                "system_fingerprint": fingerprint,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": report.answer},
                             "finish_reason": "stop", "logprobs": None}],
                "ragguard": report.to_dict(),
            }
        return StreamingResponse(
            _sse(completion_id, created, name, fingerprint, report), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    return app


def _sse(completion_id: str, created: int, model: str, fingerprint: str | None, report: Report) -> Iterator[str]:
    """The voted answer as OpenAI chat-completion chunks (known in full before the first chunk)."""

    def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> str:
        payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": fingerprint,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    for piece in _pieces(report.answer):
        yield chunk({"content": piece}, None)
    yield chunk({}, "stop", ragguard=report.to_dict())
    yield "data: [DONE]\n\n"


def _pieces(text: str) -> list[str]:
    """Word-sized pieces whose concatenation is exactly ``text``."""
    pieces: list[str] = []
    start = 0
    for i in range(1, len(text)):
        if text[i].isspace() and not text[i - 1].isspace():
            pieces.append(text[start:i])
            start = i
    if text:
        pieces.append(text[start:])
    return pieces
