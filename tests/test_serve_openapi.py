"""``GET /openapi.json``: a valid OpenAPI 3.1 document whose bodies are the ones ragguard serves.

The served app runs in-process (FastAPI's TestClient) over the fast fake pipeline of ``serve_fakes``; the
responses of ``/ask`` and ``/v1/chat/completions`` are validated against the document's own schemas,
which for the record are those of the shipped ``record.schema.json``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import jsonschema
import pytest
from fakes import finite_json
from fastapi.openapi.models import OpenAPI
from fastapi.testclient import TestClient
from serve_fakes import build_guard

from ragguard.apps.serve import ServeSettings, create_app
from ragguard.schemas import record_schema

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUESTION = "How many days of annual leave do I get?"


def component(doc: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    """A validator for ``#/components/schemas/NAME`` of ``doc`` (its references resolve in the document)."""
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})


def errors_of(doc: dict[str, Any], name: str, instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
            for e in component(doc, name).iter_errors(instance)]


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [*([node["$ref"]] if isinstance(node.get("$ref"), str) else []), *(r for v in node.values() for r in refs(v))]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


@pytest.fixture(scope="module")
def keyed() -> Any:
    with TestClient(create_app(build_guard(), ServeSettings(api_key=KEY, max_batch=1, max_samples=9))) as http:
        yield http


@pytest.fixture(scope="module")
def doc(keyed: TestClient) -> dict[str, Any]:
    response = keyed.get("/openapi.json")  # no key: the document is open, like /healthz
    assert response.status_code == 200, response.text
    return finite_json(response.text)


def test_openapi_json_is_a_valid_openapi_3_1_document(doc: dict[str, Any], keyed: TestClient) -> None:
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"] == "ragguard"
    OpenAPI.model_validate(doc)  # FastAPI's own model of an OpenAPI 3.1 document
    ids = Counter(op["operationId"] for path in doc["paths"].values() for op in path.values())
    assert ids and max(ids.values()) == 1, ids  # OpenAPI: operationIds are unique
    assert {"/ask", "/v1/chat/completions", "/v1/models", "/healthz", "/readyz", "/metrics", "/"} <= set(doc["paths"])
    for schema in doc["components"]["schemas"].values():  # OpenAPI 3.1's schemas are JSON Schema 2020-12
        jsonschema.Draft202012Validator.check_schema(schema)
    for ref in refs(doc):  # every reference points into the document
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in doc["components"]["schemas"], ref
    # The key: declared, and required by the routes that check it.
    assert doc["components"]["securitySchemes"]["apiKey"] == {"type": "http", "scheme": "bearer",
                                                              "description": "The server's RAGGUARD_API_KEY."}
    for path in ("/ask", "/v1/chat/completions", "/v1/models", "/metrics"):
        assert all(op["security"] == [{"apiKey": []}] and "401" in op["responses"] for op in doc["paths"][path].values())
    for path in ("/healthz", "/readyz", "/"):
        assert all("security" not in op for op in doc["paths"][path].values())
    # The limits are this server's; the docs pages stay off (they load scripts from a CDN).
    ask_request = doc["components"]["schemas"]["AskRequest"]
    assert ask_request["properties"]["samples"]["maximum"] == 9
    assert keyed.get("/docs").status_code == 404 and keyed.get("/redoc").status_code == 404


def test_the_ask_response_schema_is_the_shipped_record_schema(doc: dict[str, Any]) -> None:
    ask = doc["paths"]["/ask"]["post"]
    assert ask["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/AskRecord"}
    assert ask["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/AskRequest"}
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    assert chat["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatCompletion"}
    assert doc["components"]["schemas"]["ChatCompletion"]["properties"]["ragguard"] == {
        "$ref": "#/components/schemas/AskRecord"}
    # Each definition the record uses is the file's, its references moved from #/$defs/ to #/components/schemas/.
    defs = record_schema()["$defs"]
    schemas = doc["components"]["schemas"]
    text = json.dumps({name: schemas[name] for name in defs if name in schemas})
    assert json.loads(text.replace('"#/components/schemas/', '"#/$defs/')) == {n: defs[n] for n in defs if n in schemas}
    for name in ("AskRecord", "RecordFields", "Provenance", "Sample", "Cluster", "Contradiction", "Passage",
                 "Fingerprint", "Grounding", "Claim", "Calibration", "Adaptive"):
        assert name in schemas, name
    for name in ("AuditLine", "CheckOutput"):  # the record file's other outputs are not the API's
        assert name not in schemas


