"""``ragguard serve`` as operators run it: abandoned requests, upstream failures, readiness, logs, hosts.

The app runs in process under uvicorn on a loopback port (a real HTTP server, so that a client can
hang up) over the fast fakes of ``serve_fakes``; a generator held on an event keeps the one worker
busy for as long as a test needs, so nothing depends on how fast this machine is.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")

from fakes import WordEmbedder  # noqa: E402
from serve_fakes import ListRetriever, SimulatedGenerator  # noqa: E402
from servers import free_port  # noqa: E402

from ragguard.apps.serve import ServeSettings, create_app  # noqa: E402
from ragguard.config import Config  # noqa: E402
from ragguard.pipeline import RagGuard  # noqa: E402

QUESTION = "How many days of annual leave do I get?"


class HeldGenerator(SimulatedGenerator):
    """The fast fake that records every question it answers and holds one saying 'hold' until released."""

    def __init__(self) -> None:
        super().__init__()
        self.started, self.release = threading.Event(), threading.Event()
        self.questions: list[str] = []

    def generate_batch(self, conversations, seeds):  # type: ignore[no-untyped-def]
        asked = [self._question(m) for m in conversations]
        self.questions.extend(q for q in asked if q not in self.questions)
        if any(q.startswith("hold") for q in asked):
            self.started.set()
            self.release.wait(20)  # bounded, so that old code fails instead of hanging
        return super().generate_batch(conversations, seeds)


def guard_of(generator: Any) -> RagGuard:
    embedder = WordEmbedder()
    return RagGuard(Config().replace("retrieval", min_score=None), generator, embedder, ListRetriever(embedder))


@contextmanager
def live(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port, in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the server to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def metric(url: str, line: str) -> float | None:
    for row in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if row.startswith(line + " "):
            return float(row.split()[-1])
    return None


def test_a_queued_request_whose_client_hangs_up_is_never_computed() -> None:
    generator = HeldGenerator()
    app = create_app(guard_of(generator), ServeSettings(max_batch=1, max_wait_ms=0))
    with live(app) as url, ThreadPoolExecutor(1) as pool:
        held = pool.submit(httpx.post, f"{url}/ask", json={"question": f"hold {QUESTION}"}, timeout=60)
        assert generator.started.wait(20)
        body = json.dumps({"question": f"gone {QUESTION}"}).encode()
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as client:
            client.sendall(b"POST /ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            wait_for(lambda: app.state.batcher.depth == 1, "the request to be queued")
        wait_for(lambda: metric(url, 'ragguard_dropped_total{reason="disconnected"}') == 1.0,
                 "the server to see the client leave")
        generator.release.set()
        assert held.result().status_code == 200
        after = httpx.post(f"{url}/ask", json={"question": f"after {QUESTION}"}, timeout=60)
        assert after.status_code == 200  # the queue is first in, first out: the dropped one came before
        assert generator.questions == [f"hold {QUESTION}", f"after {QUESTION}"]
        assert metric(url, 'ragguard_requests_total{route="/ask",status="200"}') == 2.0  # no 200 for nobody
        assert metric(url, 'ragguard_requests_total{route="/ask",status="499"}') == 1.0  # nginx's "client closed"
        assert metric(url, 'ragguard_requests_total{route="/ask",status="500"}') is None


def test_a_request_waiting_past_the_queue_timeout_gets_503_and_is_never_computed() -> None:
    generator = HeldGenerator()
    app = create_app(guard_of(generator), ServeSettings(max_batch=1, max_wait_ms=0, queue_timeout=0.5))
    with live(app) as url, ThreadPoolExecutor(1) as pool:
        held = pool.submit(httpx.post, f"{url}/ask", json={"question": f"hold {QUESTION}"}, timeout=60)
        assert generator.started.wait(20)
        late = httpx.post(f"{url}/ask", json={"question": f"late {QUESTION}"}, timeout=60)
        generator.release.set()
        assert late.status_code == 503, late.text
        error = late.json()["error"]
        assert error["code"] == "queue_timeout" and "\n" not in error["message"] and int(late.headers["retry-after"]) >= 1
        assert held.result().status_code == 200
        assert httpx.post(f"{url}/ask", json={"question": f"after {QUESTION}"}, timeout=60).status_code == 200
        assert generator.questions == [f"hold {QUESTION}", f"after {QUESTION}"]
        assert metric(url, 'ragguard_dropped_total{reason="queue_timeout"}') == 1.0


def test_the_worker_drops_an_item_that_waited_past_the_deadline_by_its_own_clock() -> None:
    """Without an HTTP client watching (the library's MicroBatcher alone), the worker checks the deadline."""
    from ragguard.apps.serve.batching import MicroBatcher, QueueTimeout

    generator = HeldGenerator()
    guard = guard_of(generator)
    now = [0.0]
    dropped: list[str] = []
    batcher = MicroBatcher(guard, ServeSettings(max_batch=1, max_wait_ms=0, queue_timeout=10), on_drop=dropped.append,
                           clock=lambda: now[0])
    batcher.start()
    try:
        held = batcher.submit(f"hold {QUESTION}", guard.config.sampling)
        assert generator.started.wait(20)
        late = batcher.submit(f"late {QUESTION}", guard.config.sampling)
        now[0] = 11.0
        generator.release.set()
        assert held.result(30).question == f"hold {QUESTION}"
        assert isinstance(late.exception(30), QueueTimeout)
    finally:
        batcher.stop()
    assert dropped == ["queue_timeout"] and generator.questions == [f"hold {QUESTION}"]


# ------------------------------------------------------------------ D2: a failing upstream (openai backend)
def openai_guard(url: str, **generator: Any) -> RagGuard:
    from ragguard.generation.backends import build_generator

    config = Config.from_dict({"generator": {"backend": "openai", "base_url": url, "model": "stub-model", **generator},
                               "sampling": {"samples": 3}, "retrieval": {"min_score": None}})
    embedder = WordEmbedder()
    return RagGuard(config, build_generator(config), embedder, ListRetriever(embedder))


def test_a_hung_upstream_costs_a_question_one_timeout_and_answers_504_without_its_address() -> None:
    from fastapi.testclient import TestClient
    from servers import openai_stub

    hang = threading.Event()

    def hung(body: dict, hit: int) -> tuple[int, dict, dict]:
        hang.wait(20)
        return 500, {"error": {"message": "late"}}, {}

    with openai_stub(hung) as (url, received):
        try:
            app = create_app(openai_guard(url, timeout=0.5, max_retries=3), ServeSettings(max_batch=1))
            with TestClient(app) as http:
                response = http.post("/ask", json={"question": QUESTION})
        finally:
            hang.set()
    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_timeout" and error["type"] == "upstream_error"
    assert "127.0.0.1" not in error["message"] and "\n" not in error["message"]
    # The greedy request and the samples' request, each tried once: the deadline was spent by then.
    assert len(received) <= 2


def test_an_upstream_outage_fails_a_batch_once_with_502_and_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    import logging
    from urllib.parse import urlsplit

    from fastapi.testclient import TestClient
    from servers import openai_stub

    def down(body: dict, hit: int) -> tuple[int, dict, dict]:
        return 500, {"error": {"message": "overloaded"}}, {"Retry-After": "0"}

    caplog.set_level(logging.ERROR, logger="ragguard")
    questions = [f"{QUESTION} ({i})" for i in range(4)]
    with openai_stub(down) as (url, received):
        # One batch of the four: it waits (up to 10 s) until they are all there.
        guard = openai_guard(url, max_retries=1)
        app = create_app(guard, ServeSettings(max_batch=4, max_wait_ms=10_000))
        with TestClient(app) as http, ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda q: http.post("/ask", json={"question": q}), questions))
        guard.generator._pool.shutdown(wait=True)  # the batch's other requests may still be trying
    statuses = [r.status_code for r in responses]
    # 4 questions x 2 requests x 2 tries (max_retries 1); no question asked again on its own after the batch failed.
    assert (statuses, len(received)) == ([502] * 4, 16), [r.text for r in responses]
    assert {r.json()["error"]["code"] for r in responses} == {"upstream_error"}
    logged = [r.getMessage() for r in caplog.records if r.name == "ragguard"]
    assert logged == [f"upstream status 500 from {urlsplit(url).netloc}"]


