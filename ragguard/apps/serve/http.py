"""Auth and request limits: the API key, the body size, the JSON body, and errors in OpenAI's shape."""

from __future__ import annotations

import contextvars
import hmac
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ragguard._text import shorten
from ragguard.apps.serve.settings import ServeSettings

__all__ = ["ApiError", "error_body", "authorize", "internal_error", "read_json", "request_id", "access_log",
           "host_check", "LOOPBACK_HOSTS"]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")

logger = logging.getLogger("ragguard")
access_logger = logging.getLogger("ragguard.access")

# The current request's id (``X-Request-ID``), for log lines written while answering it.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("ragguard_request_id", default="-")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")  # a client's X-Request-ID is echoed only if it looks like one


def access_log(settings: ServeSettings) -> Callable[[Any, Callable[[Any], Awaitable[Any]]], Awaitable[Any]]:
    """HTTP middleware: the request id (the client's ``X-Request-ID`` when it sent a plausible one, else a
    new one) in :data:`request_id` and in the response's ``X-Request-ID``, and, with
    ``settings.access_log``, one line per request: client, method, path, status, duration, id."""

    async def middleware(request: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        sent = request.headers.get("x-request-id", "")
        rid = sent if _CLIENT_ID.fullmatch(sent) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["X-Request-ID"] = rid
            return response
        finally:
            request_id.reset(token)
            if settings.access_log:
                client = request.client.host if request.client else "-"
                access_logger.info('%s "%s %s" %d %.3fs id=%s', client, request.method, request.url.path, status,
                                   time.perf_counter() - started, rid)

    return middleware


class ApiError(Exception):
    """An error answered in OpenAI's JSON shape."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param
        self.headers = headers or {}


def internal_error(exc: BaseException) -> ApiError:
    """The 500 for an error that is not ragguard's own (a model's ``RuntimeError`` such as CUDA out of
    memory, an error in a ``--guard`` factory's generator), logged as one line.

    Raised as an :class:`ApiError`, it is answered by the app's handler for those: an exception that
    reached Starlette's catch-all instead would be re-raised after the 500, so uvicorn would log its
    traceback and close the keep-alive connection. ``RAGGUARD_DEBUG=1`` logs the traceback too.
    """
    logger.error("unexpected %s: %s", type(exc).__name__, shorten(str(exc), 500) or "(no message)",
                 exc_info=exc if os.environ.get("RAGGUARD_DEBUG") else None)
    return ApiError(500, f"internal error ({type(exc).__name__}): the server log has the details", kind="server_error")


def error_body(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def authorize(request: Any, settings: ServeSettings) -> None:
    """Refuse a request without ``Authorization: Bearer <api_key>`` when the server has a key (401)."""
    if settings.api_key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.api_key.encode()):
        raise ApiError(401, "missing or wrong API key: send the header 'Authorization: Bearer <RAGGUARD_API_KEY>'",
                       code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def host_name(header: str) -> str:
    """The name of a ``Host`` header, without its port and IPv6 brackets, in lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def host_check(settings: ServeSettings) -> Callable[[Any, Callable[[Any], Awaitable[Any]]], Awaitable[Any]]:
    """HTTP middleware: 400 ``host_not_allowed`` for a ``Host`` outside ``settings.allowed_hosts``.

    A server on loopback is safe from the network, not from the browser: a web page can point its
    own domain at 127.0.0.1 (DNS rebinding) and read the answers; its requests then carry that
    domain as ``Host``.
    """
    allowed = None if settings.allowed_hosts is None or "*" in settings.allowed_hosts else \
        {host_name(h) for h in settings.allowed_hosts}

    async def middleware(request: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        if allowed is not None:
            host = host_name(request.headers.get("host", ""))
            if host not in allowed:
                from fastapi.responses import JSONResponse

                message = (f"the Host {shorten(host, 80)!r} is not served here: start the server with "
                           "--allowed-host NAME for each name clients use")
                return JSONResponse(error_body(message, "invalid_request_error", "host_not_allowed"), status_code=400)
        return await call_next(request)

    return middleware


def _too_large(limit: int) -> str:
    return (f"the request body is larger than the server's limit of {limit} bytes: send less, or start the server "
            f"with a larger --max-body-kb (now {limit // 1024})")


async def read_json(request: Any, limit: int) -> dict[str, Any]:
    """The request's JSON object, read up to ``limit`` bytes (413 beyond, declared or streamed).

    The body must be declared ``Content-Type: application/json`` (415 otherwise): a web page can send
    a cross-site "simple" POST (``text/plain``, a form) without the browser asking the server first,
    but not a JSON one.
    """
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise ApiError(415, f"the request body must be sent as Content-Type: application/json, not "
                            f"{shorten(media, 80) or 'none'!r}", code="unsupported_media_type")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413, _too_large(limit),
                       code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, _too_large(limit),
                           code="request_too_large")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks) or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON ({str(exc)[:120]})", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    return body
