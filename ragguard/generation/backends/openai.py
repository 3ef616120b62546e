"""The ``openai`` backend: answers and embeddings from any OpenAI-compatible server.

vLLM, SGLang, TGI, the llama.cpp server, Ollama and ``ragguard serve`` all speak the OpenAI chat
completions API; this backend reaches them through the official ``openai`` client, so ragguard
uses a real serving engine (continuous batching, prefix caching, tensor parallelism) instead of a
home-made one.

How one question's answers are requested (``generator.request_mode``):

* the greedy answer is its own request at temperature 0;
* ``n``: the seeded samples are one request with ``n`` = their number and ``seed`` = the first
  sample's seed (vLLM seeds the i-th choice with ``seed + i``). One request, so the server
  computes the prompt once; a sample then depends on the request, not on its seed alone.
* ``per_seed``: one request per sample with its own derived seed, ``n`` = 1, sent concurrently.
  Each sample depends on its seed alone, exactly as in the transformers backend (so adaptive
  sampling draws the same extra samples a fixed-N run draws); a server with prefix caching
  still computes the shared prompt once.
* ``auto`` (default): ``n``, switching an endpoint to ``per_seed`` for good when it refuses ``n``
  (400) or returns fewer choices than asked (llama.cpp and Ollama ignore ``n``).

Requests go round robin over ``generator.base_url`` when it lists several servers, at most
``generator.concurrency`` at a time. 408/409/429/5xx answers, timeouts and dropped connections are
retried ``generator.max_retries`` times with exponential backoff (honouring ``Retry-After``), within
``generator.timeout``: for the generator it is one deadline per question (from its first request,
every request and retry included), so a hung or failing server costs a question ``timeout``
seconds, not ``timeout`` per try per sample. Such failures raise :class:`~ragguard.errors.UpstreamError`
(its ``kind``, ``status`` and ``host``).
A LoRA adapter served by vLLM (``--lora-modules NAME=PATH``) is chosen with
``generator.adapter: NAME``: requests then name the adapter as their model.

Every request asks for ``logprobs`` (the chosen tokens' log-probabilities, no alternatives), and
each completion carries the ones the server reports (``Completion.token_logprobs``), in the
server's own terms: vLLM's V1 engine reports them from the raw logits by default, and servers
differ on whether the end-of-turn token is among them. A server that sends none gives
completions without log-probabilities; one that refuses the parameter (400/422) is asked again
without it, and that endpoint is asked without it from then on.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ragguard.config import EmbedderConfig, GeneratorConfig, SamplingConfig
from ragguard.core.protocols import BatchGenerator, Completion
from ragguard.errors import ConfigError, GenerationError, ModelLoadError, UpstreamError

__all__ = ["OpenAIGenerator", "OpenAIEmbedder", "endpoints_of"]

T = TypeVar("T")
_NO_KEY = "not-set"  # local servers started without --api-key accept any key; the client insists on one
# A choice's text, its tokens' log-probabilities, and whether it was cut at max_tokens (finish_reason "length").
_Answer = tuple[str, "tuple[float, ...] | None", bool]


def endpoints_of(base_url: str | Sequence[str] | None) -> list[str]:
    """``generator.base_url`` as a list of URLs without a trailing slash."""
    if base_url is None:
        return []
    urls = [base_url] if isinstance(base_url, str) else list(base_url)
    return [u.rstrip("/") for u in urls]


def host_of(url: str) -> str:
    """``host:port`` of ``url``, without credentials or path: what a log line may show."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port}" if parts.port else host


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=host_of(url))) if parts.username or parts.password else url


_RETRIED = frozenset({408, 409, 429})  # and every 5xx, as the openai client retries


def _retry_after(exc: Any) -> float | None:
    """The ``Retry-After`` seconds of an error response, when it says a number."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class _Deadline:
    """One question's time for its requests: ``seconds`` from the first time one of them asks."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end: float | None = None
        self._lock = threading.Lock()

    def remaining(self) -> float:
        with self._lock:
            if self._end is None:
                self._end = time.monotonic() + self.seconds
            return self._end - time.monotonic()


