"""The server's limits and batching, and the ``--guard MODULE:FUNCTION`` factory."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from ragguard.endpoints import Refusals
from ragguard.errors import ConfigError, UsageError
from ragguard.pipeline import RagGuard

__all__ = ["ServeSettings", "load_guard_factory"]


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching of the server.

    Args:
        max_batch: most questions answered in one :meth:`RagGuard.ask_many` call (1 = no batching).
        max_wait_ms: how long the first queued request waits for others to join its batch.
        queue_size: requests allowed to wait; one more gets 503 with ``Retry-After``.
        queue_timeout: seconds a request may wait in the queue before its computation starts; past it the
            request is dropped unanswered by the model and gets 503 ``queue_timeout`` (0 = wait for ever).
            A client that waited this long behind nginx's default ``proxy_read_timeout`` (60 s) already got
            nginx's 504; a client that hangs up earlier is dropped as soon as it leaves.
        max_body_bytes: largest request body; a larger one gets 413.
        max_tokens: largest ``max_tokens`` a request may ask for (per answer).
        max_samples: largest ``samples`` a request may ask for.
        api_key: bearer token every route but ``/healthz``, ``/readyz``, ``/openapi.json`` and the page requires
            (``None`` = open).
        model_name: the model name the server answers to and reports.
        refusals: the chat-completion message when ragguard abstains (never empty content).
        allowed_hosts: the names a request's ``Host`` header may carry (port aside); another gets 400
            ``host_not_allowed``, against DNS rebinding. ``None`` accepts any (``ragguard serve`` sets the
            loopback names when it binds to loopback, plus its ``--allowed-host`` values).
        access_log: log one line per request on the ``ragguard.access`` logger (INFO): client, method,
            path, status, duration and request id.
        cors_origins: web origins (``https://app.example.com``) whose pages may call the API from a browser
            (CORS); ``*`` = any. Empty (the default): none, as before; the page ``/`` is same-origin.
    """

    max_batch: int = 8
    max_wait_ms: float = 10.0
    queue_size: int = 64
    queue_timeout: float = 60.0
    max_body_bytes: int = 64 * 1024
    max_tokens: int = 1024
    max_samples: int = 16
    api_key: str | None = None
    model_name: str = "ragguard"
    refusals: Refusals = field(default_factory=Refusals)
    access_log: bool = True
    allowed_hosts: tuple[str, ...] | None = None
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        checks = [
            ("max_batch", isinstance(self.max_batch, int) and 1 <= self.max_batch <= 1024, "an integer from 1 to 1024"),
            ("max_wait_ms", 0 <= self.max_wait_ms <= 10_000, "a number of milliseconds from 0 to 10000"),
            ("queue_size", isinstance(self.queue_size, int) and self.queue_size >= 1, "an integer >= 1"),
            ("queue_timeout", 0 <= self.queue_timeout <= 86_400, "a number of seconds from 0 (no deadline) to 86400"),
            ("max_body_bytes", isinstance(self.max_body_bytes, int) and self.max_body_bytes >= 256, "an integer >= 256"),
            ("max_tokens", isinstance(self.max_tokens, int) and 1 <= self.max_tokens <= 4096, "an integer from 1 to 4096"),
            ("max_samples", isinstance(self.max_samples, int) and 1 <= self.max_samples <= 64, "an integer from 1 to 64"),
        ]
        bad_origin = next((o for o in self.cors_origins if o != "*" and not _is_origin(o)), None)
        if bad_origin is not None:
            raise ConfigError(f"serve setting cors_origins has bad value {bad_origin!r}: expected an origin such as "
                              "https://app.example.com (scheme and host, optional port, no path), or *")
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"serve setting {name} has bad value {getattr(self, name)!r}: expected {expected}")


def _is_origin(value: str) -> bool:
    """Whether ``value`` is a web origin: ``http(s)://host[:port]``, nothing after it (browsers send exactly that)."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.path and not parts.query \
        and not parts.fragment


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
