"""``ragguard serve``: the OpenAI-compatible HTTP server."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import typer

from ragguard.apps.cli.common import _progress, app, guard_for, handle_errors

logger = logging.getLogger("ragguard")


@app.command()
@handle_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    config: Path | None = typer.Option(None, "--config", help="YAML config (default: embedded offline models)."),
    index: Path | None = typer.Option(None, "--index", help="Index folder (default: the bundled example index)."),
    guard_factory: str | None = typer.Option(
        None, "--guard", help="MODULE:FUNCTION returning a ragguard.RagGuard (instead of --config/--index)."
    ),
    max_batch: int | None = typer.Option(
        None, "--max-batch", min=1, max=1024,
        help="Questions per shared generation call (default: 8; 1 for an in-process model on the CPU).",
    ),
    max_wait_ms: float = typer.Option(10.0, "--max-wait-ms", min=0, max=10_000, help="How long a batch waits to fill."),
    queue_size: int = typer.Option(64, "--queue-size", min=1, help="Waiting requests before answering 503."),
    queue_timeout: float = typer.Option(
        60.0, "--queue-timeout", min=0, max=86_400,
        help="Seconds a request may wait before it starts; past it, it is dropped with 503 (0: no deadline).",
    ),
    max_tokens: int = typer.Option(1024, "--max-tokens", min=1, max=4096, help="Largest max_tokens a request may ask."),
    max_samples: int = typer.Option(16, "--max-samples", min=1, max=64, help="Largest samples a request may ask."),
    max_body_kb: int = typer.Option(64, "--max-body-kb", min=1, help="Largest request body in KiB."),
    model_name: str = typer.Option("ragguard", "--model-name", help="Model name the server answers to."),
    allowed_hosts: list[str] = typer.Option(
        [], "--allowed-host",
        help="A Host name clients may use (repeat it; '*' = any). On loopback, localhost names are always allowed.",
    ),
    root_path: str = typer.Option(
        "", "--root-path",
        help="The path prefix a reverse proxy serves the app under (e.g. /ragguard), for redirects and links.",
    ),
    access_log: bool = typer.Option(
        True, "--access-log/--no-access-log", help="One stderr line per request (status, duration, request id)."
    ),
    cors_origins: list[str] = typer.Option(
        [], "--cors-origin",
        help="A web origin whose pages may call the API from a browser, e.g. https://app.example.com (repeat it; "
             "'*' = any). Default: none.",
    ),
    shutdown_timeout: int = typer.Option(
        25, "--shutdown-timeout", min=0, max=3600,
        help="On SIGTERM/Ctrl-C, seconds the requests being computed get to finish; waiting ones get 503 at once "
             "(0: wait for all of them).",
    ),
) -> None:
    """Serve ragguard over HTTP: OpenAI-compatible /v1/chat/completions, /ask, /healthz, /readyz, /metrics,
    /openapi.json."""
    from ragguard.apps.serve import ServeSettings, create_app, load_guard_factory
    from ragguard.errors import UsageError

    try:
        import uvicorn
    except ImportError:
        raise UsageError('ragguard serve needs uvicorn: run `pip install "ragguard[serve]"`') from None
    if guard_factory is not None and (config is not None or index is not None):
        raise UsageError("pass either --guard or --config/--index, not both")
    if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
        raise UsageError(f"--root-path {root_path!r} must start with / and not end with one: e.g. --root-path /ragguard")
    import socket

    try:  # fail before loading any model when the address is taken
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): pass another --port or --host") from None
    guard = load_guard_factory(guard_factory) if guard_factory else guard_for(config, index)
    api_key = os.environ.get("RAGGUARD_API_KEY") or None
    load = getattr(guard.generator, "load", None)
    if callable(load):
        _progress("loading the models…")
        load()  # before the first request, which would otherwise wait for it
    served = getattr(guard.generator, "served_models", None)
    if callable(served) and not served():  # the openai backend: one /models request, 5 s at most
        _progress("warning: the model server does not list its models at /models (down, or no such route): "
                  "/readyz answers 503 after a question fails")
    guard.embedder.embed(["warm-up"])
    if max_batch is None:
        # On a small CPU a batched pass costs about what its rows cost one by one, and padding adds
        # to it (bench/serve_load.py --generator embedded: 0.58x); servers and GPUs batch well.
        max_batch = 1 if str(getattr(guard.generator, "device", "")) == "cpu" else 8
    settings = ServeSettings(max_batch=max_batch, max_wait_ms=max_wait_ms, queue_size=queue_size,
                             queue_timeout=queue_timeout,
                             max_body_bytes=max_body_kb * 1024, max_tokens=max_tokens, max_samples=max_samples,
                             api_key=api_key, model_name=model_name, access_log=access_log,
                             allowed_hosts=_allowed_hosts(host, allowed_hosts),
                             cors_origins=tuple(o.rstrip("/") for o in cors_origins))
    if host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        _progress(f"warning: serving on {host} without RAGGUARD_API_KEY: anyone who can reach it may use it")
    _progress(f"serving {model_name} on http://{host}:{port} (/v1/chat/completions, /ask, /healthz, /readyz, /metrics; "
              f"batches of up to {max_batch}, {max_wait_ms:g} ms wait, auth {'on' if api_key else 'off'})")
    _progress(f"open http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/ in a browser to try questions")
    application = create_app(guard, settings)
    server = _server_class(uvicorn)(uvicorn.Config(
        application, host=host, port=port, log_level="warning", access_log=False, log_config=_log_config(),
        root_path=root_path, timeout_graceful_shutdown=shutdown_timeout or None))
    server.batcher, server.grace = application.state.batcher, shutdown_timeout
    server.run()
    if not server.started:
        raise typer.Exit(3)  # uvicorn logged why


def _server_class(uvicorn: Any) -> Any:
    """A uvicorn server that, on the first SIGTERM or Ctrl-C, turns away the questions still waiting (503, so a
    client or load balancer retries elsewhere) and says what the shutdown waits for."""

    class DrainingServer(uvicorn.Server):  # type: ignore[name-defined,misc]
        batcher: Any = None
        grace: float = 0.0

        def handle_exit(self, sig: int, frame: Any) -> None:
            if not self.should_exit and self.batcher is not None:
                # In a thread: the signal may have interrupted the main thread inside the queue's lock.
                threading.Thread(target=self._drain, args=(signal.Signals(sig).name,), daemon=True).start()
            super().handle_exit(sig, frame)

        def _drain(self, name: str) -> None:
            running, turned = self.batcher.running, self.batcher.drain()
            limit = f"up to {self.grace:g} s" if self.grace else "as long as they need"
            logger.info("shutting down (%s): %d question(s) being computed get %s to finish; %d waiting "
                        "answered 503 shutting_down", name, running, limit, turned)

    return DrainingServer


def _allowed_hosts(host: str, extra: list[str]) -> tuple[str, ...] | None:
    """The Host names served: on loopback the loopback names and ``extra`` (against DNS rebinding),
    elsewhere ``extra`` when given, else any."""
    from ragguard.apps.serve.http import LOOPBACK_HOSTS

    if host in LOOPBACK_HOSTS:
        return (*LOOPBACK_HOSTS, *extra)
    return tuple(extra) or None


def _log_config() -> dict:
    """uvicorn's logging with a timestamp on every line, and ragguard's lines (the access log
    included) timestamped too: a server's log is read by time."""
    import copy
    import logging

    from uvicorn.config import LOGGING_CONFIG

    for handler in logging.getLogger("ragguard").handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s ragguard: %(message)s"))
    config = copy.deepcopy(LOGGING_CONFIG)
    for formatter in config["formatters"].values():
        formatter["fmt"] = "%(asctime)s " + formatter["fmt"]
    return config