def _client(base_url: str, api_key_env: str, timeout: float, max_retries: int) -> Any:
    try:
        import openai
    except ImportError:
        raise ModelLoadError('the openai backend needs the openai client: run `pip install openai`') from None
    return openai.OpenAI(
        base_url=base_url, api_key=os.environ.get(api_key_env) or _NO_KEY, timeout=timeout, max_retries=max_retries
    )


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


def _status_message(exc: Any) -> str:
    """The server's own error message from an OpenAI-format error body, else the exception text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"]).splitlines()[0][:200]
        if isinstance(body.get("message"), str):
            return body["message"].splitlines()[0][:200]
    return _first_line(exc)


def _call(url: str, settings: Any, what: str, fn: Callable[[], T], list_models: Callable[[], list[str]],
          retries: int | None = None) -> T:
    """Run one request; turn the client's exceptions into one-line ragguard errors.

    ``retries``: how many retries were made before this request (default: the client's own, ``max_retries``).
    """
    import openai

    host = host_of(url)
    url = _without_credentials(url)
    key_env = settings.api_key_env
    timeout = getattr(settings, "timeout", 120.0)
    retries = getattr(settings, "max_retries", 3) if retries is None else retries
    try:
        return fn()
    except openai.APITimeoutError:
        raise UpstreamError(
            f"the server at {url} did not answer within {timeout:g} s: raise {what}.timeout "
            "or check the server's load", "timeout", host
        ) from None
    except openai.APIConnectionError as exc:
        cause = _first_line(exc.__cause__) if exc.__cause__ is not None else _first_line(exc)
        raise UpstreamError(
            f"cannot connect to the OpenAI-compatible server at {url} ({cause}): start the server "
            f"or fix {what}.base_url", "unreachable", host
        ) from None
    except openai.AuthenticationError:
        hint = f"set the environment variable {key_env}" if not os.environ.get(key_env) else f"check ${key_env}"
        raise GenerationError(f"the server at {url} refused the API key (401): {hint}") from None
    except openai.PermissionDeniedError as exc:
        raise GenerationError(f"the server at {url} denied access (403: {_status_message(exc)}): check ${key_env}") from None
    except openai.NotFoundError as exc:
        models = list_models()
        served = f"; it serves {', '.join(repr(m) for m in models)}" if models else ""
        raise ModelLoadError(
            f"the server at {url} has no such model or route (404: {_status_message(exc)}){served}: set "
            f"{what}.model (or generator.adapter, a LoRA name given to vLLM's --lora-modules) to a served name"
        ) from None
    except openai.APIStatusError as exc:
        status = exc.status_code
        if status in _RETRIED or status >= 500:
            failed = UpstreamError(
                f"the server at {url} answered {status} ({_status_message(exc)}) after {retries} "
                f"retries: lower generator.concurrency, raise {what}.max_retries or add servers", "status", host, status
            )
            failed.retry_after = _retry_after(exc)  # type: ignore[attr-defined]
            raise failed from None
        refused = GenerationError(f"the server at {url} refused the request ({status}: {_status_message(exc)})")
        refused.status = status  # type: ignore[attr-defined]
        raise refused from None


class OpenAIGenerator(BatchGenerator):
    """A :class:`~ragguard.core.protocols.Generator` over OpenAI-compatible servers.

    Args:
        gen_config: the ``generator`` section (``backend: openai``, ``base_url``, ``model`` = the
            served model name, ``adapter`` = a served LoRA name, limits).
        sampling: temperature, top_p, top_k, repetition_penalty and max_new_tokens of the samples.
        clients: one ``openai.OpenAI`` client per endpoint (built from the config when omitted).
    """

    # Calls from several threads at once are safe and worth it: the server batches concurrent requests
    # (``ragguard serve`` then asks a round's groups of sampling settings concurrently).
    thread_safe = True

    def __init__(self, gen_config: GeneratorConfig, sampling: SamplingConfig, clients: Sequence[Any] | None = None):
        self.gen_config = gen_config
        self.sampling = sampling
        self.name = gen_config.model
        self.adapter = gen_config.adapter
        self.model_sha256: str | None = None
        self.endpoints = endpoints_of(gen_config.base_url)
        if not self.endpoints:
            raise ConfigError("the openai backend needs generator.base_url: e.g. http://127.0.0.1:8000/v1")
        if clients is not None and len(clients) != len(self.endpoints):
            raise ValueError("one client per endpoint of generator.base_url is required")
        self.device = "openai-compatible server " + ", ".join(self.endpoints)
        self._clients: list[Any] | None = list(clients) if clients is not None else None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._turn = itertools.count()
        # What `auto` learnt about each endpoint: "n" or "per_seed". Shared by shallow copies.
        self._modes: dict[str, str] = {}
        # Ask for the answers' token log-probabilities (False: never ask).
        self.request_logprobs = True
        self._no_logprobs: set[str] = set()  # endpoints that refused the logprobs parameter
        # The prompt tokens the server reported (``usage.prompt_tokens``) for recent prompts. Shared by shallow copies.
        self._prompt_tokens: OrderedDict[tuple[tuple[str, str], ...], int] = OrderedDict()

    def reported_prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int | None:
        """The prompt tokens the server counted for ``messages`` (its ``usage.prompt_tokens``) when one of
        the last 1024 prompts sent, else ``None``: this backend has no tokenizer of its own."""
        with self._lock:
            return self._prompt_tokens.get(_prompt_key(messages))

    @property
    def served_model(self) -> str:
        """The model name requests carry: the adapter's when one is set (vLLM serves LoRAs by name)."""
        return self.adapter or self.name

    def load(self) -> None:
        """Create the clients and the request pool (no request is sent)."""
        with self._lock:
            if self._clients is None:
                g = self.gen_config
                self._clients = [_client(u, g.api_key_env, g.timeout, g.max_retries) for u in self.endpoints]
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.gen_config.concurrency, thread_name_prefix="ragguard-openai")

    def _next_endpoint(self) -> int:
        with self._lock:
            return next(self._turn) % len(self.endpoints)

    def served_models(self, endpoint: int = 0) -> list[str]:
        """Model names the server lists at ``/models`` (empty when it cannot say)."""
        self.load()
        assert self._clients is not None
        try:
            page = self._clients[endpoint].with_options(max_retries=0, timeout=5.0).models.list()
            return sorted(m.id for m in page.data)
        except Exception:  # noqa: BLE001 - only used to enrich an error message
            return []

    # -------------------------------------------------------------- generation
    def generate_batch(
        self, conversations: Sequence[Sequence[dict[str, str]]], seeds: Sequence[Sequence[int | None]]
    ) -> list[list[Completion]]:
        """Every prompt's answers, requested concurrently (the server batches them)."""
        if len(conversations) != len(seeds):
            raise ValueError("one list of seeds per conversation is required")
        self.load()
        assert self._pool is not None
        jobs = []  # (conversation, positions in its seed list, future of their (text, logprobs))
        for c, (messages, row_seeds) in enumerate(zip(conversations, seeds, strict=True)):
            deadline = _Deadline(self.gen_config.timeout)  # the question's, shared by its requests
            greedy = [i for i, s in enumerate(row_seeds) if s is None]
            seeded = [i for i, s in enumerate(row_seeds) if s is not None]
            for i in greedy:
                jobs.append((c, [i], self._pool.submit(self._request, messages, [None], deadline)))
            if seeded:
                mode = self.gen_config.request_mode
                if mode == "per_seed" or len(seeded) == 1:
                    for i in seeded:
                        jobs.append((c, [i], self._pool.submit(self._request, messages, [row_seeds[i]], deadline)))
                else:
                    group = [row_seeds[i] for i in seeded]
                    jobs.append((c, seeded, self._pool.submit(self._request, messages, group, deadline)))
        answers: list[list[_Answer | None]] = [[None] * len(s) for s in seeds]
        for c, positions, future in jobs:
            for i, answer in zip(positions, future.result(), strict=True):
                answers[c][i] = answer
        return [
            [Completion(text=str(a[0]), seed=s, token_logprobs=a[1], truncated=a[2])  # type: ignore[index]
             for a, s in zip(row, row_seeds, strict=True)]
            for row, row_seeds in zip(answers, seeds, strict=True)
        ]

    def _request(self, messages: Sequence[dict[str, str]], seeds: list[int | None],
                 deadline: _Deadline | None = None) -> list[_Answer]:
        """Texts for ``seeds``: one request (``n`` = len(seeds)), or one per seed where ``n`` is not served."""
        deadline = deadline or _Deadline(self.gen_config.timeout)
        endpoint = self._next_endpoint()
        url = self.endpoints[endpoint]
        if len(seeds) > 1 and self._modes.get(url) == "per_seed":
            return [self._complete(endpoint, messages, [s], deadline)[0] for s in seeds]
        try:
            texts = self._complete(endpoint, messages, seeds, deadline)
        except GenerationError as exc:
            refused_n = getattr(exc, "status", None) in (400, 422)
            if len(seeds) == 1 or self.gen_config.request_mode != "auto" or url in self._modes or not refused_n:
                raise
            texts = []  # refused n > 1: fall through and learn that this endpoint wants one seed per request
        if len(texts) == len(seeds):
            if len(seeds) > 1:
                self._modes.setdefault(url, "n")
            return texts
        if self.gen_config.request_mode == "n":
            raise GenerationError(
                f"the server at {url} returned {len(texts)} answers for n={len(seeds)}: it does not support n, "
                "set generator.request_mode: per_seed"
            )
        texts = [self._complete(endpoint, messages, [s], deadline)[0] for s in seeds]
        self._modes[url] = "per_seed"  # learnt only once the per-seed requests worked
        return texts

    def _complete(self, endpoint: int, messages: Sequence[dict[str, str]], seeds: list[int | None],
                  deadline: _Deadline) -> list[_Answer]:
        """One request; asks for log-probabilities unless the endpoint refused them before."""
        url = self.endpoints[endpoint]
        if not self.request_logprobs or url in self._no_logprobs:
            return self._create(endpoint, messages, seeds, False, deadline)
        try:
            return self._create(endpoint, messages, seeds, True, deadline)
        except GenerationError as exc:
            if getattr(exc, "status", None) not in (400, 422):
                raise
            answers = self._create(endpoint, messages, seeds, False, deadline)  # a refusal of n fails again
            self._no_logprobs.add(url)  # learnt only once the request without logprobs worked
            return answers

    def _create(
        self, endpoint: int, messages: Sequence[dict[str, str]], seeds: list[int | None], logprobs: bool,
        deadline: _Deadline,
    ) -> list[_Answer]:
        s = self.sampling
        kwargs: dict[str, Any] = {
            "model": self.served_model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": s.max_new_tokens,
            "n": len(seeds),
        }
        if logprobs:
            kwargs["logprobs"] = True
        extra: dict[str, Any] = {}
        if seeds[0] is None:  # the greedy answer
            kwargs.update(temperature=0.0, top_p=1.0)
        else:
            kwargs.update(temperature=s.temperature, top_p=s.top_p, seed=seeds[0])
            if self.gen_config.sampling_extensions and s.top_k > 0:
                extra["top_k"] = s.top_k
        if self.gen_config.sampling_extensions and s.repetition_penalty != 1.0:
            extra["repetition_penalty"] = s.repetition_penalty
        if extra:
            kwargs["extra_body"] = extra
        url = self.endpoints[endpoint]
        response = self._send(endpoint, kwargs, deadline)
        reported = getattr(getattr(response, "usage", None), "prompt_tokens", None)
        if isinstance(reported, int) and reported >= 0:
            with self._lock:
                self._prompt_tokens[_prompt_key(messages)] = reported
                while len(self._prompt_tokens) > 1024:
                    self._prompt_tokens.popitem(last=False)
        try:
            choices = sorted(response.choices or [], key=lambda c: c.index)
            answers = [((c.message.content or "").strip(), _choice_logprobs(c) if logprobs else None,
                        getattr(c, "finish_reason", None) == "length") for c in choices]
        except (AttributeError, TypeError, ValueError) as exc:
            raise UpstreamError(f"the server at {_without_credentials(url)} answered a body that is not a chat "
                                f"completion ({type(exc).__name__}: {_first_line(exc)})", "bad_response",
                                host_of(url)) from None
        if not answers:
            raise GenerationError(f"the server at {_without_credentials(url)} returned no answer (no choices) for "
                                  f"model {self.served_model!r}")
        return answers

    def _send(self, endpoint: int, kwargs: dict[str, Any], deadline: _Deadline) -> Any:
        """One chat completion, retried on 408/409/429/5xx, timeouts and dropped connections, with backoff
        (or the server's ``Retry-After``), ``max_retries`` times at most and within the question's deadline."""
        assert self._clients is not None
        client, url, g = self._clients[endpoint], self.endpoints[endpoint], self.gen_config
        retries = 0
        while True:
            remaining = deadline.remaining()
            if remaining <= 0:
                raise UpstreamError(f"the server at {_without_credentials(url)} did not answer within {g.timeout:g} s: "
                                    "raise generator.timeout or check the server's load", "timeout", host_of(url))
            try:
                create = client.with_options(max_retries=0, timeout=remaining).chat.completions.create
                return _call(url, g, "generator", functools.partial(create, **kwargs),
                             lambda: self.served_models(endpoint), retries)
            except UpstreamError as exc:
                if retries >= g.max_retries:
                    raise
                pause = getattr(exc, "retry_after", None)
                pause = min(0.5 * 2 ** retries, 8.0) if pause is None else pause
                if exc.kind == "timeout" or pause >= deadline.remaining():
                    raise  # no time left for another try
                time.sleep(pause)
                retries += 1