def test_an_unreadable_upstream_answer_is_a_502() -> None:
    from fastapi.testclient import TestClient
    from servers import openai_stub

    def garbage(body: dict, hit: int) -> tuple[int, dict, dict]:
        return 200, {"id": "x", "object": "chat.completion", "created": 0, "model": "stub-model",
                     "choices": [{"index": 0, "message": None, "finish_reason": "stop"}]}, {}

    with openai_stub(garbage) as (url, _):
        with TestClient(create_app(openai_guard(url, max_retries=0), ServeSettings(max_batch=1))) as http:
            response = http.post("/ask", json={"question": QUESTION})
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_error", response.text


def test_upstream_host_drops_credentials_and_path() -> None:
    from ragguard.generation.backends.openai import host_of

    assert host_of("http://user:secret@models.internal:8000/v1") == "models.internal:8000"
    assert host_of("https://[::1]/v1") == "[::1]"


# ------------------------------------------------------------------ D3: liveness and readiness
def test_healthz_and_readyz_answer_head_and_report_a_stopped_worker() -> None:
    from fastapi.testclient import TestClient

    app = create_app(guard_of(SimulatedGenerator()), ServeSettings(max_batch=1))
    with TestClient(app) as http:
        for path in ("/healthz", "/readyz"):
            head = http.head(path)
            assert head.status_code == 200 and head.content == b"", path
        assert http.get("/readyz").json() == {"status": "ready", "reasons": []}
        assert http.get("/healthz").json()["worker"] == "alive"
        app.state.batcher.stop()  # as if the worker thread had died
        ready, health = http.get("/readyz"), http.get("/healthz")
        assert ready.status_code == 503 and ready.json()["reasons"] == ["the worker thread has stopped"]
        assert health.status_code == 503 and health.json()["worker"] == "stopped"
        assert http.head("/readyz").status_code == 503