def test_ask_and_chat_responses_match_the_document(doc: dict[str, Any], keyed: TestClient) -> None:
    request = {"question": QUESTION, "samples": 5, "seed": 3}
    assert not errors_of(doc, "AskRequest", request)
    response = keyed.post("/ask", json=request, headers=AUTH)
    assert response.status_code == 200, response.text
    record = finite_json(response.text)
    assert not errors_of(doc, "AskRecord", record)
    assert jsonschema.Draft202012Validator(record_schema()).is_valid(record)  # the shipped file agrees
    assert errors_of(doc, "AskRecord", {**record, "verdict": "maybe"})

    chat = {"model": "ragguard", "messages": [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
            "temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "seed": 3, "samples": 4, "user": "ignored"}
    assert not errors_of(doc, "ChatCompletionRequest", chat)
    response = keyed.post("/v1/chat/completions", json=chat, headers=AUTH)
    assert response.status_code == 200, response.text
    completion = finite_json(response.text)
    assert completion["ragguard"]["question"] == QUESTION
    assert not errors_of(doc, "ChatCompletion", completion)

    with keyed.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}, headers=AUTH) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in streamed.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [finite_json(event) for event in events[:-1]]
    assert chunks[-1]["ragguard"]["question"] == QUESTION
    for chunk in chunks:
        assert not errors_of(doc, "ChatCompletionChunk", chunk)

    models = keyed.get("/v1/models", headers=AUTH).json()
    assert not errors_of(doc, "ModelList", models)
    for path, name in (("/healthz", "Health"), ("/readyz", "Readiness")):
        assert not errors_of(doc, name, keyed.get(path).json())


@pytest.mark.parametrize(("path", "body", "status", "code"), [
    ("/ask", {"question": QUESTION, "sample": 3}, 400, "unknown_field"),
    ("/ask", {"question": "  "}, 400, "invalid_value"),
    ("/ask", {"question": QUESTION, "samples": 10}, 400, "invalid_value"),  # over this server's --max-samples 9
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": QUESTION}], "n": 2}, 400, "invalid_value"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": QUESTION}], "top_p": 0}, 400, "invalid_value"),
    ("/v1/chat/completions", {"messages": []}, 400, "invalid_value"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400,
     "invalid_value"),
])
def test_requests_the_server_refuses_are_refused_by_the_document_and_errors_match_it(
        doc: dict[str, Any], keyed: TestClient, path: str, body: dict[str, Any], status: int, code: str) -> None:
    name = "AskRequest" if path == "/ask" else "ChatCompletionRequest"
    assert errors_of(doc, name, body), body
    response = keyed.post(path, json=body, headers=AUTH)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    assert str(status) in doc["paths"][path]["post"]["responses"]
    assert not errors_of(doc, "Error", finite_json(response.text))


def test_an_unkeyed_server_declares_no_security_and_errors_keep_their_shape(keyed: TestClient) -> None:
    unauthorized = keyed.post("/ask", json={"question": QUESTION})
    assert unauthorized.status_code == 401
    with TestClient(create_app(build_guard(), ServeSettings(max_batch=1))) as http:
        doc = http.get("/openapi.json").json()
        missing = http.get("/nowhere")
    assert "securitySchemes" not in doc["components"]
    assert all("security" not in op and "401" not in op["responses"] for p in doc["paths"].values() for op in p.values())
    for response in (unauthorized, missing):
        assert not errors_of(doc, "Error", response.json()), response.text
