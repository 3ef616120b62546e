"""ConsistencyGuard: ragguard's consistency check around a chat model or runnable you already have."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from functools import reduce
from importlib import metadata
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, CallbackManagerForChainRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel, BaseLanguageModel
from langchain_core.messages import AIMessage, BaseMessage, convert_to_messages
from langchain_core.messages.ai import add_usage
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import get_executor_for_config, patch_config, run_in_executor
from langchain_core.runnables.utils import gather_with_concurrency
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from ragguard._text import question_problem
from ragguard.apps.calibration_io import annotate, resolve_calibration, warn_unused_gate
from ragguard.apps.check import check
from ragguard.config import Config
from ragguard.core.types import Fingerprint
from ragguard.endpoints import Refusals
from ragguard.errors import UsageError
from ragguard.integrations.langchain._messages import last_human_text
from ragguard.integrations.langchain._pipelines import as_config, embedder_for, ragguard_errors
from ragguard.pipeline import derive_seed, library_versions

__all__ = ["ConsistencyGuard"]


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
    return last_human_text(messages), []


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
    them (its first call raises a ``TypeError`` about keyword arguments or an
    error naming ``seed`` or ``temperature``), or takes none (a chain), it is
    called plainly and the report says so; any other error of the first call
    is raised.
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
    embedder (its ``backend``: sentence-transformers or an OpenAI-compatible server), created on first use and
    shared by every guard and retriever of the process with the same embedder settings."""
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
    refusals: Refusals = Field(default_factory=Refusals)
    """The message content when the report abstains (its ``answer`` is ``""``): never an empty message."""

    _config: Config = PrivateAttr(default=None)  # type: ignore[assignment]
    _embedder: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with ragguard_errors():  # a bad config file raises ragguard's ConfigError, not pydantic's wrapper
            super().__init__(*args, **kwargs)

    @model_validator(mode="after")
    def _load_settings(self) -> ConsistencyGuard:
        self._config = as_config(self.config_path)
        self._embedder = self.embedder
        return self

    def _get_embedder(self) -> Any:
        with self._lock:
            if self._embedder is None:
                # The config's embedder backend (sentence-transformers or an OpenAI-compatible server), loaded
                # once per process for every guard and retriever with the same embedder settings.
                self._embedder = embedder_for(self._config)
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
        """What both invoke paths start from: question, context, child config, seeds, parameters.

        A question that cannot be checked (empty, no word in it) is refused here, before the model is called.
        """
        question, context = _question_and_context(input_, self.question_key, self.context_key)
        problem = question_problem(question)
        if problem:
            raise UsageError(f"ConsistencyGuard: {problem}: pass the question the model should answer")
        child = self._run_config(config, run_manager)
        seeds = [derive_seed(self.seed, question, i) for i in range(self.samples)]
        return question, context, child, seeds, self._sampling_params()

    def _invoke(self, input_: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig) -> Any:
        question, context, child, seeds, params = self._prepare(input_, run_manager, config)
        notes: list[str] = []
        if params:
            try:
                first = self._bound(params, seeds[0]).invoke(input_, child)
            except Exception as exc:
                if not _refuses(exc, params):
                    raise  # a timeout or rate limit says nothing about the parameters
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
                if not _refuses(exc, params):
                    raise
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
            setup_hash=self._config.setup_hash(),
            versions={**library_versions(), "langchain-core": metadata.version("langchain-core")},
            device="external",
            seeds=list(seeds) if seeded else [],
        )
        calibration = resolve_calibration(self._config)
        warn_unused_gate(self._config, calibration)
        annotate(report, calibration, self._config)
        if self.output == "dict":
            return {"answer": report.answer, "report": report.to_dict()}
        usages = [o.usage_metadata for o in outputs if isinstance(o, AIMessage) and o.usage_metadata]
        return AIMessage(
            content=self.refusals.reply(report),
            response_metadata=report.to_dict(),
            usage_metadata=reduce(add_usage, usages) if usages else None,
        )


def _refuses(exc: Exception, params: set[str]) -> bool:
    """Whether the first call's error is the model refusing the bound ``seed``/``temperature``: a ``TypeError``
    about keyword arguments (``got an unexpected keyword argument 'seed'``) or an error that names one of them
    (a server's 400 "Unsupported parameter: 'seed'"). Any other error (a timeout, a rate limit, a dropped
    connection, a ``TypeError`` from a bug in the model's own code) is raised: taken for a refusal, it would
    draw every sample unseeded at the model's own settings."""
    text = str(exc).lower()
    if isinstance(exc, TypeError) and "keyword argument" in text:
        return True
    return any(p in text for p in params)


def _refused(params: set[str], exc: Exception) -> str:
    first_line = (str(exc).splitlines() or [""])[0][:160]
    return (
        f"the model refused {'/'.join(sorted(params))} ({type(exc).__name__}: {first_line}); "
        "the samples were drawn with its own settings"
    )