def test_readyz_is_503_after_the_model_server_failed_until_it_answers_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient
    from servers import openai_stub

    from ragguard.apps.serve import routes

    answering = threading.Event()

    def flaky(body: dict, hit: int) -> tuple[int, dict, dict]:
        from servers import completion

        if answering.is_set():
            return 200, completion([f"Annual leave is 25 days. {i}" for i in range(body.get("n", 1))]), {}
        return 500, {"error": {"message": "overloaded"}}, {"Retry-After": "0"}

    with openai_stub(flaky) as (url, _):
        with TestClient(create_app(openai_guard(url, max_retries=0), ServeSettings(max_batch=1))) as http:
            assert http.get("/readyz").status_code == 200
            assert http.post("/ask", json={"question": QUESTION}).status_code == 502
            ready = http.get("/readyz")  # it lists its models, but its answers fail
            assert ready.status_code == 503, ready.text
            assert ready.json()["reasons"][0].startswith("the model server's last answer failed (upstream status 500")
            assert http.get("/healthz").status_code == 200  # alive: restarting would not help
            answering.set()
            assert http.post("/ask", json={"question": QUESTION}).status_code == 200
            assert http.get("/readyz").status_code == 200  # a question succeeded
            answering.clear()
            assert http.post("/ask", json={"question": QUESTION}).status_code == 502
            assert http.get("/readyz").status_code == 503
            monkeypatch.setattr(routes, "READY_AFTER_S", 0.0)  # as if 30 s had passed: let traffic try again
            assert http.get("/readyz").status_code == 200


