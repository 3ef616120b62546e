"""The OpenAPI 3.1 document of ``ragguard serve`` (``GET /openapi.json``).

The routes read their JSON bodies by hand (:func:`~ragguard.apps.serve.http.read_json`), so FastAPI infers
no schema from them: the bodies of ``/ask`` and ``/v1/chat/completions`` and the error body are declared
here. The ask record is the shipped JSON Schema (:mod:`ragguard.schemas`): OpenAPI 3.1 schemas are JSON
Schema 2020-12, so its ``$defs`` become ``components.schemas`` as they are, their ``$ref`` pointing there.
The document holds nothing of the server's setup but its limits (``--max-samples``, ``--max-tokens``) and
whether it needs the API key: no model name, index or path.

``/openapi.json`` needs no API key, like ``/healthz`` and the page: it says how to call the API, the same
for every server of a ragguard version but for those limits, and no data of the server's, so a client (a
code generator, an API gateway) can read it before it is given a key. ``/metrics`` needs the key: its
counts say what the server was asked.
"""

from __future__ import annotations

from typing import Any

from ragguard._version import __version__
from ragguard.apps.serve.settings import ServeSettings
from ragguard.schemas import record_schema

__all__ = ["openapi_document", "record_components"]

_COMPONENTS = "#/components/schemas/"
_DEFS = "#/$defs/"
_SECURITY = "apiKey"
# The routes that need ``Authorization: Bearer KEY`` when the server has one (routes.authorize).
_KEYED = ("/ask", "/v1/chat/completions", "/v1/models", "/metrics")

DESCRIPTION = (
    "ragguard answers a question from its index with several sampled answers, clusters them by meaning, "
    "flags contradictions and votes. `POST /ask` returns the record of `ragguard ask --json`; "
    "`POST /v1/chat/completions` is OpenAI-compatible, with that record in an extra `ragguard` field. "
    "Every error is `{\"error\": {\"message\", \"type\", \"param\", \"code\"}}`."
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _COMPONENTS + name}


def _rewrite(node: Any) -> Any:
    """``node`` with every ``#/$defs/X`` reference turned into ``#/components/schemas/X``."""
    if isinstance(node, dict):
        return {k: (_COMPONENTS + v[len(_DEFS):] if k == "$ref" and isinstance(v, str) and v.startswith(_DEFS)
                    else _rewrite(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    return node


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"][len(_DEFS):]} if isinstance(node.get("$ref"), str) and node["$ref"].startswith(_DEFS) \
            else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def record_components(root: str = "AskRecord") -> dict[str, Any]:
    """The definitions of the shipped record schema that ``root`` uses (``root`` included), as
    ``components.schemas`` entries whose references point at each other there."""
    defs = record_schema()["$defs"]
    wanted, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(_refs(defs[name]))
    return {name: _rewrite(defs[name]) for name in sorted(wanted)}


def _error_schema() -> dict[str, Any]:
    return {
        "title": "Error",
        "description": "Every error response, in OpenAI's shape.",
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {"error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "additionalProperties": False,
            "properties": {
                "message": {"type": "string", "description": "What was wrong and what to do."},
                "type": {"enum": ["invalid_request_error", "not_found_error", "server_error", "server_overloaded",
                                  "upstream_error"]},
                "param": {"type": ["string", "null"], "description": "The request field at fault, when one is."},
                "code": {"type": ["string", "null"], "description": "invalid_json, invalid_value, unknown_field, "
                         "invalid_api_key, model_not_found, max_tokens_exceeded, request_too_large, "
                         "unsupported_media_type, host_not_allowed, queue_full, queue_timeout, shutting_down, "
                         "upstream_timeout ..."},
            },
        }},
    }


def _request_schemas(settings: ServeSettings) -> dict[str, Any]:
    samples = {"type": ["integer", "null"], "minimum": 1, "maximum": settings.max_samples,
               "description": "How many answers are drawn (at most this server's --max-samples); null: the config's."}
    seed = {"type": ["integer", "null"], "minimum": 0, "maximum": 2**63 - 1,
            "description": "The base seed of the samples; null: the config's."}
    tokens = {"type": ["integer", "null"], "minimum": 1, "maximum": settings.max_tokens,
              "description": "Tokens per answer, at most this server's --max-tokens."}
    text_part = {"type": "object", "required": ["type", "text"],
                 "properties": {"type": {"const": "text"}, "text": {"type": "string"}}}
    return {
        "AskRequest": {
            "title": "AskRequest",
            "type": "object",
            "required": ["question"],
            "additionalProperties": False,
            "description": "Any other field is refused (400 unknown_field).",
            "properties": {"question": {"type": "string", "pattern": "\\S"}, "samples": samples, "seed": seed},
        },
        "ChatMessage": {
            "title": "ChatMessage",
            "type": "object",
            "required": ["role"],
            "properties": {"role": {"type": "string"}},
            "if": {"properties": {"role": {"const": "user"}}},
            "then": {"required": ["content"], "properties": {
                "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": text_part}]}}},
            "description": "Only the user messages' content is read (text, or a list of text parts); other "
                           "messages and keys are not read.",
        },
        "ChatCompletionRequest": {
            "title": "ChatCompletionRequest",
            "type": "object",
            "required": ["messages"],
            "description": "The OpenAI fields ragguard reads; any other one is accepted and ignored. The last "
                           "user message (not empty) is the question; earlier messages are not used.",
            "properties": {
                "messages": {"type": "array", "minItems": 1, "items": _ref("ChatMessage"),
                             "contains": {"properties": {"role": {"const": "user"}}}},
                "model": {"type": ["string", "null"],
                          "description": "The served name (--model-name) or the generator's (GET /v1/models)."},
                "n": {"enum": [1, None], "description": "One voted answer per question."},
                "stream": {"type": "boolean", "description": "Send the answer as server-sent "
                           "`chat.completion.chunk` events (ChatCompletionChunk), the record in the last."},
                "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2,
                                "description": "Of the seeded samples; 0 draws only the greedy answer."},
                "top_p": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1},
                "max_tokens": tokens,
                "max_completion_tokens": tokens,
                "seed": seed,
                "samples": samples,
            },
        },
    }


