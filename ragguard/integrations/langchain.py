"""LangChain components over ragguard (``pip install "ragguard[langchain]"``).

Built on ``langchain-core`` alone:

* :class:`ChatRagGuard`: a chat model. Messages in, the majority-voted
  answer out, with the consistency report in ``response_metadata``.
* :class:`ConsistencyGuard`: wraps a chat model (or any runnable) that an app
  already has, calls it several times and votes on the answers.
* :class:`RagGuardRetriever`: a retriever over a ragguard index folder.
* :class:`RagGuardChain`: the whole pipeline as a runnable,
  ``question -> {"answer", "report", "sources"}``.

Constructing a component is cheap: torch, transformers,
sentence-transformers and faiss load on the first question or search.
Components built from the same generator, embedder and index settings share
one loaded pipeline per process (weights load once); :func:`clear_cache`
drops them. Calls on one pipeline are serialised by a lock, since one model
is one compute resource.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from functools import reduce
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForChainRun,
        CallbackManagerForChainRun,
        CallbackManagerForLLMRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.language_models import BaseChatModel, BaseLanguageModel, LangSmithParams
    from langchain_core.messages import (
        AIMessage,
        AIMessageChunk,
        BaseMessage,
        ChatMessage,
        HumanMessage,
        convert_to_messages,
    )
    from langchain_core.messages.ai import UsageMetadata, add_usage
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
    from langchain_core.prompt_values import PromptValue
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, RunnableSerializable
    from langchain_core.runnables.config import get_executor_for_config, patch_config, run_in_executor
    from langchain_core.runnables.utils import gather_with_concurrency
    from pydantic import ConfigDict, Field, PrivateAttr, model_validator
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f'ragguard.integrations.langchain needs langchain-core ({exc}): run `pip install "ragguard[langchain]"`'
    ) from exc

from ragguard.apps.check import check
from ragguard.config import Config, load_config
from ragguard.core.types import Fingerprint, Passage, Report
from ragguard.errors import ConfigError, UsageError
from ragguard.generation.models import EMBEDDED_GENERATOR
from ragguard.generation.prompts import build_messages
from ragguard.pipeline import RagGuard, bundled_index_path, derive_seed, library_versions, sample_seeds

__all__ = ["ChatRagGuard", "ConsistencyGuard", "RagGuardRetriever", "RagGuardChain", "clear_cache"]

# Keyword arguments ChatRagGuard accepts per call (``invoke(..., temperature=0.3)`` or ``.bind(...)``).
_CALL_KWARGS = frozenset({"temperature", "max_tokens", "samples", "seed", "model"})


# ----------------------------------------------------------------- pipelines
class _Shared:
    """A loaded pipeline and the lock that serialises its use."""

    def __init__(self, guard: RagGuard) -> None:
        self.guard = guard
        self.lock = threading.RLock()


_PIPELINES: dict[tuple[Any, ...], _Shared] = {}
_PIPELINES_LOCK = threading.Lock()
_GUARD_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()


def clear_cache() -> None:
    """Forget the pipelines shared by components (their weights are freed once unused)."""
    with _PIPELINES_LOCK:
        _PIPELINES.clear()


def _as_config(value: Any) -> Config:
    """A ragguard :class:`Config` from a YAML path, a Config, or ``None`` (the embedded default)."""
    if value is None:
        return Config()
    if isinstance(value, Config):
        return value
    if isinstance(value, (str, Path)):
        return load_config(value)
    raise ConfigError(
        f"config_path must be a YAML file path or a ragguard Config, got {type(value).__name__} {value!r}: "
        "pass e.g. config_path='configs/default.yaml'"
    )


def _shared_pipeline(cfg: Config, retrieval: bool) -> _Shared:
    """The process-wide pipeline for these generator, embedder and index settings (built on first use)."""
    index = (cfg.retrieval.index or str(bundled_index_path())) if retrieval else None
    key = (cfg.generator, cfg.embedder, index)
    with _PIPELINES_LOCK:
        shared = _PIPELINES.get(key)
        if shared is None:
            if index is not None:
                guard = RagGuard.from_config(cfg.replace("retrieval", index=index))
            else:  # no index to load or verify
                from ragguard.generation.backends import build_embedder, build_generator

                guard = RagGuard(cfg, build_generator(cfg), build_embedder(cfg.embedder))
            shared = _PIPELINES[key] = _Shared(guard)
    return shared


def _lock_for(guard: RagGuard) -> threading.RLock:
    with _PIPELINES_LOCK:
        lock = _GUARD_LOCKS.get(guard)
        if lock is None:
            lock = _GUARD_LOCKS[guard] = threading.RLock()
    return lock


def _view(base: RagGuard, cfg: Config, retrieval: bool) -> RagGuard:
    """``base`` with this call's config: same weights, embedder and index, this call's sampling.

    The pipeline draws with ``cfg.sampling`` (a shallow copy of the generator
    that shares the loaded weights when the settings differ, see
    ``RagGuard._generator_for``).
    """
    return RagGuard(cfg, base.generator, base.embedder, base.retriever if retrieval else None, base.index_path)


def _sampling_changes(
    cfg: Config, *, temperature: float | None, max_tokens: int | None, samples: int | None, seed: int | None
) -> tuple[Config, list[str]]:
    """Apply LangChain-style sampling parameters to a config; returns it and warnings for the report."""
    changes: dict[str, Any] = {}
    notes: list[str] = []
    if samples is not None:
        changes["samples"] = samples
    if seed is not None:
        changes["seed"] = seed
    if max_tokens is not None:
        changes["max_new_tokens"] = max_tokens
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
            raise ConfigError(f"temperature must be a number >= 0, got {temperature!r}")
        if temperature == 0:
            # Seeded samples at temperature 0 would all equal the greedy answer: draw only that one.
            changes["samples"] = 1
            notes.append(
                "temperature=0: only the greedy answer was drawn, so the verdict does not measure "
                "consistency (use a temperature > 0)"
            )
        else:
            changes["temperature"] = float(temperature)
    return (cfg.replace("sampling", **changes) if changes else cfg), notes


# ------------------------------------------------------------------ messages
def _block_text(content: Any, where: str) -> str:
    """The text of a message's content; refuses images, files and other non-text blocks."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise UsageError(f"{where} reads text only, got a {kind!r} content block: send text messages")
    return "".join(parts)