def _prompt_key(messages: Sequence[dict[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((m["role"], m["content"]) for m in messages)


def _choice_logprobs(choice: Any) -> tuple[float, ...] | None:
    """The chosen tokens' log-probabilities of a chat choice (``logprobs.content[].logprob``), or None.

    None when the server sent none or sent something else than finite numbers.
    """
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not isinstance(content, list):
        return None
    values = []
    for entry in content:
        value = getattr(entry, "logprob", None)
        if isinstance(entry, dict):
            value = entry.get("logprob")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return None
        values.append(float(value))
    return tuple(values)


class OpenAIEmbedder:
    """An :class:`~ragguard.core.protocols.Embedder` over an OpenAI-compatible ``/embeddings`` endpoint.

    Vectors are normalised to unit length here, so any server works. ``name`` is the model name,
    which an index checks: an index built with ``BAAI/bge-small-en-v1.5`` in process can be
    searched with the same model served remotely.
    """

    def __init__(self, config: EmbedderConfig, client: Any = None) -> None:
        self.config = config
        self.name = config.model
        self.batch_size = config.batch_size
        self.url = str(config.base_url).rstrip("/")
        self._client = client
        self._dimension: int | None = None

    def _get_client(self) -> Any:
        if self._client is None:
            self._client = _client(self.url, self.config.api_key_env, 120.0, 3)
        return self._client

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed(["dimension probe"]).shape[1])
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        client = self._get_client()
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]

            def request(batch: list[str] = batch) -> Any:
                return client.embeddings.create(model=self.name, input=batch, encoding_format="float")

            response = _call(self.url, self.config, "embedder", request, lambda: [])
            rows.extend(item.embedding for item in sorted(response.data, key=lambda d: d.index))
        vectors = np.asarray(rows, dtype=np.float32)
        if vectors.shape[0] != len(texts):
            raise GenerationError(f"the server at {self.url} returned {vectors.shape[0]} embeddings for {len(texts)} texts")
        self._dimension = int(vectors.shape[1])
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