def test_readyz_is_503_while_the_model_server_cannot_be_reached() -> None:
    from fastapi.testclient import TestClient

    guard = openai_guard(f"http://127.0.0.1:{free_port()}/v1", max_retries=0)  # nothing listens there
    with TestClient(create_app(guard, ServeSettings(max_batch=1))) as http:
        assert http.post("/ask", json={"question": QUESTION}).status_code == 502
        ready = http.get("/readyz")
        assert ready.status_code == 503 and "upstream unreachable" in ready.json()["reasons"][0]
        guard.generator.served_models = lambda endpoint=0: ["stub-model"]  # it is back
        assert http.get("/readyz").status_code == 200


# ------------------------------------------------------------------ D4: access log and request ids
def test_every_request_gets_an_access_line_and_an_x_request_id(caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import re

    from fastapi.testclient import TestClient

    caplog.set_level(logging.INFO, logger="ragguard.access")
    with TestClient(create_app(guard_of(SimulatedGenerator()), ServeSettings(max_batch=1))) as http:
        mine = http.post("/ask", json={"question": QUESTION}, headers={"X-Request-ID": "trace-42"})
        fresh = http.get("/nowhere")
        odd = http.get("/healthz", headers={"X-Request-ID": "has spaces\tand tabs"})
    assert mine.status_code == 200 and mine.headers["x-request-id"] == "trace-42"  # the client's, echoed
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])  # made here, even on a 404
    assert odd.headers["x-request-id"] != "has spaces\tand tabs"
    lines = [r.getMessage() for r in caplog.records if r.name == "ragguard.access"]
    assert len(lines) == 3
    assert re.fullmatch(r'testclient "POST /ask" 200 \d+\.\d{3}s id=trace-42', lines[0]), lines[0]
    assert lines[1].startswith('testclient "GET /nowhere" 404 ')


def test_the_access_log_can_be_turned_off_and_serve_lines_carry_a_timestamp(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from fastapi.testclient import TestClient

    from ragguard.apps.cli.serve import _log_config

    caplog.set_level(logging.INFO, logger="ragguard.access")
    settings = ServeSettings(max_batch=1, access_log=False)
    with TestClient(create_app(guard_of(SimulatedGenerator()), settings)) as http:
        assert http.get("/healthz").headers["x-request-id"]
    assert not [r for r in caplog.records if r.name == "ragguard.access"]
    config = _log_config()
    assert all(f["fmt"].startswith("%(asctime)s ") for f in config["formatters"].values())


# ------------------------------------------------------------------ D6: a loopback server and the browser
def test_a_loopback_server_refuses_foreign_host_names_and_non_json_posts() -> None:
    from servers import ragguard_server

    evil = {"Host": "attacker.example", "Origin": "http://attacker.example"}
    with ragguard_server(["--guard", "serve_fakes:build_guard"]) as url:
        port = url.rsplit(":", 1)[1]
        for path in ("/", "/healthz"):
            refused = httpx.get(f"{url}{path}", headers=evil, timeout=10)  # what a DNS-rebound page sends
            assert refused.status_code == 400 and refused.json()["error"]["code"] == "host_not_allowed", path
        ask = httpx.post(f"{url}/ask", json={"question": QUESTION}, headers=evil, timeout=30)
        assert ask.status_code == 400
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LocalHost"):
            assert httpx.get(f"{url}/healthz", headers={"Host": host}, timeout=10).status_code == 200, host
        # A cross-site "simple" POST (no preflight): text/plain, or a form.
        for kind in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"Content-Type": kind} if kind else {}
            simple = httpx.post(f"{url}/ask", content=json.dumps({"question": QUESTION}), headers=headers, timeout=30)
            assert simple.status_code == 415 and simple.json()["error"]["code"] == "unsupported_media_type", kind
        typed = httpx.post(f"{url}/ask", content=json.dumps({"question": QUESTION}), timeout=30,
                           headers={"Content-Type": "application/json; charset=utf-8"})
        assert typed.status_code == 200


def test_allowed_host_adds_the_name_a_proxy_sends() -> None:
    from servers import ragguard_server

    with ragguard_server(["--guard", "serve_fakes:build_guard", "--allowed-host", "rag.internal"]) as url:
        for host, status in (("rag.internal", 200), ("RAG.internal:443", 200), ("other.internal", 400)):
            assert httpx.get(f"{url}/healthz", headers={"Host": host}, timeout=10).status_code == status, host


