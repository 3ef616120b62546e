"""Start real servers on loopback for tests: ``ragguard serve`` subprocesses and tiny OpenAI stubs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def ragguard_server(args: list[str], env: dict[str, str] | None = None, timeout: float = 120.0) -> Iterator[str]:
    """Run ``ragguard serve ARGS`` on a free loopback port; yields its base URL (stops it afterwards)."""
    port = free_port()
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragguard", "serve", "--port", str(port), *args],
        env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ragguard serve exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"ragguard serve did not start within {timeout} s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


@contextmanager
def openai_stub(answer: Callable[[dict[str, Any], int], tuple[int, dict[str, Any], dict[str, str]]]) -> Iterator[tuple[str, list]]:
    """A minimal OpenAI-compatible server: ``answer(request_json, hit_number) -> (status, body, headers)``.

    Yields ``(base_url, requests)``; ``requests`` collects every JSON body received (with its
    ``_path``).
    """
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            body["_path"] = self.path
            with lock:
                received.append(body)
                hit = len(received)
            status, payload, headers = answer(body, hit)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            data = json.dumps({"object": "list", "data": [{"id": "stub-model", "object": "model"}]}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", received
    finally:
        server.shutdown()
        server.server_close()


def completion(texts: list[str], logprobs: list[list[float]] | None = None) -> dict[str, Any]:
    """A chat.completion body with one choice per text.

    ``logprobs[i]``, when given, are choice ``i``'s token log-probabilities, sent as OpenAI and
    vLLM send them (``logprobs.content[].logprob``, one entry per word of the text here).
    """
    def choice(i: int, text: str) -> dict[str, Any]:
        out: dict[str, Any] = {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        if logprobs is not None:
            words = text.split() or [""]
            out["logprobs"] = {"content": [
                {"token": words[min(j, len(words) - 1)], "logprob": v, "bytes": None, "top_logprobs": []}
                for j, v in enumerate(logprobs[i])
            ]}
        return out

    return {
        "id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": "stub-model",
        "choices": [choice(i, t) for i, t in enumerate(texts)],
    }
