"""``ragguard serve`` shutting down: waiting questions are turned away with 503, the running batch gets
``--shutdown-timeout`` seconds, and the process ends within that bound instead of computing its whole queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

pytest.importorskip("fastapi")

from fakes import WordEmbedder  # noqa: E402
from serve_fakes import ListRetriever, SimulatedGenerator  # noqa: E402
from servers import ROOT, TESTS, free_port  # noqa: E402

from ragguard.apps.serve.batching import MicroBatcher, ShuttingDown  # noqa: E402
from ragguard.apps.serve.settings import ServeSettings  # noqa: E402
from ragguard.config import Config  # noqa: E402
from ragguard.pipeline import RagGuard  # noqa: E402


class Gate(SimulatedGenerator):
    """The fast fake, holding every pass until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__(0.0, 0.0)
        self.release = threading.Event()

    def generate_batch(self, conversations, seeds):  # type: ignore[no-untyped-def]
        self.release.wait(10)
        return super().generate_batch(conversations, seeds)

    def generate(self, messages, seeds):  # type: ignore[no-untyped-def]
        self.release.wait(10)
        return super().generate(messages, seeds)


def test_drain_turns_away_waiting_and_new_questions_and_lets_the_running_batch_finish() -> None:
    generator = Gate()
    embedder = WordEmbedder()
    guard = RagGuard(Config().replace("retrieval", min_score=None), generator, embedder, ListRetriever(embedder))
    batcher = MicroBatcher(guard, ServeSettings(max_batch=1, max_wait_ms=0))
    batcher.start()
    sampling = guard.config.sampling
    running = batcher.submit("How many days of annual leave do I get?", sampling)
    deadline = time.monotonic() + 10
    while batcher.running == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batcher.running == 1
    waiting = [batcher.submit(f"Can I carry over leave day {i}?", sampling) for i in range(2)]
    assert batcher.drain() == 2
    for future in waiting:
        with pytest.raises(ShuttingDown, match="shutting down and did not start this request"):
            future.result(timeout=1)
    with pytest.raises(ShuttingDown):
        batcher.submit("Who issues the employment certificate?", sampling)
    generator.release.set()
    assert running.result(timeout=10).answer  # the batch being computed is answered
    assert batcher.stop(5.0) is True


def test_sigterm_answers_waiting_requests_503_and_ends_within_the_shutdown_timeout() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "RAGGUARD_FAKE_PASS_MS": "4000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragguard", "serve", "--port", str(port), "--guard", "serve_fakes:build_guard",
         "--max-batch", "1", "--max-wait-ms", "0", "--shutdown-timeout", "1", "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "ragguard serve did not start"
            time.sleep(0.1)

        def ask(i: int) -> str:
            try:
                response = httpx.post(f"{url}/ask", json={"question": f"How many leave days in year {i}?"}, timeout=60)
            except httpx.HTTPError as exc:
                return type(exc).__name__  # the running request, cut at the shutdown timeout
            try:
                return str(response.json().get("error", {}).get("code") or "answered")
            except ValueError:
                return f"{response.status_code} {response.text[:40]}"

        with ThreadPoolExecutor(4) as pool:
            asked = [pool.submit(ask, i) for i in range(4)]
            time.sleep(1.0)  # one computing (4 s a pass), three waiting
            stopped_at = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            took = time.monotonic() - stopped_at
            codes = [a.result(timeout=30) for a in asked]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = proc.stderr.read() if proc.stderr else ""
    # All four would be computed one after the other before: 4 passes of 4 s after SIGTERM.
    assert took < 9, (took, log)
    assert codes.count("shutting_down") == 3, codes
    assert "shutting down (SIGTERM): 1 question(s) being computed get up to 1 s to finish; 3 waiting answered 503 " \
           "shutting_down" in log


def test_cors_origins_let_a_browser_app_of_that_origin_call_the_api_and_no_other() -> None:
    """Without CORS a browser app on another internal origin could not call the API at all (preflight 405)."""
    from fastapi.testclient import TestClient

    from ragguard.apps.serve import create_app
    from ragguard.errors import ConfigError

    embedder = WordEmbedder()
    guard = RagGuard(Config().replace("retrieval", min_score=None), SimulatedGenerator(), embedder,
                     ListRetriever(embedder))
    app = "https://hr.example.com"
    preflight = {"Origin": app, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    with TestClient(create_app(guard, ServeSettings(cors_origins=(app,), api_key="k"))) as http:
        answer = http.options("/ask", headers=preflight)
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == app
        assert "authorization" in answer.headers["access-control-allow-headers"].lower()
        asked = http.post("/ask", json={"question": "How many days of annual leave do I get?"},
                          headers={"Origin": app, "Authorization": "Bearer k"})
        assert asked.status_code == 200 and asked.headers["access-control-allow-origin"] == app
        assert "x-request-id" in asked.headers["access-control-expose-headers"].lower()
        refused = http.post("/ask", json={"question": "How many days?"}, headers={"Origin": app})  # no key
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == app  # readable
        other = http.options("/ask", headers={**preflight, "Origin": "https://evil.example"})
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    with TestClient(create_app(guard, ServeSettings())) as http:  # the default: no CORS, as before
        assert "access-control-allow-origin" not in http.options("/ask", headers=preflight).headers
    with pytest.raises(ConfigError, match="cors_origins has bad value 'hr.example.com'"):
        ServeSettings(cors_origins=("hr.example.com",))
