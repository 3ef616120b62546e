"""``ragguard serve`` over real HTTP on loopback: the OpenAI client, /ask, streaming, batching, limits.

The server runs as a subprocess (``ragguard serve --guard serve_fakes:build_guard``) serving the
fast deterministic pipeline of ``serve_fakes``; one integration test serves the embedded model.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from fakes import CONTRACT_KEYS
from servers import ragguard_server

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUESTIONS = [
    "How many days of annual leave do I get?",
    "Do I need an employment certificate without the payroll bank card?",
    "How do I connect to the VPN from home?",
    "Can I carry over leave days?",
    "Who issues the employment certificate?",
    "What do I need for the VPN?",
    "Is annual leave per calendar year?",
    "Does HR handle the certificate?",
]


@pytest.fixture(scope="module")
def server() -> str:
    args = ["--guard", "serve_fakes:build_guard", "--max-batch", "8", "--max-wait-ms", "40", "--max-body-kb", "4",
            "--max-tokens", "128"]
    with ragguard_server(args, env={"RAGGUARD_API_KEY": KEY, "RAGGUARD_FAKE_PASS_MS": "5"}) as url:
        yield url


@pytest.fixture
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=30)


def without_timings(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "timings"}


def test_chat_completion_with_the_openai_client(client: openai.OpenAI, server: str) -> None:
    response = client.chat.completions.create(
        model="ragguard", messages=[{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": QUESTIONS[0]}], seed=7,
    )
    report = response.model_extra["ragguard"]
    assert set(report) >= CONTRACT_KEYS
    assert response.choices[0].message.content == report["answer"] != ""
    assert response.choices[0].finish_reason == "stop" and response.model == "ragguard"
    assert report["question"] == QUESTIONS[0] and len(report["samples"]) == 5
    assert report["sources"][0]["doc_id"] == "leave-annual.md"  # retrieved from the served index
    # The same question and seed through /ask give the same report.
    direct = httpx.post(f"{server}/ask", json={"question": QUESTIONS[0], "seed": 7}, headers=AUTH, timeout=30).json()
    assert without_timings(direct) == without_timings(report)
    # `seed` is the base seed: another seed draws other samples.
    other = client.chat.completions.create(model="ragguard", messages=[{"role": "user", "content": QUESTIONS[0]}],
                                           seed=8).model_extra["ragguard"]
    assert [s["seed"] for s in other["samples"]] != [s["seed"] for s in report["samples"]]


def test_request_parameters_map_to_sampling(client: openai.OpenAI) -> None:
    ask = dict(model="ragguard", messages=[{"role": "user", "content": QUESTIONS[1]}])
    three = client.chat.completions.create(**ask, extra_body={"samples": 3}).model_extra["ragguard"]
    assert len(three["samples"]) == 3
    greedy = client.chat.completions.create(**ask, temperature=0).model_extra["ragguard"]
    assert len(greedy["samples"]) == 1 and greedy["samples"][0]["greedy"]
    assert any("temperature=0" in w for w in greedy["warnings"])
    # The generator's own name is accepted as the model too.
    assert client.chat.completions.create(**{**ask, "model": "simulated"}).choices[0].message.content
    assert {m.id for m in client.models.list().data} == {"ragguard", "simulated"}


def test_stream_yields_the_voted_answer_and_ends_with_done(client: openai.OpenAI, server: str) -> None:
    messages = [{"role": "user", "content": QUESTIONS[2]}]
    whole = client.chat.completions.create(model="ragguard", messages=messages)
    chunks = list(client.chat.completions.create(model="ragguard", messages=messages, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["ragguard"]["answer"] == text
    assert all(c.id == chunks[0].id for c in chunks)
    raw = httpx.post(f"{server}/v1/chat/completions", headers=AUTH, timeout=30,
                     json={"model": "ragguard", "messages": messages, "stream": True})
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.endswith("data: [DONE]\n\n")
    events = [line for line in raw.text.split("\n\n") if line]
    assert all(e.startswith("data: ") for e in events)


def test_concurrent_requests_share_passes_and_equal_asking_alone(server: str) -> None:
    alone = {q: httpx.post(f"{server}/ask", json={"question": q}, headers=AUTH, timeout=30).json() for q in QUESTIONS}
    before = _metric(server, "ragguard_batch_questions_count")
    with ThreadPoolExecutor(len(QUESTIONS)) as pool:
        together = list(pool.map(
            lambda q: httpx.post(f"{server}/ask", json={"question": q}, headers=AUTH, timeout=30).json(), QUESTIONS))
    calls = _metric(server, "ragguard_batch_questions_count") - before
    assert calls < len(QUESTIONS), "no two concurrent requests shared an ask_many call"
    for q, record in zip(QUESTIONS, together, strict=True):
        assert without_timings(record) == without_timings(alone[q])


def _metric(server: str, name: str) -> float:
    text = httpx.get(f"{server}/metrics", headers=AUTH, timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def test_metrics_count_requests_verdicts_and_latency(client: openai.OpenAI, server: str) -> None:
    client.chat.completions.create(model="ragguard", messages=[{"role": "user", "content": QUESTIONS[3]}])
    text = httpx.get(f"{server}/metrics", headers=AUTH, timeout=10).text
    assert 'ragguard_requests_total{route="/v1/chat/completions",status="200"}' in text
    assert "ragguard_verdicts_total{verdict=" in text
    assert 'ragguard_request_seconds_bucket{le="0.5",route="/v1/chat/completions"}' in text
    assert "ragguard_queue_depth" in text
    assert httpx.get(f"{server}/metrics", timeout=10).status_code == 401  # behind the key like the API


CHAT = "/v1/chat/completions"
GOOD = {"model": "ragguard", "messages": [{"role": "user", "content": "How many leave days?"}]}


@pytest.mark.parametrize(
    ("path", "content", "headers", "status", "code"),
    [
        (CHAT, b'{"model": "ragguard", "messages": [', AUTH, 400, "invalid_json"),
        (CHAT, b"\xff\xfe not json", AUTH, 400, "invalid_json"),
        (CHAT, b'["a list"]', AUTH, 400, "invalid_json"),
        (CHAT, json.dumps({**GOOD, "pad": "x" * 5000}).encode(), AUTH, 413, "request_too_large"),
        (CHAT, json.dumps(GOOD).encode(), {}, 401, "invalid_api_key"),
        (CHAT, json.dumps(GOOD).encode(), {"Authorization": "Bearer wrong"}, 401, "invalid_api_key"),
        (CHAT, json.dumps(GOOD).encode(), {"Authorization": KEY}, 401, "invalid_api_key"),
        (CHAT, json.dumps({**GOOD, "model": "gpt-4o"}).encode(), AUTH, 404, "model_not_found"),
        (CHAT, json.dumps({**GOOD, "n": 3}).encode(), AUTH, 400, "invalid_value"),
        (CHAT, json.dumps({**GOOD, "max_tokens": 100000}).encode(), AUTH, 400, "max_tokens_exceeded"),
        (CHAT, json.dumps({**GOOD, "max_completion_tokens": 100000}).encode(), AUTH, 400, "max_tokens_exceeded"),
        (CHAT, json.dumps({**GOOD, "max_tokens": 0}).encode(), AUTH, 400, "invalid_value"),
        (CHAT, json.dumps({**GOOD, "temperature": "hot"}).encode(), AUTH, 400, "invalid_value"),
        (CHAT, json.dumps({**GOOD, "temperature": 5}).encode(), AUTH, 400, "invalid_value"),
        (CHAT, json.dumps({**GOOD, "seed": -1}).encode(), AUTH, 400, "invalid_value"),
        (CHAT, json.dumps({**GOOD, "samples": 1000}).encode(), AUTH, 400, "invalid_value"),
        (CHAT, json.dumps({**GOOD, "stream": "yes"}).encode(), AUTH, 400, "invalid_value"),
        (CHAT, json.dumps({"model": "ragguard", "messages": []}).encode(), AUTH, 400, "invalid_value"),
        (CHAT, json.dumps({"model": "ragguard"}).encode(), AUTH, 400, "invalid_value"),
        (CHAT, json.dumps({"messages": [{"role": "system", "content": "hi"}]}).encode(), AUTH, 400, "invalid_value"),
        (CHAT, json.dumps({"messages": [{"role": "user", "content": "   "}]}).encode(), AUTH, 400, "invalid_value"),
        (CHAT, json.dumps({"messages": ["just text"]}).encode(), AUTH, 400, "invalid_value"),
        (CHAT, json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}).encode(), AUTH, 400,
         "invalid_value"),
        ("/ask", json.dumps({"question": ""}).encode(), AUTH, 400, "invalid_value"),
        ("/ask", json.dumps({"query": "typo"}).encode(), AUTH, 400, "unknown_field"),
        ("/ask", json.dumps({"question": "leave?", "sample": 3}).encode(), AUTH, 400, "unknown_field"),
        ("/ask", json.dumps({"question": "leave?", "samples": 0}).encode(), AUTH, 400, "invalid_value"),
        ("/ask", json.dumps({"question": "leave?"}).encode(), {}, 401, "invalid_api_key"),
        ("/nowhere", b"{}", AUTH, 404, None),
    ],
    ids=lambda v: v if isinstance(v, (int, str)) and not isinstance(v, bytes) else None,
)
def test_bad_requests_get_openai_style_errors_and_the_server_stays_up(
    server: str, path: str, content: bytes, headers: dict, status: int, code: str | None
) -> None:
    response = httpx.post(f"{server}{path}", content=content, headers={"content-type": "application/json", **headers},
                          timeout=30)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"] and "\n" not in error["message"]
    assert error["code"] == code
    if code == "max_tokens_exceeded":  # the field the client sent, not its alias
        assert error["param"] in json.loads(content)
    if code == "unknown_field":  # named, with the field it probably meant
        assert error["param"] in ("query", "sample") and "/ask takes question, samples, seed" in error["message"]
        assert error["param"] != "sample" or "did you mean 'samples'?" in error["message"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{server}/healthz", timeout=5).json()["status"] == "ok"


def test_wrong_method_and_chunked_oversized_body(server: str) -> None:
    wrong = httpx.get(f"{server}/ask", headers=AUTH, timeout=10)
    assert wrong.status_code == 405 and "error" in wrong.json()
    # No Content-Length (chunked upload): the limit is enforced while reading.
    big = (b"x" * 1024 for _ in range(8))
    response = httpx.post(f"{server}/ask", content=big, headers={**AUTH, "content-type": "application/json"}, timeout=10)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert "start the server with a larger --max-body-kb" in response.json()["error"]["message"]
    assert httpx.get(f"{server}/healthz", timeout=5).status_code == 200


def test_healthz_needs_no_key(server: str) -> None:
    health = httpx.get(f"{server}/healthz", timeout=5).json()
    assert health["status"] == "ok" and health["generator"] == "simulated" and health["max_batch"] == 8


def test_max_batch_defaults_to_1_for_a_model_on_the_cpu() -> None:
    with ragguard_server(["--guard", "serve_fakes:build_guard"]) as url:  # the fake says device "cpu"
        assert httpx.get(f"{url}/healthz", timeout=5).json()["max_batch"] == 1


def test_load_200_requests_at_concurrency_8_without_errors(server: str) -> None:
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=60)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        started = time.perf_counter()
        try:
            r = client.chat.completions.create(
                model="ragguard", messages=[{"role": "user", "content": f"{QUESTIONS[i % len(QUESTIONS)]} ({i})"}])
            assert r.choices[0].message.content == r.model_extra["ragguard"]["answer"]
        except Exception as exc:  # noqa: BLE001 - counted and reported below
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
            return
        with lock:
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(200)))
    wall = time.perf_counter() - started
    assert not errors, errors[:3]
    assert len(latencies) == 200
    q = statistics.quantiles(latencies, n=20)
    print(f"\nload: 200 requests, concurrency 8: p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"p95 {q[18] * 1000:.0f} ms, {200 / wall:.1f} requests/s (fake generator, shared machine)")


def test_a_full_queue_answers_503_with_retry_after() -> None:
    args = ["--guard", "serve_fakes:build_guard", "--max-batch", "1", "--queue-size", "1", "--max-wait-ms", "0"]
    with ragguard_server(args, env={"RAGGUARD_FAKE_PASS_MS": "300"}) as url:
        def ask(i: int) -> httpx.Response:
            return httpx.post(f"{url}/ask", json={"question": f"{QUESTIONS[0]} {i}"}, timeout=60)

        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(ask, range(8)))
        refused = [r for r in responses if r.status_code == 503]
        assert refused, [r.status_code for r in responses]
        assert all(int(r.headers["retry-after"]) >= 1 and r.json()["error"]["code"] == "queue_full" for r in refused)
        assert {r.status_code for r in responses} <= {200, 503}
        assert ask(99).status_code == 200  # still serving once the queue drains
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert f"ragguard_rejected_total {float(len(refused))}" in metrics


def test_an_abstention_answers_a_short_refusal_and_ask_keeps_the_empty_answer() -> None:
    """A chat completion never has empty content; the report (and /ask) keep answer == ""."""
    off_topic = [{"role": "user", "content": "zebra quantum saxophone"}]
    with ragguard_server(["--guard", "serve_fakes:build_gated_guard"]) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=30)
        response = client.chat.completions.create(model="ragguard", messages=off_topic)
        report = response.model_extra["ragguard"]
        assert response.choices[0].message.content == "The knowledge base has nothing on this."
        assert report["answer"] == "" and report["verdict"] == "abstain" and report["samples"] == []
        chunks = list(client.chat.completions.create(model="ragguard", messages=off_topic, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "The knowledge base has nothing on this."
        assert chunks[-1].model_extra["ragguard"]["answer"] == ""
        record = httpx.post(f"{url}/ask", json={"question": "zebra quantum saxophone"}, timeout=30).json()
        assert record["answer"] == "" and record["verdict"] == "abstain"
        on_topic = client.chat.completions.create(model="ragguard", messages=[{"role": "user", "content": QUESTIONS[0]}])
        assert on_topic.choices[0].message.content == on_topic.model_extra["ragguard"]["answer"] != ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--guard", "no_such_module:build"], "cannot be loaded"),
        (["--guard", "serve_fakes"], "is not MODULE:FUNCTION"),
        (["--guard", "serve_fakes:PASSAGES"], "list"),
        (["--guard", "serve_fakes:build_guard", "--config", "x.yaml"], "not both"),
        (["--guard", "serve_fakes:build_guard", "--port", "{busy}"], "cannot listen on 127.0.0.1:{busy}"),
    ],
)
def test_serve_usage_errors_are_one_line_and_exit_2(args: list[str], expected: str) -> None:
    import socket
    import subprocess
    import sys

    from servers import ROOT, TESTS

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = str(busy.getsockname()[1])
        args = [a.replace("{busy}", port) for a in args]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
        proc = subprocess.run([sys.executable, "-m", "ragguard", "serve", *args], env=env, capture_output=True,
                              text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ragguard: error: ")
    assert expected.replace("{busy}", port) in lines[0]


@pytest.mark.integration
def test_serving_the_embedded_model_end_to_end(tmp_path: Path) -> None:
    """The real embedded model behind the server, the OpenAI client, and a second ragguard over the openai backend."""
    from fakes import WordEmbedder

    from ragguard.config import Config
    from ragguard.generation.backends import build_generator
    from ragguard.pipeline import RagGuard

    config = tmp_path / "small.yaml"
    config.write_text("sampling:\n  samples: 2\n  max_new_tokens: 16\n", encoding="utf-8")
    question = "How many days of annual leave do I get?"
    # The converted model is cached like tests/test_integration.py does (RAGGUARD_TEST_CACHE reuses one).
    cache = os.environ.get("RAGGUARD_TEST_CACHE") or str(tmp_path / "cache")
    with ragguard_server(["--config", str(config)], env={"RAGGUARD_CACHE": cache}, timeout=300) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)
        response = client.chat.completions.create(model="ragguard", messages=[{"role": "user", "content": question}])
        report = response.model_extra["ragguard"]
        assert response.choices[0].message.content == report["answer"]
        assert len(report["samples"]) == 2 and report["fingerprint"]["model"].startswith("HuggingFaceTB/SmolLM2-135M")
        assert report["sources"] and report["verdict"] in {"consistent", "inconsistent", "contradiction", "abstain"}
        again = httpx.post(f"{url}/ask", json={"question": question}, timeout=300).json()
        assert without_timings(again) == without_timings(report)  # deterministic through the server

        # A second ragguard whose generator is the first one, over the openai backend.
        remote = Config.from_dict({
            "generator": {"backend": "openai", "base_url": f"{url}/v1", "model": "ragguard"},
            "sampling": {"samples": 2, "max_new_tokens": 16},
            "retrieval": {"top_k": 0},
        })
        # Its own embedder is a small fake: this test is about the generation path, not clustering quality.
        guard = RagGuard(remote, build_generator(remote), WordEmbedder())
        outer = guard.ask(question)
        assert len(outer.samples) == 2 and outer.samples[0].greedy and outer.samples[1].seed is not None
        assert outer.fingerprint.model == "ragguard" and url in outer.fingerprint.device
        # The outer greedy answer is the server's greedy-only answer (temperature 0).
        greedy = httpx.post(f"{url}/v1/chat/completions", timeout=300, json={
            "model": "ragguard", "temperature": 0, "max_tokens": 16,
            "messages": [{"role": "system", "content": remote.prompt.system},
                         {"role": "user", "content": f"Question: {question}"}]}).json()
        assert outer.samples[0].text == greedy["choices"][0]["message"]["content"].strip()


def test_a_running_server_reloads_its_index_after_index_add_and_reports_a_change_it_cannot_load(
        tmp_path: Path) -> None:
    from fakes import WordEmbedder
    from fastapi.testclient import TestClient
    from serve_fakes import SimulatedGenerator

    from ragguard.apps.serve import create_app
    from ragguard.config import Config
    from ragguard.pipeline import RagGuard
    from ragguard.retrieval.index import IndexRetriever, KnowledgeIndex, build_index, update_index

    docs, index = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nAnnual leave is 25 days per year.", encoding="utf-8")
    embedder = WordEmbedder()
    build_index([docs], index, embedder)
    retriever = IndexRetriever(KnowledgeIndex.load(index), embedder)
    config = Config().replace("retrieval", min_score=None, top_k=3)
    guard = RagGuard(config, SimulatedGenerator(), embedder, retriever, str(index))
    question = {"question": "How do I connect to the VPN from home?", "samples": 2}
    with TestClient(create_app(guard)) as http:
        health = http.get("/healthz")
        before = health.json()["index"]
        assert before["name"] == index.name and not before["stale"] and before["reloads"] == 0
        assert str(tmp_path) not in health.text  # /healthz is open: no absolute path
        assert {s["doc_id"] for s in http.post("/ask", json=question).json()["sources"]} == {"docs/leave.md"}

        (docs / "vpn.md").write_text("# VPN\n\nConnect to the VPN from home with the client.", encoding="utf-8")
        update_index(index, [docs], embedder)  # what `ragguard index add` does
        record = http.post("/ask", json=question).json()
        assert "docs/vpn.md" in {s["doc_id"] for s in record["sources"]}  # answered from the new index
        after = http.get("/healthz").json()["index"]
        assert after["version"] != before["version"] and after["reloads"] == 1 and not after["stale"]

        # A change that cannot be loaded: the old index keeps answering, and health and records say so.
        manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
        manifest["files"]["chunks.jsonl"] = "0" * 64
        (index / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        record = http.post("/ask", json=question).json()
        assert "docs/vpn.md" in {s["doc_id"] for s in record["sources"]}
        assert any("changed but was not reloaded" in w and after["version"] in w for w in record["warnings"])
        stale = http.get("/healthz").json()["index"]
        assert stale["stale"] and "checksum" in stale["error"] and stale["version"] == after["version"]


def test_chat_completions_carry_usage_from_the_token_counts(client: openai.OpenAI, server: str) -> None:
    from fakes import WordEmbedder
    from fastapi.testclient import TestClient
    from serve_fakes import ListRetriever, SimulatedGenerator

    from ragguard.apps.serve import create_app
    from ragguard.config import Config
    from ragguard.core.protocols import Completion
    from ragguard.generation.prompts import build_messages
    from ragguard.pipeline import RagGuard

    class CountingGenerator(SimulatedGenerator):
        """Answers with one log-probability per word, and a tokenizer that counts words."""

        def generate_batch(self, conversations, seeds):  # type: ignore[no-untyped-def]
            rows = super().generate_batch(conversations, seeds)
            return [[Completion(c.text, c.seed, tuple(-0.1 for _ in c.text.split())) for c in row] for row in rows]

        def encode_prompt(self, messages):  # type: ignore[no-untyped-def]
            return [0] * sum(len(m["content"].split()) for m in messages)

    embedder = WordEmbedder()
    config = Config().replace("retrieval", min_score=None)
    guard = RagGuard(config, CountingGenerator(), embedder, ListRetriever(embedder))
    with TestClient(create_app(guard)) as http:
        body = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTIONS[0]}],
                                                       "samples": 3}).json()
    report = body["ragguard"]
    words = sum(len(s["text"].split()) for s in report["samples"])
    assert [s["tokens"] for s in report["samples"]] == [len(s["text"].split()) for s in report["samples"]]
    from ragguard.core.types import Passage

    passages = [Passage(p["doc_id"], p["chunk_id"], p["text"], p["score"]) for p in report["sources"]]
    prompt = build_messages(QUESTIONS[0], passages, config.prompt.system, config.prompt.max_context_chars)
    expected_prompt = sum(len(m["content"].split()) for m in prompt)
    assert body["usage"] == {"prompt_tokens": expected_prompt, "completion_tokens": words,
                             "total_tokens": expected_prompt + words}

    # The served fake has neither: zeros, with a note, and the OpenAI client reads them.
    response = client.chat.completions.create(model="ragguard", messages=[{"role": "user", "content": QUESTIONS[2]}])
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (0, 0, 0)
    assert "no tokenizer" in response.usage.model_extra["note"]
    chunks = list(client.chat.completions.create(model="ragguard", stream=True,
                                                 messages=[{"role": "user", "content": QUESTIONS[2]}]))
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 0


def _exploding_generator():  # type: ignore[no-untyped-def]
    """The fast fake, raising RuntimeError (as CUDA out of memory does) for a question that says 'explode'."""
    from serve_fakes import SimulatedGenerator

    class Exploding(SimulatedGenerator):
        def generate_batch(self, conversations, seeds):  # type: ignore[no-untyped-def]
            if any("explode" in self._question(m) for m in conversations):
                raise RuntimeError("CUDA out of memory (simulated).\nTried to allocate 2.00 GiB")
            return super().generate_batch(conversations, seeds)

    return Exploding()


def _served_fake(generator: object):  # type: ignore[no-untyped-def]
    from fakes import WordEmbedder
    from serve_fakes import ListRetriever

    from ragguard.config import Config
    from ragguard.pipeline import RagGuard

    embedder = WordEmbedder()
    return RagGuard(Config().replace("retrieval", min_score=None), generator, embedder, ListRetriever(embedder))


def test_a_model_error_is_a_one_line_500_answered_by_ragguard_and_the_next_request_is_served(
        caplog: pytest.LogCaptureFixture) -> None:
    """Nothing reaches Starlette's catch-all, which re-raises (uvicorn's traceback, a closed keep-alive connection)."""
    import logging

    from fastapi.testclient import TestClient

    from ragguard.apps.serve import create_app

    failing = [{"role": "user", "content": "Why does the printer explode?"}]
    caplog.set_level(logging.ERROR, logger="ragguard")
    # raise_server_exceptions: the test client raises what the app re-raised to the server.
    with TestClient(create_app(_served_fake(_exploding_generator())), raise_server_exceptions=True) as http:
        for path, body in [("/ask", {"question": failing[0]["content"]}),
                           ("/v1/chat/completions", {"messages": failing}),
                           ("/v1/chat/completions", {"messages": failing, "stream": True})]:
            response = http.post(path, json=body)
            assert response.status_code == 500, response.text
            assert response.json() == {"error": {
                "message": "internal error (RuntimeError): the server log has the details",
                "type": "server_error", "param": None, "code": None}}
        served = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTIONS[0]}]})
        assert served.status_code == 200 and served.json()["choices"][0]["message"]["content"]
        assert 'ragguard_requests_total{route="/ask",status="500"} 1.0' in http.get("/metrics").text
    logged = [r.getMessage() for r in caplog.records if r.name == "ragguard"]
    assert logged == ["unexpected RuntimeError: CUDA out of memory (simulated). Tried to allocate 2.00 GiB"] * 3
    assert not any(r.exc_info for r in caplog.records)


def test_the_batching_worker_survives_an_error_outside_ask_many() -> None:
    from concurrent.futures import Future

    from serve_fakes import SimulatedGenerator

    from ragguard.apps.serve.batching import MicroBatcher, _Item
    from ragguard.apps.serve.settings import ServeSettings

    guard = _served_fake(SimulatedGenerator())
    batcher = MicroBatcher(guard, ServeSettings())

    def broken(sampling):  # type: ignore[no-untyped-def]
        raise RuntimeError("settings failed")

    batcher._view = broken  # type: ignore[method-assign]
    items = [_Item(q, guard.config.sampling, Future()) for q in QUESTIONS[:2]]
    batcher._answer(items)  # raised out of the worker thread before, stopping it: every later request hung
    assert all(isinstance(i.future.exception(), RuntimeError) for i in items)


def _scripted_generator(script: dict[str, list[tuple[str, bool]]]):  # type: ignore[no-untyped-def]
    """The fast fake answering each question with fixed ``(text, truncated)`` samples, in order."""
    from serve_fakes import SimulatedGenerator

    from ragguard.core.protocols import Completion

    class Scripted(SimulatedGenerator):
        def generate_batch(self, conversations, seeds):  # type: ignore[no-untyped-def]
            return [[Completion(text, seed, truncated=cut) for (text, cut), seed in zip(script[self._question(m)], row,
                                                                                        strict=False)]
                    for m, row in zip(conversations, seeds, strict=True)]

    return Scripted()


def test_finish_reason_is_length_when_the_voted_answer_was_cut_at_max_tokens() -> None:
    from fastapi.testclient import TestClient

    from ragguard.apps.serve import create_app

    cut, whole, other = "You get 25 days of annual", "You get 25 days of annual leave.", "Ask HR about the VPN token."
    script = {  # three samples each: the voted answer is the two that agree
        "How long is my leave?": [(cut, True), (cut, True), (other, False)],
        "How long is my leave, whole?": [(whole, False), (whole, False), (other, True)],  # only the outvoted one cut
    }
    with TestClient(create_app(_served_fake(_scripted_generator(script)))) as http:
        for question, expected in [("How long is my leave?", "length"), ("How long is my leave, whole?", "stop")]:
            body = {"messages": [{"role": "user", "content": question}], "samples": 3}
            response = http.post("/v1/chat/completions", json=body).json()
            report = response["ragguard"]
            assert response["choices"][0]["message"]["content"] == report["answer"] == script[question][0][0]
            assert response["choices"][0]["finish_reason"] == expected
            events = [e for e in http.post("/v1/chat/completions", json={**body, "stream": True}).text.split("\n\n")
                      if e.startswith("data: {")]
            finishes = [json.loads(e[len("data: "):])["choices"][0]["finish_reason"] for e in events]
            assert finishes == [None] * (len(events) - 1) + [expected]  # the last chunk's
