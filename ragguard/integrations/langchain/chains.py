"""RagGuardChain: the whole ragguard pipeline as a LangChain runnable."""

from __future__ import annotations

from typing import Any, Union

from langchain_core.documents import Document
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import run_in_executor
from pydantic import Field, PrivateAttr, model_validator
from typing_extensions import TypedDict

from ragguard.config import Config
from ragguard.endpoints import add_notes, call_config
from ragguard.errors import UsageError
from ragguard.integrations.langchain._messages import documents
from ragguard.integrations.langchain._pipelines import pipeline_for, ragguard_errors, settings_for

__all__ = ["RagGuardChain"]

_CALL_KWARGS = ("samples", "seed", "temperature", "max_tokens")


class ChainInput(TypedDict):
    """The dict form of :class:`RagGuardChain`'s input (a plain question string is accepted too)."""

    question: str


class ChainOutput(TypedDict):
    """What :class:`RagGuardChain` returns."""

    answer: str
    report: dict[str, Any]
    sources: list[Document]


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
    thread. A call may set its own ``samples``, ``seed``, ``temperature`` and
    ``max_tokens`` (``chain.invoke(q, samples=3)``, ``chain.bind(samples=3)``).

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

    _base: Config = PrivateAttr(default=None)  # type: ignore[assignment]
    _config: Config = PrivateAttr(default=None)  # type: ignore[assignment]
    _notes: list[str] = PrivateAttr(default_factory=list)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with ragguard_errors():  # a bad config file raises ragguard's ConfigError, not pydantic's wrapper
            super().__init__(*args, **kwargs)

    @model_validator(mode="after")
    def _load_settings(self) -> RagGuardChain:
        self._base = settings_for(self.guard, self.config_path, self.index_path)
        self._config, self._notes = self._call_config({})
        return self

    @property
    def InputType(self) -> Any:  # noqa: N802 - LangChain's name: the input and output JSON schemas derive from these
        return Union[str, ChainInput]  # noqa: UP007 - a runtime type object, as LangChain reads it

    @property
    def OutputType(self) -> Any:  # noqa: N802
        return ChainOutput

    def _call_config(self, kwargs: dict[str, Any]) -> tuple[Config, list[str]]:
        """One call's config: the fields, then the call's own ``samples``, ``seed``, ``temperature``, ``max_tokens``
        (``invoke(q, samples=3)``, ``bind(...)``), as :class:`ChatRagGuard` takes them."""
        unknown = sorted(set(kwargs) - set(_CALL_KWARGS))
        if unknown:
            raise UsageError(f"RagGuardChain got unsupported keyword argument(s) {', '.join(unknown)}: "
                             f"it takes {', '.join(_CALL_KWARGS)}")
        return call_config(self._base, **{k: kwargs.get(k, getattr(self, k)) for k in _CALL_KWARGS})

    def _answer_many(self, inputs: list[Any], **kwargs: Any) -> list[dict[str, Any] | Exception]:
        results: list[dict[str, Any] | Exception | None] = [None] * len(inputs)
        asked: list[tuple[int, str]] = []
        settings, notes = self._call_config(kwargs) if kwargs else (self._config, self._notes)
        base, lock = pipeline_for(self.guard, settings, retrieval=True)
        guard = base.with_settings(settings)
        for i, value in enumerate(inputs):
            try:  # a question the pipeline would refuse (too long, too) fails its own slot only
                question = _chain_question(value)
                guard.check_question(question)
                asked.append((i, question))
            except UsageError as exc:
                results[i] = exc
        if asked:
            with lock:
                reports = guard.ask_many([q for _, q in asked])
            for (i, _), report in zip(asked, reports, strict=True):
                add_notes(report, notes)
                results[i] = {
                    "answer": report.answer,
                    "report": report.to_dict(),
                    "sources": documents(report.sources, getattr(guard.retriever, "index", None)),
                }
        return [r for r in results if r is not None]  # every slot is filled above

    def _answer_one(self, value: Any, **kwargs: Any) -> dict[str, Any]:
        result = self._answer_many([value], **kwargs)[0]
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
            settings = self._call_config(kwargs)[0]
            base, _ = pipeline_for(self.guard, settings, retrieval=True)
            guard = base.with_settings(settings)
            for value in inputs:  # fail before generating anything
                guard.check_question(_chain_question(value))
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