def _response_schemas() -> dict[str, Any]:
    usage = {
        "title": "Usage",
        "type": "object",
        "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
        "additionalProperties": False,
        "properties": {
            "prompt_tokens": {"type": "integer", "minimum": 0},
            "completion_tokens": {"type": "integer", "minimum": 0},
            "total_tokens": {"type": "integer", "minimum": 0},
            "note": {"type": "string", "description": "What could not be counted (no tokenizer ...)."},
        },
    }
    common = {
        "id": {"type": "string", "pattern": "^chatcmpl-"},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "system_fingerprint": {"type": ["string", "null"], "description": "rg- and the record's config hash."},
    }
    finish = {"enum": ["stop", "length"], "description": "length: the voted answer was cut at max_tokens."}
    return {
        "Usage": usage,
        "ChatCompletion": {
            "title": "ChatCompletion",
            "type": "object",
            "required": ["id", "object", "created", "model", "system_fingerprint", "choices", "usage", "ragguard"],
            "additionalProperties": False,
            "properties": {
                **common,
                "object": {"const": "chat.completion"},
                "choices": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
                    "type": "object",
                    "required": ["index", "message", "finish_reason", "logprobs"],
                    "additionalProperties": False,
                    "properties": {
                        "index": {"const": 0},
                        "message": {"type": "object", "required": ["role", "content"], "additionalProperties": False,
                                    "properties": {"role": {"const": "assistant"}, "content": {
                                        "type": "string", "minLength": 1,
                                        "description": "The voted answer, or a short refusal when ragguard abstains."}}},
                        "finish_reason": finish,
                        "logprobs": {"type": "null"},
                    },
                }},
                "usage": _ref("Usage"),
                "ragguard": _ref("AskRecord"),
            },
        },
        "ChatCompletionChunk": {
            "title": "ChatCompletionChunk",
            "description": "One server-sent event of a streamed completion (`data: {...}`, then `data: [DONE]`); "
                           "the last chunk has the finish_reason, the usage and the record.",
            "type": "object",
            "required": ["id", "object", "created", "model", "system_fingerprint", "choices"],
            "additionalProperties": False,
            "properties": {
                **common,
                "object": {"const": "chat.completion.chunk"},
                "choices": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
                    "type": "object",
                    "required": ["index", "delta", "finish_reason", "logprobs"],
                    "additionalProperties": False,
                    "properties": {
                        "index": {"const": 0},
                        "delta": {"type": "object", "additionalProperties": False,
                                  "properties": {"role": {"const": "assistant"}, "content": {"type": "string"}}},
                        "finish_reason": {"oneOf": [finish, {"type": "null"}]},
                        "logprobs": {"type": "null"},
                    },
                }},
                "usage": _ref("Usage"),
                "ragguard": _ref("AskRecord"),
            },
        },
        "ModelList": {
            "title": "ModelList",
            "type": "object",
            "required": ["object", "data"],
            "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": {
                "type": "object", "required": ["id", "object", "created", "owned_by"],
                "properties": {"id": {"type": "string"}, "object": {"const": "model"}, "created": {"type": "integer"},
                               "owned_by": {"type": "string"}}}}},
        },
        "Health": {
            "title": "Health",
            "type": "object",
            "required": ["status", "worker", "model", "generator", "queue", "max_batch", "index"],
            "additionalProperties": False,
            "properties": {
                "status": {"enum": ["ok", "worker_stopped"]},
                "worker": {"enum": ["alive", "stopped"]},
                "model": {"type": "string"},
                "generator": {"type": "string"},
                "queue": {"type": "integer", "minimum": 0},
                "max_batch": {"type": "integer", "minimum": 1},
                "index": {"type": "object", "description": "The index's folder name (never its path), version, "
                          "reloads and staleness.", "properties": {"name": {"type": ["string", "null"]}}},
            },
        },
        "Readiness": {
            "title": "Readiness",
            "type": "object",
            "required": ["status", "reasons"],
            "additionalProperties": False,
            "properties": {"status": {"enum": ["ready", "not_ready"]},
                           "reasons": {"type": "array", "items": {"type": "string"}}},
        },
    }


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    said = {
        400: "A bad request (invalid JSON, a wrong field, a Host not served here).",
        401: "Missing or wrong API key.",
        404: "The model does not exist here.",
        413: "The body is over --max-body-kb.",
        415: "The body is not sent as application/json.",
        500: "An error of the model itself (the server log has the details).",
        502: "The model server behind the openai backend failed.",
        503: "The queue is full, the request waited past --queue-timeout, or the server is shutting down "
             "(with Retry-After).",
        504: "The model server did not answer within generator.timeout.",
    }
    return {str(status): _json("Error", said[status]) for status in statuses}