def test_a_server_on_another_address_accepts_any_host_unless_told() -> None:
    from ragguard.apps.cli.serve import _allowed_hosts

    assert _allowed_hosts("0.0.0.0", []) is None
    assert _allowed_hosts("0.0.0.0", ["rag.example.com"]) == ("rag.example.com",)
    assert set(_allowed_hosts("127.0.0.1", [])) == {"localhost", "127.0.0.1", "::1"}


# ------------------------------------------------------------------ N1: behind a path prefix
def test_root_path_keeps_the_prefix_in_redirects() -> None:
    """nginx strips /ragguard/ and forwards the rest; FastAPI's slash redirects must point back under it."""
    from servers import ragguard_server

    with ragguard_server(["--guard", "serve_fakes:build_guard", "--root-path", "/ragguard"]) as url:
        for path in ("/healthz/", "/v1/models/"):
            redirect = httpx.get(f"{url}{path}", headers={"Host": "localhost"}, timeout=10, follow_redirects=False)
            assert redirect.status_code == 307, path
            assert redirect.headers["location"] == f"http://localhost/ragguard{path.rstrip('/')}"
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200  # the stripped paths still route


# ------------------------------------------------------------------ N4: Retry-After from the drain rate
def test_retry_after_is_the_measured_time_to_drain_the_queue() -> None:
    from ragguard.apps.serve.batching import MicroBatcher

    now = [0.0]

    class Ticking(SimulatedGenerator):
        def generate_batch(self, conversations, seeds):  # type: ignore[no-untyped-def]
            now[0] += 4.0  # each generation pass "takes" 4 s on the batcher's clock
            return super().generate_batch(conversations, seeds)

    generator = Ticking()
    guard = guard_of(generator)
    batcher = MicroBatcher(guard, ServeSettings(max_batch=1, max_wait_ms=0), clock=lambda: now[0])
    assert batcher.retry_after() == 1  # nothing measured yet
    batcher.start()
    try:
        batcher.submit(QUESTION, guard.config.sampling).result(30)
    finally:
        batcher.stop()
    assert batcher.retry_after() == 4 * generator.calls  # one question to drain: the one asking


def test_a_full_queue_says_when_to_retry_from_the_measured_rate() -> None:
    from fastapi.testclient import TestClient

    generator = HeldGenerator()
    app = create_app(guard_of(generator), ServeSettings(max_batch=1, max_wait_ms=0, queue_size=1))
    with TestClient(app) as http, ThreadPoolExecutor(2) as pool:
        app.state.batcher._per_item = 7.5  # as measured: 7.5 s per question
        held = pool.submit(http.post, "/ask", json={"question": f"hold {QUESTION}"})
        assert generator.started.wait(20)
        queued = pool.submit(http.post, "/ask", json={"question": f"queued {QUESTION}"})
        wait_for(lambda: app.state.batcher.depth == 1, "the second request to be queued")
        full = http.post("/ask", json={"question": f"full {QUESTION}"})
        generator.release.set()
        assert full.status_code == 503 and full.json()["error"]["code"] == "queue_full"
        assert full.headers["retry-after"] == "15"  # the queued one and this one, 7.5 s each
        assert held.result().status_code == queued.result().status_code == 200


# ------------------------------------------------------------------ N9: usage from the model server
def test_chat_usage_takes_prompt_tokens_from_the_upstream_report() -> None:
    from fastapi.testclient import TestClient
    from servers import completion, openai_stub

    def counted(body: dict, hit: int) -> tuple[int, dict, dict]:
        payload = completion([f"Annual leave is 25 days. {i}" for i in range(body.get("n", 1))])
        payload["usage"] = {"prompt_tokens": 37, "completion_tokens": 6, "total_tokens": 43}
        return 200, payload, {}

    with openai_stub(counted) as (url, _):
        with TestClient(create_app(openai_guard(url), ServeSettings(max_batch=1))) as http:
            body = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]}).json()
    assert body["usage"]["prompt_tokens"] == 37, body["usage"]
    assert "prompt_tokens is 0" not in body["usage"].get("note", "")