def _last_human_text(messages: Sequence[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage) or (isinstance(message, ChatMessage) and message.role == "user"):
            return _block_text(message.content, "ragguard")
    raise UsageError("no human message to answer: end the conversation with a HumanMessage holding the question")


_ROLES = {"human": "user", "ai": "assistant", "system": "system"}


def _chat_dicts(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as the ``{"role", "content"}`` dicts a ragguard generator takes."""
    out = []
    for message in messages:
        role = message.role if isinstance(message, ChatMessage) else _ROLES.get(message.type)
        if role is None:
            raise UsageError(
                f"ChatRagGuard cannot take a {message.type!r} message (it has no tool calling): "
                "send system, human and AI messages"
            )
        out.append({"role": role, "content": _block_text(message.content, "ChatRagGuard")})
    return out


def _truncate(text: str, stop: Sequence[str] | None) -> str:
    """Cut ``text`` at the earliest occurrence of any stop string."""
    cut = len(text)
    for s in stop or ():
        if s:
            at = text.find(s)
            if 0 <= at < cut:
                cut = at
    return text[:cut]


_ROUGH_TOKEN = re.compile(r"\w+|[^\w\s]")


def _token_count(tokenizer: Any, text: str) -> int:
    if tokenizer is None:  # a generator without a tokenizer (a fake): count words and marks
        return len(_ROUGH_TOKEN.findall(text))
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _usage(generator: Any, prompt: list[dict[str, str]], outputs: Sequence[str]) -> UsageMetadata:
    """Prompt tokens (one prefill, shared by every sample) and the tokens of all samples.

    Like OpenAI's ``n > 1``, output tokens count every sample drawn, not only
    the voted one: that is what the answer cost. Outputs are counted by
    re-tokenizing their text with the generator's tokenizer when it has one.
    """
    if not outputs:  # abstained before generating (nothing relevant in the index): nothing was run
        return UsageMetadata(input_tokens=0, output_tokens=0, total_tokens=0)
    tokenizer = getattr(generator, "tokenizer", None)
    encode = getattr(generator, "encode_prompt", None)
    if tokenizer is not None and callable(encode):
        n_in = len(encode(prompt))
    else:
        n_in = sum(_token_count(None, m["content"]) for m in prompt)
    n_out = sum(_token_count(tokenizer, t) for t in outputs)
    return UsageMetadata(input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out)


def _documents(passages: Sequence[Passage]) -> list[Document]:
    return [
        Document(
            id=p.chunk_id,
            page_content=p.text,
            metadata={"doc_id": p.doc_id, "chunk_id": p.chunk_id, "score": float(p.score)},
        )
        for p in passages
    ]


# --------------------------------------------------------------- chat model
class ChatRagGuard(BaseChatModel):
    """ragguard as a LangChain chat model: the majority-voted answer with its evidence.

    Every call draws ``samples`` answers (one greedy, the rest seeded),
    clusters them by meaning and returns the voted answer as an
    :class:`~langchain_core.messages.AIMessage`. ``response_metadata`` holds
    the full report (``Report.to_dict()``: ``verdict``, ``agreement``,
    ``clusters``, ``contradictions``, ``sources``, ``fingerprint``, ...) plus
    ``model_name``; ``usage_metadata`` counts the prompt tokens and the tokens
    of every sample.

    With ``retrieval=True`` (the default) the last human message is the
    question: ragguard retrieves context from the index and builds its own
    prompt (earlier turns and system messages are not used, so the answer is
    the one ``ragguard ask`` gives). With ``retrieval=False`` the whole
    conversation goes to the generator as is.

    Weights load on the first call, not in the constructor. Standard LangChain
    parameters map onto ragguard's config: ``temperature`` and ``max_tokens``
    onto ``sampling.temperature`` and ``sampling.max_new_tokens``
    (``temperature=0`` draws only the greedy answer), ``model`` onto
    ``generator.model``, ``stop`` cuts the returned text at the first stop
    string (the report keeps the untruncated answer). ``timeout`` and
    ``max_retries`` are accepted for compatibility; a local model has no
    network call to time out or retry. ``temperature``, ``max_tokens``,
    ``samples``, ``seed`` and ``model`` may also be passed per call.

    ``ainvoke``, ``abatch`` and ``astream`` run generation in a worker thread
    (LangChain's ``run_in_executor``), so the event loop stays free.

    Streaming: ragguard must draw every sample and vote before it knows the
    answer, so ``stream`` yields the voted answer in word-sized chunks only
    after voting; the last chunk carries the report and the usage.

    Example:
        .. code-block:: python

            from ragguard.integrations.langchain import ChatRagGuard

            chat = ChatRagGuard(samples=5, max_tokens=64)
            msg = chat.invoke("How many days of annual leave do I get?")
            print(msg.content, msg.response_metadata["verdict"])
    """

    config_path: Any = None
    """A ragguard YAML config (or a ``Config`` object); ``None`` = the embedded default."""
    index_path: str | None = None
    """Index folder; ``None`` = the config's, else the bundled example index."""
    model: str | None = None
    """Generator model (``generator.model``: ``"embedded"``, a folder or a hub id); ``None`` = the config's."""
    samples: int | None = None
    """Answers drawn per question (1 greedy + samples-1 seeded); ``None`` = the config's (5)."""
    seed: int | None = None
    """Base seed of the samples; ``None`` = the config's (0)."""
    retrieval: bool = True
    """Retrieve context and ask the last human message; ``False`` sends the conversation as is."""
    temperature: float | None = None
    """Sampling temperature of the seeded samples; ``None`` = the config's."""
    max_tokens: int | None = None
    """Longest answer in tokens (``sampling.max_new_tokens``); ``None`` = the config's."""
    stop: list[str] | None = None
    """Cut the returned text at the first of these strings."""
    timeout: float | None = None
    """Accepted for compatibility with other chat models; not used (local generation)."""
    max_retries: int | None = None
    """Accepted for compatibility with other chat models; not used (local generation)."""
    streaming: bool = False
    """Route ``invoke`` through ``stream`` (see the class docstring about what streams)."""
    guard: Any = Field(default=None, exclude=True)
    """A :class:`~ragguard.RagGuard` you built yourself; then ``config_path``, ``index_path`` and
    ``model`` must stay unset."""

    _base_config: Config = PrivateAttr(default=None)  # type: ignore[assignment]

    @model_validator(mode="after")
    def _check_settings(self) -> ChatRagGuard:
        """Validate settings now (reads the config file; loads no model)."""
        if self.guard is not None:
            if not isinstance(self.guard, RagGuard):
                raise UsageError(f"guard must be a ragguard.RagGuard, got {type(self.guard).__name__}")
            if self.config_path is not None or self.index_path is not None or self.model is not None:
                raise UsageError("pass either guard or config_path/index_path/model, not both")
            self._base_config = self.guard.config
        else:
            cfg = _as_config(self.config_path)
            if self.index_path is not None:
                cfg = cfg.replace("retrieval", index=str(Path(self.index_path).expanduser().resolve()))
            if self.model is not None:
                cfg = cfg.replace("generator", model=self.model)
            self._base_config = cfg
        self._call_config({})
        return self

    @property
    def _llm_type(self) -> str:
        return "ragguard"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self._model_name(),
            "config_hash": self._base_config.hash(),
            "index_path": self.index_path,
            "samples": self.samples,
            "seed": self.seed,
            "retrieval": self.retrieval,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def _model_name(self, override: str | None = None) -> str:
        if override:
            return override
        if self.guard is not None:
            return str(getattr(self.guard.generator, "name", type(self.guard.generator).__name__))
        model = self._base_config.generator.model
        return EMBEDDED_GENERATOR if model == "embedded" else model

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="ragguard", ls_model_name=self._model_name(kwargs.get("model")), ls_model_type="chat"
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is None:
            temperature = self._base_config.sampling.temperature
        params["ls_temperature"] = float(temperature)
        max_tokens = kwargs.get("max_tokens", self.max_tokens) or self._base_config.sampling.max_new_tokens
        params["ls_max_tokens"] = int(max_tokens)
        stops = stop if stop is not None else self.stop
        if stops:
            params["ls_stop"] = list(stops)
        return params

    def _call_config(self, kwargs: dict[str, Any]) -> tuple[Config, list[str]]:
        """This call's config (fields, then per-call keyword arguments) and warnings for its report."""
        unknown = sorted(set(kwargs) - _CALL_KWARGS)
        if unknown:
            raise UsageError(
                f"ChatRagGuard got unsupported keyword argument(s) {', '.join(unknown)}: "
                f"it takes {', '.join(sorted(_CALL_KWARGS))} (no tools or structured output)"
            )
        cfg = self._base_config
        model = kwargs.get("model")
        if model and model != cfg.generator.model:
            if self.guard is not None:
                raise UsageError("a per-call model needs a ChatRagGuard built from a config, not from guard=")
            cfg = cfg.replace("generator", model=model)
        return _sampling_changes(
            cfg,
            temperature=kwargs.get("temperature", self.temperature),
            max_tokens=kwargs.get("max_tokens", self.max_tokens),
            samples=kwargs.get("samples", self.samples),
            seed=kwargs.get("seed", self.seed),
        )

    def _pipeline(self, cfg: Config) -> tuple[RagGuard, threading.RLock]:
        if self.guard is not None:
            return self.guard, _lock_for(self.guard)
        shared = _shared_pipeline(cfg, self.retrieval)
        return shared.guard, shared.lock

    def _answer(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> AIMessage:
        cfg, notes = self._call_config(kwargs)
        base, lock = self._pipeline(cfg)
        with lock:
            guard = _view(base, cfg, self.retrieval)
            if self.retrieval:
                question = _last_human_text(messages)
                report = guard.ask(question)
                prompt = build_messages(
                    question.strip(), report.sources, cfg.prompt.system, cfg.prompt.max_context_chars
                )
            else:
                prompt = _chat_dicts(messages)
                report = _ask_directly(guard, prompt, _last_human_text(messages), cfg)
            report.warnings.extend(notes)
            usage = _usage(guard.generator, prompt, [s.text for s in report.samples])
        name = str(getattr(guard.generator, "name", self._model_name()))
        return AIMessage(
            content=_truncate(report.answer, stop if stop is not None else self.stop),
            response_metadata={**report.to_dict(), "model_name": name},
            usage_metadata=usage,
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._answer(messages, stop, kwargs)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Yield the voted answer in word-sized chunks, after all samples are drawn and voted.

        Nothing streams while the samples are generated: the answer is not
        known before the vote. The last chunk carries ``response_metadata``
        (the report) and ``usage_metadata``.
        """
        message = self._answer(messages, stop, kwargs)
        text = str(message.content)
        pieces = re.findall(r"\s+|\S+\s*", text) or [""]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            chunk = ChatGenerationChunk(
                message=AIMessageChunk(
                    content=piece,
                    response_metadata=message.response_metadata if last else {},
                    usage_metadata=message.usage_metadata if last else None,
                    chunk_position="last" if last else None,
                )
            )
            if run_manager is not None:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk

    def get_token_ids(self, text: str) -> list[int]:
        """Token ids from the generator's own tokenizer (loads the model on first use)."""
        if self.custom_get_token_ids is not None:
            return self.custom_get_token_ids(text)
        cfg, _ = self._call_config({})
        guard, _ = self._pipeline(cfg)
        tokenizer = getattr(guard.generator, "tokenizer", None)
        if tokenizer is None:
            return super().get_token_ids(text)
        return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def _ask_directly(guard: RagGuard, prompt: list[dict[str, str]], question: str, cfg: Config) -> Report:
    """Generate from a whole conversation (no retrieval) and check the answers, as ``ask`` would."""
    question = question.strip()
    started = time.perf_counter()
    seeds = sample_seeds(cfg.sampling.seed, question, cfg.sampling.samples)
    completions = guard.generator.generate(prompt, seeds)
    generated = time.perf_counter()
    report = guard.check(question, [c.text for c in completions], seeds, cfg)
    done = time.perf_counter()
    report.fingerprint = guard.fingerprint(cfg, [s for s in seeds if s is not None])
    report.timings = {"generate": generated - started, "check": done - generated, "total": done - started}
    return report


# -------------------------------------------------------- consistency guard
def _question_and_context(value: Any, question_key: str, context_key: str | None) -> tuple[str, list[str]]:
    """The question (and any context passages) that a runnable's input carries."""
    if isinstance(value, str):
        return value, []
    if isinstance(value, dict):
        question = value.get(question_key)
        if not isinstance(question, str):
            raise UsageError(
                f"ConsistencyGuard got a dict without a {question_key!r} string (keys: {sorted(value)}): "
                f"pass {{{question_key!r}: 'your question'}} or set question_key"
            )
        raw = value.get(context_key) if context_key else None
        if raw is None:
            return question, []
        items = [raw] if isinstance(raw, (str, Document)) else list(raw)
        return question, [d.page_content if isinstance(d, Document) else str(d) for d in items]
    if isinstance(value, PromptValue):
        messages = value.to_messages()
    elif isinstance(value, BaseMessage):
        messages = [value]
    elif isinstance(value, Sequence):
        messages = convert_to_messages(value)
    else:
        raise UsageError(
            f"ConsistencyGuard cannot find a question in a {type(value).__name__}: "
            "pass a string, messages, a prompt value or a dict with a question"
        )
    return _last_human_text(messages), []


def _output_text(value: Any) -> str:
    if isinstance(value, BaseMessage):
        return str(value.text)
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("answer", "output", "text", "content"):
            if isinstance(value.get(key), str):
                return str(value[key])
    raise UsageError(
        f"ConsistencyGuard needs text from the wrapped runnable, got a {type(value).__name__}: "
        "end it with a chat model or a StrOutputParser"
    )


def _runnable_name(runnable: Runnable[Any, Any]) -> str:
    target = runnable
    while isinstance(target, RunnableBinding):
        target = target.bound
    if isinstance(target, BaseChatModel):
        try:
            name = target._get_ls_params().get("ls_model_name")
        except Exception:  # a provider's tracing hook must not break the answer
            name = None
        if name:
            return str(name)
    return target.get_name()


class ConsistencyGuard(RunnableSerializable[Any, Any]):
    """Adds ragguard's consistency check to a chat model or runnable you already have.

    Each call invokes ``model`` ``samples`` times on the same input, clusters
    the answers by meaning and returns the majority answer as an
    :class:`~langchain_core.messages.AIMessage` whose ``response_metadata`` is
    the report (``verdict``, ``agreement``, ``clusters``, ``contradictions``,
    ...); with ``output="dict"`` it returns ``{"answer", "report"}``.

    Sampling: when the model declares ``temperature`` / ``seed`` fields (most
    chat models), every call is bound to ``temperature`` and its own seed
    (derived from ``seed``, the question and the sample index), so the answers
    differ only by sampling and the run can be repeated. If the model refuses
    them, or takes none (a chain), it is called plainly and the report says so.
    ``bind_sampling=True`` forces binding, ``False`` never binds.

    Calls after the first run in parallel (LangChain's executor;
    ``max_concurrency`` limits them; use 1 for models that are not
    thread-safe, such as LangChain's fake models). ``usage_metadata`` adds up
    the usage of every call.

    Input: a string, messages, a prompt value, or a dict with the question
    under ``question_key`` (and optional context passages under
    ``context_key``, used to judge grounding). The wrapped runnable gets the
    input unchanged.

    Example:
        .. code-block:: python

            from langchain_openai import ChatOpenAI
            from ragguard.integrations.langchain import ConsistencyGuard

            guarded = ConsistencyGuard(model=ChatOpenAI(model="gpt-4o-mini"), samples=5)
            msg = guarded.invoke("Do I need an employment certificate?")
            print(msg.content, msg.response_metadata["verdict"])
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Runnable[Any, Any]
    """The chat model or runnable to sample (its output must be a message, a string or a dict with an answer)."""
    samples: int = Field(default=5, ge=1, le=64)
    """Calls per input."""
    temperature: float | None = Field(default=0.7, ge=0)
    """Temperature bound to every call when the model takes one; ``None`` keeps the model's own."""
    seed: int = Field(default=0, ge=0)
    """Base seed; sample ``i`` is bound to ``derive_seed(seed, question, i)`` when the model takes a seed."""
    bind_sampling: bool | None = None
    """``None``: bind temperature/seed when the model declares them; ``True``: always; ``False``: never."""
    embedder: Any = None
    """Any object with ``.name`` and ``.embed(texts) -> np.ndarray``; ``None`` = the config's
    embedder (its ``backend``: sentence-transformers or an OpenAI-compatible server), created on first use."""
    config_path: Any = None
    """A ragguard YAML config (or a ``Config``) for the thresholds and the default embedder."""
    output: Literal["message", "dict"] = "message"
    """``"message"``: an AIMessage; ``"dict"``: ``{"answer": str, "report": dict}``."""
    question_key: str = "question"
    """Where the question is in a dict input."""
    context_key: str | None = "context"
    """Where context passages (strings or Documents) are in a dict input; ``None`` = none."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """Most calls in flight at once; ``None`` = the run config's ``max_concurrency``."""

    _config: Config = PrivateAttr(default=None)  # type: ignore[assignment]
    _embedder: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="after")
    def _load_settings(self) -> ConsistencyGuard:
        self._config = _as_config(self.config_path)
        self._embedder = self.embedder
        return self

    def _get_embedder(self) -> Any:
        with self._lock:
            if self._embedder is None:
                from ragguard.generation.backends import build_embedder

                # The config's embedder backend (sentence-transformers or an OpenAI-compatible server).
                self._embedder = build_embedder(self._config.embedder)
            return self._embedder

    def _sampling_params(self) -> set[str]:
        wanted = {"seed"} if self.temperature is None else {"seed", "temperature"}
        if self.bind_sampling is not None:
            return wanted if self.bind_sampling else set()
        target = self.model
        while isinstance(target, RunnableBinding):
            target = target.bound
        if not isinstance(target, BaseLanguageModel):
            return set()
        return {p for p in wanted if p in type(target).model_fields}

    def _bound(self, params: set[str], seed: int) -> Runnable[Any, Any]:
        kwargs: dict[str, Any] = {}
        if "temperature" in params:
            kwargs["temperature"] = self.temperature
        if "seed" in params:
            kwargs["seed"] = seed
        return self.model.bind(**kwargs) if kwargs else self.model

    def _run_config(self, config: RunnableConfig, run_manager: Any) -> RunnableConfig:
        child = patch_config(config, callbacks=run_manager.get_child())
        if self.max_concurrency is not None:
            child["max_concurrency"] = self.max_concurrency
        return child

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)

    def _prepare(self, input_: Any, run_manager: Any, config: RunnableConfig) -> tuple[Any, ...]:
        """What both invoke paths start from: question, context, child config, seeds, parameters."""
        question, context = _question_and_context(input_, self.question_key, self.context_key)
        child = self._run_config(config, run_manager)
        seeds = [derive_seed(self.seed, question, i) for i in range(self.samples)]
        return question, context, child, seeds, self._sampling_params()

    def _invoke(self, input_: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig) -> Any:
        question, context, child, seeds, params = self._prepare(input_, run_manager, config)
        notes: list[str] = []
        if params:
            try:
                first = self._bound(params, seeds[0]).invoke(input_, child)
            except Exception as exc:  # the model refused the bound parameters: call it plainly
                first = self.model.invoke(input_, child)
                notes.append(_refused(params, exc))
                params = set()
        else:
            first = self.model.invoke(input_, child)
        runnables = [self._bound(params, s) for s in seeds[1:]]
        with get_executor_for_config(child) as executor:
            rest = list(executor.map(lambda r: r.invoke(input_, child), runnables))
        return self._vote(question, context, [first, *rest], seeds, params, notes)

    async def _ainvoke(self, input_: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig) -> Any:
        question, context, child, seeds, params = self._prepare(input_, run_manager, config)
        notes: list[str] = []
        if params:
            try:
                first = await self._bound(params, seeds[0]).ainvoke(input_, child)
            except Exception as exc:
                first = await self.model.ainvoke(input_, child)
                notes.append(_refused(params, exc))
                params = set()
        else:
            first = await self.model.ainvoke(input_, child)
        rest = await gather_with_concurrency(
            child.get("max_concurrency"), *(self._bound(params, s).ainvoke(input_, child) for s in seeds[1:])
        )
        # Embedding the answers is CPU-bound: keep it off the event loop.
        return await run_in_executor(None, self._vote, question, context, [first, *rest], seeds, params, notes)

    def _vote(
        self,
        question: str,
        context: list[str],
        outputs: list[Any],
        seeds: list[int],
        params: set[str],
        notes: list[str],
    ) -> Any:
        texts = [_output_text(o) for o in outputs]
        embedder = self._get_embedder()
        report = check(question, texts, context or None, embedder=embedder, config=self._config)
        seeded = "seed" in params
        if seeded:
            report.samples = [dataclasses.replace(s, seed=seed) for s, seed in zip(report.samples, seeds, strict=True)]
        if not params:
            notes.append(
                f"{_runnable_name(self.model)} was not given temperature/seed: the samples were drawn with its "
                "own settings (identical answers may mean it decodes greedily)"
            )
        report.warnings.extend(notes)
        report.fingerprint = Fingerprint(
            model=_runnable_name(self.model),
            adapter=None,
            embedder=str(getattr(embedder, "name", type(embedder).__name__)),
            config_hash=self._config.hash(),
            versions={**library_versions(), "langchain-core": metadata.version("langchain-core")},
            device="external",
            seeds=list(seeds) if seeded else [],
        )
        if self.output == "dict":
            return {"answer": report.answer, "report": report.to_dict()}
        usages = [o.usage_metadata for o in outputs if isinstance(o, AIMessage) and o.usage_metadata]
        return AIMessage(
            content=report.answer,
            response_metadata=report.to_dict(),
            usage_metadata=reduce(add_usage, usages) if usages else None,
        )


def _refused(params: set[str], exc: Exception) -> str:
    first_line = (str(exc).splitlines() or [""])[0][:160]
    return (
        f"the model refused {'/'.join(sorted(params))} ({type(exc).__name__}: {first_line}); "
        "the samples were drawn with its own settings"
    )


# ----------------------------------------------------------------- retriever
class RagGuardRetriever(BaseRetriever):
    """Searches a ragguard index folder; returns ``Document`` objects best first.

    ``page_content`` is the chunk text and ``metadata`` holds ``doc_id``,
    ``chunk_id`` and ``score`` (cosine similarity). The index loads, and its
    checksums are verified, on the first search. The query is embedded with
    the config's sentence embedder (or ``embedder``), which must be the one
    that built the index.

    Example:
        .. code-block:: python

            retriever = RagGuardRetriever(k=3)          # the bundled example index
            docs = retriever.invoke("annual leave", k=1)
    """

    index_path: str | None = None
    """Index folder; ``None`` = the config's, else the bundled example index."""
    k: int = Field(default=3, ge=0, le=50)
    """Documents returned; ``invoke(query, k=...)`` overrides it per call."""
    config_path: Any = None
    """A ragguard YAML config (or a ``Config``) naming the embedder and the index."""
    embedder: Any = None
    """Any object with ``.name`` and ``.embed(texts) -> np.ndarray``; ``None`` = the config's embedder."""

    _searcher: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _get_searcher(self) -> Any:
        with self._lock:
            if self._searcher is None:
                from ragguard.retrieval.index import IndexRetriever, KnowledgeIndex
                from ragguard.retrieval.search import RetrievalOptions

                cfg = _as_config(self.config_path)
                index = KnowledgeIndex.load(self.index_path or cfg.retrieval.index or bundled_index_path())
                embedder = self.embedder
                if embedder is None:
                    from ragguard.generation.embedders import SentenceTransformerEmbedder

                    e = cfg.embedder
                    embedder = SentenceTransformerEmbedder(e.model, e.device, e.batch_size)
                index.check_embedder(embedder)
                self._searcher = IndexRetriever(index, embedder, RetrievalOptions.from_config(cfg.retrieval))
            return self._searcher

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        k = self.k if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise UsageError(f"k must be an integer >= 0, got {k!r}")
        return _documents(self._get_searcher().search(query, k))


# --------------------------------------------------------------------- chain
def _chain_question(value: Any) -> str:
    question = value.get("question") if isinstance(value, dict) else value
    if not isinstance(question, str) or not question.strip():
        raise UsageError(
            f"RagGuardChain takes a question string or {{'question': str}}, got {value!r}: "
            "pass e.g. 'How many leave days do I get?'"
        )
    return question


class RagGuardChain(RunnableSerializable[Any, dict[str, Any]]):
    """The whole ragguard pipeline as a runnable: a question in, the checked answer out.

    Input: a question string or ``{"question": str}``. Output:
    ``{"answer": str, "report": dict, "sources": list[Document]}``, where
    ``report`` is ``Report.to_dict()`` (the ``ragguard ask --json`` shape) and
    ``sources`` are the retrieved passages as Documents (as
    :class:`RagGuardRetriever` returns them).

    ``batch`` answers all its questions with one :meth:`RagGuard.ask_many`
    call, which shares batched generation passes; a bad input fails only its
    own slot with ``return_exceptions=True``. Async calls run in a worker
    thread.

    Example:
        .. code-block:: python

            chain = RagGuardChain(samples=5) | RunnableLambda(lambda r: f"{r['answer']} [{r['report']['verdict']}]")
            print(chain.invoke("How many days of annual leave do I get?"))
    """

    config_path: Any = None
    """A ragguard YAML config (or a ``Config``); ``None`` = the embedded default."""
    index_path: str | None = None
    """Index folder; ``None`` = the config's, else the bundled example index."""
    samples: int | None = None
    """Answers drawn per question; ``None`` = the config's."""
    seed: int | None = None
    """Base seed; ``None`` = the config's."""
    temperature: float | None = None
    """Sampling temperature of the seeded samples (0 = the greedy answer only); ``None`` = the config's."""
    max_tokens: int | None = None
    """Longest answer in tokens (``sampling.max_new_tokens``); ``None`` = the config's."""
    guard: Any = Field(default=None, exclude=True)
    """A :class:`~ragguard.RagGuard` you built yourself (``config_path`` and ``index_path`` must stay unset)."""

    _config: Config = PrivateAttr(default=None)  # type: ignore[assignment]
    _notes: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _load_settings(self) -> RagGuardChain:
        if self.guard is not None:
            if not isinstance(self.guard, RagGuard):
                raise UsageError(f"guard must be a ragguard.RagGuard, got {type(self.guard).__name__}")
            if self.config_path is not None or self.index_path is not None:
                raise UsageError("pass either guard or config_path/index_path, not both")
            cfg = self.guard.config
        else:
            cfg = _as_config(self.config_path)
            if self.index_path is not None:
                cfg = cfg.replace("retrieval", index=str(Path(self.index_path).expanduser().resolve()))
        self._config, self._notes = _sampling_changes(
            cfg, temperature=self.temperature, max_tokens=self.max_tokens, samples=self.samples, seed=self.seed
        )
        return self

    def _answer_many(self, inputs: list[Any]) -> list[dict[str, Any] | Exception]:
        results: list[dict[str, Any] | Exception | None] = [None] * len(inputs)
        asked: list[tuple[int, str]] = []
        for i, value in enumerate(inputs):
            try:
                asked.append((i, _chain_question(value)))
            except UsageError as exc:
                results[i] = exc
        if asked:
            if self.guard is not None:
                base, lock = self.guard, _lock_for(self.guard)
            else:
                shared = _shared_pipeline(self._config, retrieval=True)
                base, lock = shared.guard, shared.lock
            with lock:
                reports = _view(base, self._config, retrieval=True).ask_many([q for _, q in asked])
            for (i, _), report in zip(asked, reports, strict=True):
                report.warnings.extend(self._notes)
                results[i] = {
                    "answer": report.answer,
                    "report": report.to_dict(),
                    "sources": _documents(report.sources),
                }
        return [r for r in results if r is not None]  # every slot is filled above

    def _answer_one(self, value: Any) -> dict[str, Any]:
        result = self._answer_many([value])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        return self._call_with_config(self._answer_one, input, config, **kwargs)

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        if not return_exceptions:
            for value in inputs:  # fail before generating anything
                _chain_question(value)
        return self._batch_with_config(self._answer_many, inputs, config, return_exceptions=return_exceptions, **kwargs)

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        return await run_in_executor(
            None, lambda: self.batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        )
