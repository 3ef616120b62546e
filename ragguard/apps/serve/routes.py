"""The routes: ``/`` (the page), ``/healthz``, ``/readyz``, ``/metrics``, ``/v1/models``, ``/ask`` and ``/v1/chat/completions``
(``/openapi.json`` is the application's own: :mod:`ragguard.apps.serve.openapi`).

Every handler reads the app's :class:`~ragguard.apps.serve.state.ServerState` from ``app.state.server``.
Imported by :func:`ragguard.apps.serve.create_app` only, after it checked that FastAPI is installed.
"""

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from ragguard.apps.serve.completions import completion, completion_chunks, usage
from ragguard.apps.serve.http import ApiError, authorize, internal_error, read_json
from ragguard.apps.serve.metrics import CONTENT_TYPE_LATEST
from ragguard.apps.serve.page import page_response
from ragguard.apps.serve.params import question_of, sampling_for
from ragguard.apps.serve.state import ServerState
from ragguard.endpoints import add_notes

__all__ = ["router"]

router = APIRouter()

READY_AFTER_S = 30.0  # /readyz: seconds after a model server's failure before it is ready to be tried again


def _state(request: Request) -> ServerState:
    return request.app.state.server


@router.get("/")
async def page(request: Request) -> Any:
    """The page to try questions; never needs the API key (it asks for it and sends it to ``/ask``)."""
    return page_response(_state(request))


def _index_status(state: ServerState) -> dict[str, Any]:
    """The watcher's status with the index folder's name instead of its path (``/healthz`` is open)."""
    status = dict(state.watcher.status()) if state.watcher is not None else {"path": None}
    path = status.pop("path", None)
    return {"name": Path(path).name if path else None, **status}


# GET and HEAD as two routes of one handler: one route with both methods would give both operations one
# operationId in /openapi.json, which OpenAPI requires to be unique.
@router.get("/healthz", operation_id="healthz")
@router.head("/healthz", operation_id="healthz_head")
async def healthz(request: Request) -> Any:
    """Liveness and load (503 when the worker thread has stopped); never needs the API key."""
    state = _state(request)
    alive = state.batcher.alive
    body = {"status": "ok" if alive else "worker_stopped", "worker": "alive" if alive else "stopped",
            "model": state.settings.model_name, "generator": str(getattr(state.guard.generator, "name", "")),
            "queue": state.batcher.depth, "max_batch": state.settings.max_batch, "index": _index_status(state)}
    return JSONResponse(body, status_code=200 if alive else 503)


@router.get("/readyz", operation_id="readyz")
@router.head("/readyz", operation_id="readyz_head")
async def readyz(request: Request) -> Any:
    """Whether a question can be answered now: 503 with the reasons when the worker thread has stopped,
    or after the model server's last answer failed. A question that succeeds clears the failure; so do
    :data:`READY_AFTER_S` seconds without another (traffic may then try the server again), and, for a
    server that could not be reached, its listing its models at ``/models`` again (asked only then)."""
    state = _state(request)
    reasons = []
    if not state.batcher.alive:
        reasons.append("the worker thread has stopped")
    failure = state.upstream_failure
    if failure is not None:
        age = time.monotonic() - failure["at"]
        probe = getattr(state.guard.generator, "served_models", None)
        if age >= READY_AFTER_S or (failure["kind"] == "unreachable" and callable(probe)
                                    and await asyncio.to_thread(probe)):
            state.upstream_failure = None
        else:
            status = f" {failure['status']}" if failure["status"] is not None else ""
            reasons.append(f"the model server's last answer failed (upstream {failure['kind']}{status}, "
                           f"{age:.0f} s ago)")
    body = {"status": "not_ready" if reasons else "ready", "reasons": reasons}
    return JSONResponse(body, status_code=503 if reasons else 200)


@router.get("/metrics")
async def metrics(request: Request) -> Any:
    state = _state(request)
    authorize(request, state.settings)
    return PlainTextResponse(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/models")
async def models(request: Request) -> Any:
    state = _state(request)
    authorize(request, state.settings)
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "ragguard"}
                                       for name in sorted(state.model_names)]}


ASK_FIELDS = frozenset({"question", "samples", "seed"})  # what /ask reads: anything else is refused, named


@router.post("/ask")
async def ask(request: Request) -> Any:
    """The ``ask --json`` record (``answer`` is ``""`` when ragguard abstains)."""
    state = _state(request)
    authorize(request, state.settings)
    body = await read_json(request, state.settings.max_body_bytes)
    unknown = sorted(set(map(str, body)) - ASK_FIELDS)
    if unknown:  # a typo ("sample") would otherwise silently run the defaults
        import difflib

        near = difflib.get_close_matches(unknown[0], sorted(ASK_FIELDS), n=1, cutoff=0.6)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ApiError(400, f"unknown field {unknown[0]!r}{hint}: /ask takes {', '.join(sorted(ASK_FIELDS))}",
                       param=unknown[0], code="unknown_field")
    question = body.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ApiError(400, "'question' must be a non-empty string", param="question", code="invalid_value")
    sampling, notes = sampling_for({k: body[k] for k in ("samples", "seed") if k in body}, state.guard.config,
                                   state.settings)
    report = await state.answer(question, sampling, request)
    add_notes(report, notes)
    return report.to_dict()


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Any:
    """The voted answer as a chat completion (a short refusal when ragguard abstains), the report alongside."""
    state = _state(request)
    authorize(request, state.settings)
    body = await read_json(request, state.settings.max_body_bytes)
    model = body.get("model")
    names = state.model_names
    if model is not None and model not in names:
        raise ApiError(404, f"the model {model!r} does not exist here: use one of {', '.join(sorted(names))}",
                       kind="not_found_error", param="model", code="model_not_found")
    n = body.get("n")
    if n is not None and n != 1:
        raise ApiError(400, f"'n' must be 1, got {n!r}: ragguard returns one voted answer per question",
                       param="n", code="invalid_value")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, f"'stream' must be true or false, got {stream!r}", param="stream", code="invalid_value")
    question = question_of(body.get("messages"))
    sampling, notes = sampling_for(body, state.guard.config, state.settings)
    report = await state.answer(question, sampling, request)
    add_notes(report, notes)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    name = model or state.settings.model_name
    fingerprint = f"rg-{report.fingerprint.config_hash}" if report.fingerprint is not None else None
    try:
        content = state.settings.refusals.reply(report)
        tokens = usage(report, state.guard)
        if not stream:
            return completion(completion_id, created, name, fingerprint, report, content, tokens)
        # Built before the response starts: an error here is still answered as a 500, not a cut stream.
        chunks = list(completion_chunks(completion_id, created, name, fingerprint, report, content, tokens))
    except Exception as exc:  # noqa: BLE001 - answered here, so it never reaches Starlette's catch-all
        raise internal_error(exc) from None
    return StreamingResponse(iter(chunks), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