# ------------------------------------------------------------------ D5: groups of one round at once
def test_requests_differing_in_sampling_run_concurrently_on_a_model_server() -> None:
    """A round's groups (here two seeds) are asked at once when the generator is a model server's."""
    from fastapi.testclient import TestClient

    class Server(SimulatedGenerator):
        thread_safe = True  # as the openai backend's

        def __init__(self) -> None:
            super().__init__()
            self.meet, self.met = threading.Barrier(2, timeout=20), set()

        def generate_batch(self, conversations, seeds):  # type: ignore[no-untyped-def]
            for question in (self._question(m) for m in conversations):
                if question not in self.met:  # each question's first pass waits for the other's
                    self.met.add(question)
                    self.meet.wait()  # BrokenBarrierError after 20 s when the groups run one after another
            return super().generate_batch(conversations, seeds)

    app = create_app(guard_of(Server()), ServeSettings(max_batch=2, max_wait_ms=10_000))
    with TestClient(app) as http, ThreadPoolExecutor(2) as pool:
        asks = [pool.submit(http.post, "/ask", json={"question": f"{QUESTION} {seed}", "seed": seed})
                for seed in (1, 2)]
        responses = [a.result() for a in asks]
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    assert [r.json()["samples"][1]["seed"] for r in responses] != [None, None]


def test_the_worker_outlives_an_error_outside_a_question() -> None:
    """An error of the batcher's own hooks (a metric) must not end the thread: later requests would hang."""
    from ragguard.apps.serve.batching import MicroBatcher

    guard = guard_of(SimulatedGenerator())
    fail = [True]

    def observe(size: int) -> None:
        if fail[0]:
            raise ValueError("metric broke")

    batcher = MicroBatcher(guard, ServeSettings(max_batch=1, max_wait_ms=0), observe_batch=observe)
    batcher.start()
    try:
        broken = batcher.submit(QUESTION, guard.config.sampling)
        assert isinstance(broken.exception(20), ValueError)
        fail[0] = False
        assert batcher.alive and batcher.submit(QUESTION, guard.config.sampling).result(20).question == QUESTION
    finally:
        batcher.stop()


def test_metrics_time_answers_apart_and_count_queue_wait_in_flight_upstream_failures_and_the_process() -> None:
    from fastapi.testclient import TestClient

    from ragguard.errors import UpstreamError

    class FailsOnDown(SimulatedGenerator):
        def generate_batch(self, conversations, seeds):  # type: ignore[no-untyped-def]
            if any("down" in self._question(m) for m in conversations):
                raise UpstreamError("the server at http://127.0.0.1:9/v1 did not answer within 5 s", "timeout",
                                    "127.0.0.1:9")
            return super().generate_batch(conversations, seeds)

    with TestClient(create_app(guard_of(FailsOnDown()), ServeSettings(max_batch=1))) as http:
        for i in range(2):
            assert http.post("/ask", json={"question": f"{QUESTION} {i}"}).status_code == 200
        assert http.post("/ask", json={"question": ""}).status_code == 400  # fast, and not an answer
        assert http.post("/ask", json={"question": "Is the server down?"}).status_code == 504
        text = http.get("/metrics").text
    assert 'ragguard_answer_seconds_count{route="/ask"} 2.0' in text
    assert 'ragguard_request_seconds_count{route="/ask"} 4.0' in text
    assert "ragguard_queue_wait_seconds_count 3.0" in text  # every question computed (the 400 never queued)
    assert "ragguard_in_flight 0.0" in text
    assert 'ragguard_upstream_errors_total{kind="timeout"} 1.0' in text
    assert 'ragguard_upstream_errors_total{kind="unreachable"} 0.0' in text
    assert 'ragguard_dropped_total{reason="shutting_down"} 0.0' in text
    assert "process_resident_memory_bytes" in text
