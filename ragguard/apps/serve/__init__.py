"""``ragguard serve``: ragguard as an OpenAI-compatible endpoint (``pip install "ragguard[serve]"``).

Routes:

* ``POST /v1/chat/completions``: the last user message is the question. ragguard retrieves from its
  configured index, draws its samples, votes, and answers with the voted answer as the message; the
  whole consistency report rides along in an extra top-level ``ragguard`` field (in the last chunk
  when ``stream`` is true). ``finish_reason`` is ``"length"`` when the voted answer was cut at
  ``max_tokens``, else ``"stop"``. Request fields: ``model`` (``"ragguard"`` or the generator's name),
  ``seed`` (the base seed of the samples), ``temperature`` (of the seeded samples; 0 draws only the
  greedy answer, so the verdict then measures nothing and says so in ``warnings``), ``top_p``,
  ``max_tokens`` (per answer, at most ``--max-tokens``), ``n`` (must be 1: ragguard returns one
  voted answer), ``stream``, and the extension ``samples`` (answers drawn, at most ``--max-samples``).
  Other OpenAI fields are accepted and ignored; earlier messages are not used (ragguard answers
  one question from its index).
* ``POST /ask``: ``{"question": str, "samples"?: int, "seed"?: int}`` -> the ``ask --json`` record.
* ``GET /v1/models``, ``GET /healthz`` (liveness, never needs the API key), ``GET /readyz`` (readiness:
  503 when the worker stopped or the model server's last answer failed; no key), ``GET /metrics`` (Prometheus).
* ``GET /openapi.json``: the OpenAPI 3.1 document (:mod:`ragguard.apps.serve.openapi`; no key), whose
  ``AskRecord`` is the shipped record schema (:mod:`ragguard.schemas`).
* ``GET /``: a self-contained page to try questions (:mod:`ragguard.apps.serve.page`): it calls
  ``/ask`` and shows the verdict, the answers by cluster, the contradicting spans and the sources.
  The page itself never needs the API key; with one set it asks for it and keeps it for the tab.

Concurrent requests are answered together: a micro-batching queue hands up to ``max_batch``
questions that arrive within ``max_wait_ms`` of each other to one :meth:`RagGuard.ask_many` call,
whose generation passes they share. Each report equals the one a request asked alone gets (seeds
derive from the question). When ``queue_size`` requests already wait, the server answers 503 with
``Retry-After`` (the measured time to drain the queue) instead of piling up work.

A queued request is dropped before it is computed when its client disconnects (499) or when it
waited past ``queue_timeout`` (503 ``queue_timeout``); at shutdown every request still waiting gets 503
``shutting_down`` and the batch being computed gets ``--shutdown-timeout`` seconds. A failure of the model server behind the
``openai`` backend answers 504 ``upstream_timeout`` or 502 ``upstream_error``. Every response carries
``X-Request-ID``, and each request gets an access line on the ``ragguard.access`` logger.
``allowed_hosts`` refuses other ``Host`` headers (``ragguard serve`` on loopback: the loopback names),
and POST bodies must be ``application/json`` (415), against DNS rebinding and cross-site posts.

With ``RAGGUARD_API_KEY`` set, every route but ``/healthz``, ``/readyz``, ``/openapi.json`` and the page needs
``Authorization: Bearer KEY``.
Errors have OpenAI's JSON shape ``{"error": {"message", "type", "param", "code"}}``.

When ragguard abstains, a chat completion's message says why in a short sentence (``ServeSettings.refusals``:
"The knowledge base has nothing on this.", "The answers disagree: ..."), never empty content; the
``ragguard`` report keeps ``answer == ""``, and ``/ask`` returns the record as is.

Modules: :mod:`.settings` (limits and the ``--guard`` factory), :mod:`.batching` (the micro-batching
queue), :mod:`.http` (API key, body limits, OpenAI-shaped errors), :mod:`.params` (request fields to
sampling settings), :mod:`.metrics` (Prometheus), :mod:`.completions` (chat-completion bodies and
chunks), :mod:`.openapi` (the OpenAPI document), :mod:`.routes` (the handlers) and :mod:`.app` (the
application and its state). FastAPI and
prometheus-client are imported only by :func:`create_app`.
"""

from ragguard.apps.serve.app import create_app
from ragguard.apps.serve.batching import MicroBatcher, QueueFull
from ragguard.apps.serve.settings import ServeSettings, load_guard_factory

__all__ = ["ServeSettings", "MicroBatcher", "create_app", "load_guard_factory", "QueueFull"]
