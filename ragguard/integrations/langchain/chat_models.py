"""ChatRagGuard: ragguard as a LangChain chat model."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr, model_validator

from ragguard.config import Config
from ragguard.endpoints import Refusals, add_notes, call_config, finish_reason
from ragguard.errors import UsageError
from ragguard.generation.models import EMBEDDED_GENERATOR
from ragguard.generation.prompts import build_messages
from ragguard.integrations.langchain._messages import chat_dicts, last_human_text, truncate, usage
from ragguard.integrations.langchain._pipelines import pipeline_for, ragguard_errors, settings_for
from ragguard.pipeline import RagGuard, bundled_index_path, index_id

__all__ = ["ChatRagGuard"]

# Keyword arguments ChatRagGuard accepts per call (``invoke(..., temperature=0.3)`` or ``.bind(...)``).
_CALL_KWARGS = frozenset({"temperature", "max_tokens", "samples", "seed", "model"})


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
    ``generator.model``, ``stop`` cuts the returned answer at the first stop
    string (the report keeps the untruncated answer; a refusal is never cut). ``timeout`` and
    ``max_retries`` set ``generator.timeout`` and ``generator.max_retries``
    of the ``openai`` backend; a local model has no network call to time
    out or retry, and ignores them. ``temperature``, ``max_tokens``,
    ``samples``, ``seed`` and ``model`` may also be passed per call.

    ``ainvoke``, ``abatch`` and ``astream`` run generation in a worker thread
    (LangChain's ``run_in_executor``), so the event loop stays free.

    Abstaining: when ragguard has no answer (nothing relevant in the index,
    or answers that disagree under ``consistency.on_flagged: abstain``), the
    message says so in a short sentence (``refusals``); the report in
    ``response_metadata`` keeps ``answer == ""`` and ``verdict == "abstain"``.

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
    """Answers drawn per question (1 greedy + samples-1 seeded); ``None`` = the config's (5). With ``samples=1``
    the answer is the greedy one whatever ``temperature`` and ``seed`` say, so wrapping such a model in a
    :class:`ConsistencyGuard` gets the same answer every call: keep ``samples`` above 1 and read its verdict."""
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
    """With ``generator.backend: openai``: ``generator.timeout`` (seconds per request); unused by a local model."""
    max_retries: int | None = None
    """With ``generator.backend: openai``: ``generator.max_retries``; unused by a local model."""
    streaming: bool = False
    """Route ``invoke`` through ``stream`` (see the class docstring about what streams)."""
    refusals: Refusals = Field(default_factory=Refusals)
    """The content of an abstention (the report's ``answer`` is ``""``): a short sentence saying why,
    never an empty message. Pass ``Refusals(off_topic=..., disagree=..., empty=...)`` or a dict."""
    guard: Any = Field(default=None, exclude=True)
    """A :class:`~ragguard.RagGuard` you built yourself; then ``config_path``, ``index_path`` and
    ``model`` must stay unset."""

    _base_config: Config = PrivateAttr(default=None)  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with ragguard_errors():  # a bad config file raises ragguard's ConfigError, not pydantic's wrapper
            super().__init__(*args, **kwargs)

    @model_validator(mode="after")
    def _check_settings(self) -> ChatRagGuard:
        """Validate settings now (reads the config file; loads no model)."""
        cfg = settings_for(
            self.guard, self.config_path, self.index_path, self.model, fields="config_path/index_path/model"
        )
        network = {k: v for k, v in (("timeout", self.timeout), ("max_retries", self.max_retries)) if v is not None}
        if network and cfg.generator.backend == "openai":
            if self.guard is not None:
                raise UsageError(f"{'/'.join(network)} cannot change the generator of a guard= you built: "
                                 "set generator.timeout and generator.max_retries in its config")
            cfg = cfg.replace("generator", **network)  # checked by the config's own rules
        self._base_config = cfg
        self._call_config({})
        return self

    @property
    def _llm_type(self) -> str:
        return "ragguard"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # LangChain's LLM cache keys on these: they name what the answer comes from (the model, the config and
        # the index's contents), so two guards over different indexes, or one index rebuilt, never share an
        # entry. Not the weights' hash: it is known only once the model has loaded, so the first call's key
        # would differ from the next one's. Weights retrained at the same path: clear the cache.
        return {
            "model": self._model_name(),
            "config_hash": self._base_config.hash(),
            "index_path": self.index_path,
            "index": self._index_identity(),
            "samples": self.samples,
            "seed": self.seed,
            "retrieval": self.retrieval,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def _index_identity(self) -> str | None:
        """The manifest hash of the index answers come from; a ``guard=`` without an index folder is named by its
        object id (it cannot be named across processes, but never collides with another in this one)."""
        if not self.retrieval:
            return None
        if self.guard is not None:
            if self.guard.index_path is None:
                return None if self.guard.retriever is None else f"retriever-{id(self.guard.retriever):x}"
            return index_id(self.guard.index_path)
        return index_id(self._base_config.retrieval.index or str(bundled_index_path()))

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
        return call_config(
            cfg,
            temperature=kwargs.get("temperature", self.temperature),
            max_tokens=kwargs.get("max_tokens", self.max_tokens),
            samples=kwargs.get("samples", self.samples),
            seed=kwargs.get("seed", self.seed),
        )

    def _pipeline(self, cfg: Config) -> tuple[RagGuard, Any]:
        return pipeline_for(self.guard, cfg, self.retrieval)

    def _answer(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> AIMessage:
        cfg, notes = self._call_config(kwargs)
        base, lock = self._pipeline(cfg)
        with lock:
            guard = base.with_settings(cfg)  # this call's sampling and retrieval, the loaded weights
            if self.retrieval:
                question = last_human_text(messages)
                report = guard.ask(question)
                prompt = build_messages(
                    question.strip(), report.sources, cfg.prompt.system, cfg.prompt.max_context_chars
                )
            else:
                prompt = chat_dicts(messages)
                report = guard.ask_conversation(prompt, question=last_human_text(messages))
            add_notes(report, notes)
            used = usage(guard.generator, prompt, report.samples)
        name = str(getattr(guard.generator, "name", self._model_name()))
        # stop cuts the model's answer, never ragguard's refusal (cut, "The knowledge ..." at stop="The" was empty);
        # an answer cut at a stop string finished on it, as OpenAI says ("stop"), whatever the samples' length
        content = truncate(report.answer, stop if stop is not None else self.stop) if report.answer \
            else self.refusals.reply(report)
        finish = "stop" if report.answer and content != report.answer else finish_reason(report)
        return AIMessage(
            content=content,
            response_metadata={**report.to_dict(), "model_name": name, "finish_reason": finish},
            usage_metadata=used,
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