def openapi_document(app: Any, settings: ServeSettings) -> dict[str, Any]:
    """The OpenAPI document of ``app`` (FastAPI's, of its routes) with ragguard's bodies declared."""
    from fastapi.openapi.utils import get_openapi

    doc = get_openapi(title=app.title, version=__version__, openapi_version="3.1.0", description=DESCRIPTION,
                      routes=app.routes, servers=app.servers or None)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(record_components())
    schemas.update(_request_schemas(settings))
    schemas.update(_response_schemas())
    schemas["Error"] = _error_schema()
    keyed = settings.api_key is not None
    paths = doc["paths"]
    answering = (400, *((401,) if keyed else ()), 413, 415, 500, 502, 503, 504)
    paths["/ask"]["post"].update(
        summary="Answer a question: the ask --json record",
        requestBody={"required": True, "content": {"application/json": {"schema": _ref("AskRequest")}}},
        responses={"200": _json("AskRecord", "The ask --json record (answer \"\" when ragguard abstains)."),
                   **_errors(*answering)},
    )
    completion = _json("ChatCompletion", "The voted answer as a chat completion, the record in `ragguard`; with "
                                         "`stream: true`, server-sent ChatCompletionChunk events.")
    completion["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    paths["/v1/chat/completions"]["post"].update(
        summary="OpenAI-compatible chat completion (the last user message is the question)",
        requestBody={"required": True, "content": {"application/json": {"schema": _ref("ChatCompletionRequest")}}},
        responses={"200": completion, **_errors(*sorted((*answering, 404)))},
    )
    paths["/v1/models"]["get"]["responses"] = {"200": _json("ModelList", "The served model names."),
                                               **(_errors(401) if keyed else {})}
    paths["/healthz"]["get"]["responses"] = {"200": _json("Health", "Alive, with the load and the index."),
                                             "503": _json("Health", "The worker thread has stopped.")}
    paths["/readyz"]["get"]["responses"] = {"200": _json("Readiness", "Ready."),
                                            "503": _json("Readiness", "Not ready, with the reasons.")}
    for path in ("/healthz", "/readyz"):  # the headers of GET's answer, without its body
        paths[path]["head"]["responses"] = {"200": {"description": "As GET, without the body."},
                                            "503": {"description": "As GET, without the body."}}
    paths["/metrics"]["get"]["responses"] = {
        "200": {"description": "Prometheus metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}},
        **(_errors(401) if keyed else {})}
    paths["/"]["get"]["responses"] = {
        "200": {"description": "The page to try questions.", "content": {"text/html": {"schema": {"type": "string"}}}}}
    if keyed:
        doc["components"]["securitySchemes"] = {_SECURITY: {
            "type": "http", "scheme": "bearer", "description": "The server's RAGGUARD_API_KEY."}}
        for path in _KEYED:
            for operation in paths[path].values():
                operation["security"] = [{_SECURITY: []}]
    return doc
