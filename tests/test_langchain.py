"""The LangChain integration: standard LangChain suites plus ragguard's own checks.

Unit tests run on fakes (conftest's queued generator and hashing embedder,
LangChain's fake chat models, a tiny embedder defined here). Tests marked
``integration`` run the real embedded models; they share one converted model
cache per session (``RAGGUARD_TEST_CACHE`` or ``RAGGUARD_CACHE`` when set,
else a temporary folder, which costs one GGUF conversion).
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import inspect
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.callbacks import CallbackManagerForLLMRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.language_models import BaseChatModel, FakeListChatModel, GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402
from langchain_core.runnables import RunnableLambda  # noqa: E402
from langchain_tests.integration_tests import ChatModelIntegrationTests, RetrieversIntegrationTests  # noqa: E402
from langchain_tests.unit_tests import ChatModelUnitTests  # noqa: E402
from pydantic import Field  # noqa: E402

from ragguard.config import Config, SamplingConfig  # noqa: E402
from ragguard.core.protocols import Completion  # noqa: E402
from ragguard.errors import IndexLoadError, UsageError  # noqa: E402
from ragguard.integrations.langchain import (  # noqa: E402
    ChatRagGuard,
    ConsistencyGuard,
    RagGuardChain,
    RagGuardRetriever,
)
from ragguard.pipeline import RagGuard, derive_seed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "faiss", "sentence_transformers")
# On-topic for conftest's tiny index (its payroll document).
QUESTION = "Do employees without the payroll bank card need an employment certificate?"
YES = "Yes, ask HR for the employment certificate."
NO = "No, you don't need it."
HANDBOOK_QUESTION = "How many days of annual leave do I get?"
# Read at import, before conftest's autouse fixture points RAGGUARD_CACHE at a per-test folder.
_USER_MODEL_CACHE = os.environ.get("RAGGUARD_TEST_CACHE") or os.environ.get("RAGGUARD_CACHE")


# --------------------------------------------------------------------- helpers
class WordEmbedder:
    """A tiny deterministic embedder: lower-cased words hashed into 32 buckets, unit length."""

    name = "word-embedder"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 32), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[row, int(hashlib.sha256(word.encode()).hexdigest(), 16) % 32] += 1.0
            norm = float(np.linalg.norm(out[row]))
            if norm:
                out[row] /= norm
        return out


class RecordingChatModel(BaseChatModel):
    """A chat model that declares ``temperature`` and ``seed`` and records the kwargs of every call."""

    replies: list[str]
    temperature: float = 0.0
    seed: int | None = None
    calls: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recording"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(dict(kwargs))
        text = self.replies[(len(self.calls) - 1) % len(self.replies)]
        usage = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text, usage_metadata=usage))])


class SamplingFakeGenerator:
    """Like a transformers generator: reads ``sampling`` from itself and loads on ``load()``."""

    name = "sampling-fake"

    def __init__(self, sampling: SamplingConfig) -> None:
        self.sampling = sampling
        self.device = "cpu"
        self.loads = 0
        self.seen: list[SamplingConfig] = []  # shared by shallow copies

    def load(self) -> None:
        self.loads += 1

    def generate(self, messages: Sequence[dict[str, str]], seeds: Sequence[int | None]) -> list[Completion]:
        self.seen.append(self.sampling)
        return [Completion(text=YES, seed=s) for s in seeds]


def _asyncio_marked(cls: type) -> type:
    """Mark the suite's coroutine tests for pytest-asyncio, whose strict mode needs an explicit mark.

    The mark goes on LangChain's own test functions: the suite's guard test
    (``test_no_overrides_DO_NOT_OVERRIDE``) refuses subclasses that replace
    them, and every suite run under pytest-asyncio needs the mark anyway.
    """
    for name in dir(cls):
        fn = getattr(cls, name)
        if name.startswith("test_") and inspect.iscoroutinefunction(fn) and not fn.__dict__.get("_ragguard_marked"):
            pytest.mark.asyncio(fn)
            fn._ragguard_marked = True
    return cls


def _loaded_after(code: str) -> dict[str, bool]:
    probe = f"import json, sys\n{code}\nprint(json.dumps({{m: m in sys.modules for m in {list(HEAVY) + ['langchain_core']!r}}}))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _USER_MODEL_CACHE or str(tmp_path_factory.mktemp("ragguard-model-cache"))


@pytest.fixture(autouse=True)
def _integration_model_cache(
    request: pytest.FixtureRequest, _ragguard_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Integration tests share one converted-model cache (conftest gives every test its own folder)."""
    if request.node.get_closest_marker("integration"):
        monkeypatch.setenv("RAGGUARD_CACHE", request.getfixturevalue("model_cache"))


# ------------------------------------------------------------- light imports
def test_import_ragguard_does_not_import_langchain() -> None:
    assert _loaded_after("import ragguard, ragguard.integrations")["langchain_core"] is False


def test_constructing_components_loads_no_model() -> None:
    loaded = _loaded_after(
        "from langchain_core.language_models import FakeListChatModel\n"
        "from ragguard.integrations.langchain import ChatRagGuard, ConsistencyGuard, RagGuardChain, RagGuardRetriever\n"
        "chat = ChatRagGuard(samples=2, max_tokens=8, temperature=0.5)\n"
        "chat._get_ls_params(); chat.bind(temperature=0.2)\n"
        "RagGuardRetriever(k=2); RagGuardChain(samples=2)\n"
        "ConsistencyGuard(model=FakeListChatModel(responses=['x']))"
    )
    assert loaded == {**dict.fromkeys(HEAVY, False), "langchain_core": True}


# ---------------------------------------------------- ChatRagGuard on fakes
def test_chat_returns_the_voted_answer_with_the_report(fake_guard: RagGuard, fake_generator: Any) -> None:
    fake_generator.enqueue([YES, YES, NO, YES, YES])
    msg = ChatRagGuard(guard=fake_guard).invoke(QUESTION)
    assert isinstance(msg, AIMessage)
    assert msg.content == YES
    meta = msg.response_metadata
    assert meta["verdict"] == "contradiction"
    assert meta["agreement"] == pytest.approx(0.8)
    assert [s["text"] for s in meta["samples"]] == [YES, YES, NO, YES, YES]
    assert {"clusters", "contradictions", "sources", "fingerprint", "timings"} <= set(meta)
    assert meta["sources"][0]["doc_id"] == "docs/payroll-bank-card.md"
    assert meta["fingerprint"]["seeds"] and meta["model_name"] == "fake-generator"
    usage = msg.usage_metadata  # the counts themselves: test_usage_counts_the_records_tokens_as_serve_does
    assert usage is not None and usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_chat_passes_samples_and_seed_to_the_pipeline(fake_guard: RagGuard, fake_generator: Any) -> None:
    fake_generator.enqueue([YES, YES])
    ChatRagGuard(guard=fake_guard, samples=2, seed=7).invoke(QUESTION)
    assert fake_generator.calls[-1]["seeds"] == [None, derive_seed(7, QUESTION, 1)]
    fake_generator.enqueue([YES, YES, YES])
    ChatRagGuard(guard=fake_guard, samples=2).invoke(QUESTION, samples=3)  # per call
    assert len(fake_generator.calls[-1]["seeds"]) == 3


def test_stop_truncates_the_returned_text(fake_guard: RagGuard, fake_generator: Any) -> None:
    fake_generator.enqueue([YES, YES])
    chat = ChatRagGuard(guard=fake_guard, samples=2, stop=["employment"])
    msg = chat.invoke(QUESTION)
    assert msg.content == "Yes, ask HR for the "
    assert msg.response_metadata["answer"] == YES  # the report keeps the voted answer whole
    fake_generator.enqueue([YES, YES])
    assert chat.invoke(QUESTION, stop=["HR", "ask"]).content == "Yes, "  # per-call stop, earliest match


class CountingGenerator:
    """Answers ``YES``; each completion carries one log-probability per word plus the stop token's, as the
    embedded model's do, so its ``tokens`` differ from a re-tokenized text; the prompt is counted in words."""

    name = "counting-generator"
    device = "cpu"
    adapter = None
    model_sha256 = None

    def generate(self, messages: Sequence[dict[str, str]], seeds: Sequence[int | None]) -> list[Completion]:
        return [Completion(YES, s, tuple(-0.1 for _ in range(len(YES.split()) + 1))) for s in seeds]

    def encode_prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        return [0] * sum(len(m["content"].split()) for m in messages)


def _counting_guard(tiny_index: Path, fake_embedder: Any) -> RagGuard:
    from ragguard.retrieval.index import IndexRetriever, KnowledgeIndex

    retriever = IndexRetriever(KnowledgeIndex.load(tiny_index), fake_embedder)
    return RagGuard(Config(), CountingGenerator(), fake_embedder, retriever, index_path=str(tiny_index))


def _serve_usage(report: Any, guard: RagGuard) -> dict[str, int]:
    from ragguard.apps.serve.completions import usage as serve_usage

    served = serve_usage(report, guard)
    return {"input_tokens": served["prompt_tokens"], "output_tokens": served["completion_tokens"],
            "total_tokens": served["total_tokens"]}


def test_usage_counts_the_records_tokens_as_serve_does(tiny_index: Path, fake_embedder: Any) -> None:
    from ragguard.generation.prompts import build_messages
    from ragguard.integrations.langchain._messages import usage

    guard = _counting_guard(tiny_index, fake_embedder)
    report = guard.ask(QUESTION)
    per_sample = len(YES.split()) + 1
    assert [s.tokens for s in report.samples] == [per_sample] * len(report.samples)
    prompt = build_messages(QUESTION, report.sources, guard.config.prompt.system, guard.config.prompt.max_context_chars)
    used = usage(guard.generator, prompt, report.samples)
    assert used["output_tokens"] == per_sample * len(report.samples)  # the record's counts, not re-tokenized text
    assert used["input_tokens"] == sum(len(m["content"].split()) for m in prompt) > 0
    assert used == _serve_usage(report, guard)
    assert usage(guard.generator, prompt, []) == {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}


def test_chat_usage_metadata_equals_serves_usage_for_the_same_record(tiny_index: Path, fake_embedder: Any) -> None:
    guard = _counting_guard(tiny_index, fake_embedder)
    msg = ChatRagGuard(guard=guard).invoke(QUESTION)
    assert msg.usage_metadata == _serve_usage(guard.ask(QUESTION), guard)


def test_stream_yields_the_same_text_as_invoke(fake_guard: RagGuard, fake_generator: Any) -> None:
    chat = ChatRagGuard(guard=fake_guard, samples=3)
    fake_generator.enqueue([YES, NO, YES])
    invoked = chat.invoke(QUESTION)
    fake_generator.enqueue([YES, NO, YES])
    chunks = list(chat.stream(QUESTION))
    assert len(chunks) > 1
    assert "".join(str(c.content) for c in chunks) == invoked.content
    assert chunks[-1].chunk_position == "last"
    assert [bool(c.response_metadata.get("verdict")) for c in chunks].count(True) == 1
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert merged.response_metadata["verdict"] == invoked.response_metadata["verdict"]
    assert merged.usage_metadata == invoked.usage_metadata


def test_temperature_zero_draws_only_the_greedy_answer(fake_guard: RagGuard, fake_generator: Any) -> None:
    fake_generator.enqueue([YES])
    msg = ChatRagGuard(guard=fake_guard, temperature=0).invoke(QUESTION)
    assert fake_generator.calls[-1]["seeds"] == [None]
    assert any("temperature=0" in w for w in msg.response_metadata["warnings"])


def test_sampling_parameters_reach_the_generator_without_reloading(fake_embedder: Any, tiny_index: Path) -> None:
    from ragguard.retrieval.index import IndexRetriever, KnowledgeIndex

    generator = SamplingFakeGenerator(SamplingConfig())
    retriever = IndexRetriever(KnowledgeIndex.load(tiny_index), fake_embedder)
    guard = RagGuard(Config(), generator, fake_embedder, retriever)
    chat = ChatRagGuard(guard=guard, samples=2, temperature=0.3, max_tokens=7)
    chat.invoke(QUESTION)
    chat.invoke(QUESTION, temperature=0.9, max_tokens=5)
    assert [(s.temperature, s.max_new_tokens) for s in generator.seen] == [(0.3, 7), (0.9, 5)]
    assert generator.sampling == SamplingConfig()  # the shared generator is left as it was
    assert chat._get_ls_params(temperature=0.9)["ls_temperature"] == 0.9


def test_without_retrieval_the_conversation_goes_to_the_generator(fake_guard: RagGuard, fake_generator: Any) -> None:
    fake_generator.enqueue([YES, YES, YES])
    chat = ChatRagGuard(guard=fake_guard, samples=3, retrieval=False)
    msg = chat.invoke([SystemMessage("Be brief."), HumanMessage("hi"), AIMessage("Hello!"), HumanMessage(QUESTION)])
    sent = fake_generator.calls[-1]
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert sent["messages"][-1]["content"] == QUESTION  # no retrieved context
    assert sent["seeds"][0] is None and len(sent["seeds"]) == 3
    assert msg.content == YES and msg.response_metadata["sources"] == []
    assert msg.response_metadata["fingerprint"]["seeds"] == sent["seeds"][1:]


def test_a_guard_without_retrieval_draws_at_the_temperature_its_fingerprint_names(fake_embedder: Any) -> None:
    """``ChatRagGuard(guard=..., temperature=0.9, retrieval=False)``: drawn at 0.9, hashed as 0.9, adaptive honoured."""
    generator = SamplingFakeGenerator(SamplingConfig())  # the guard's own temperature: 0.5
    base = Config().replace("sampling", adaptive=True)
    guard = RagGuard(base, generator, fake_embedder)
    msg = ChatRagGuard(guard=guard, temperature=0.9, retrieval=False).invoke([HumanMessage(QUESTION)])
    assert generator.seen and {s.temperature for s in generator.seen} == {0.9}
    meta = msg.response_metadata
    assert meta["fingerprint"]["config_hash"] == base.replace("sampling", temperature=0.9).hash()
    # The pipeline's own path: adaptive rounds (3 identical answers of 5 agree) and the sampling warnings.
    assert meta["adaptive"] == {"drawn": 3, "of": 5, "stopped": "agreed"} and len(meta["samples"]) == 3
    assert any("degenerate sampling" in w and "0.9" in w for w in meta["warnings"])
    assert generator.sampling == SamplingConfig()  # the shared generator is left as it was


def test_chat_refuses_what_it_cannot_do(fake_guard: RagGuard) -> None:
    chat = ChatRagGuard(guard=fake_guard, retrieval=False)
    image = HumanMessage(content=[{"type": "text", "text": "what is this?"}, {"type": "image", "url": "http://x"}])
    with pytest.raises(UsageError, match="text only"):
        chat.invoke([image])
    with pytest.raises(UsageError, match="tool"):
        chat.invoke([HumanMessage("hi"), ToolMessage("3", tool_call_id="1")])
    with pytest.raises(UsageError, match="unsupported keyword"):
        chat.invoke("hi", tools=[{"name": "x"}])
    with pytest.raises(UsageError, match="per-call model"):
        chat.invoke("hi", model="other-model")
    with pytest.raises(ValueError, match="either guard"):  # pydantic wraps it in a ValidationError
        ChatRagGuard(guard=fake_guard, index_path="somewhere")
    with pytest.raises(ValueError, match="temperature must be"):
        ChatRagGuard(guard=fake_guard, temperature=-1)


def test_an_off_topic_question_abstains_with_a_short_refusal(fake_guard: RagGuard) -> None:
    msg = ChatRagGuard(guard=fake_guard).invoke("zebra quantum saxophone")
    assert msg.content == "The knowledge base has nothing on this."
    assert msg.response_metadata["verdict"] == "abstain" and msg.response_metadata["answer"] == ""
    assert any("index has nothing on this" in w for w in msg.response_metadata["warnings"])
    assert msg.usage_metadata == {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    chunks = list(ChatRagGuard(guard=fake_guard).stream("zebra quantum saxophone"))
    assert "".join(str(c.content) for c in chunks) == "The knowledge base has nothing on this."
    custom = ChatRagGuard(guard=fake_guard, refusals={"off_topic": "Not in the handbook."})
    assert custom.invoke("zebra quantum saxophone").content == "Not in the handbook."
    # stop cuts answers, not the refusal: the message stays non-empty
    assert ChatRagGuard(guard=fake_guard, stop=["The"]).invoke("zebra quantum saxophone").content == (
        "The knowledge base has nothing on this.")
    with pytest.raises(ValueError, match="never empty"):
        ChatRagGuard(guard=fake_guard, refusals={"off_topic": ""})


def test_answers_that_disagree_abstain_with_the_competing_answers(
    fake_embedder: Any, fake_generator: Any, tiny_index: Path
) -> None:
    from ragguard.retrieval.index import IndexRetriever, KnowledgeIndex

    cfg = Config().replace("consistency", on_flagged="abstain")
    retriever = IndexRetriever(KnowledgeIndex.load(tiny_index), fake_embedder)
    guard = RagGuard(cfg, fake_generator, fake_embedder, retriever)
    fake_generator.enqueue([YES, YES, NO, YES, NO])
    msg = ChatRagGuard(guard=guard).invoke(QUESTION)
    assert msg.response_metadata["verdict"] == "abstain" and msg.response_metadata["answer"] == ""
    assert msg.content == f'The answers disagree: "{YES}"; "{NO}"'


def test_streaming_field_routes_invoke_through_stream(fake_guard: RagGuard, fake_generator: Any) -> None:
    fake_generator.enqueue([YES, YES])
    msg = ChatRagGuard(guard=fake_guard, samples=2, streaming=True).invoke(QUESTION)
    assert msg.content == YES and msg.response_metadata["verdict"] == "consistent"


def test_components_with_the_same_settings_share_one_pipeline(
    fake_guard: RagGuard, fake_generator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ragguard.integrations.langchain as lc

    built: list[Config] = []

    def from_config(cls: type, cfg: Config) -> RagGuard:
        built.append(cfg)  # the fakes loaded "for" cfg, as RagGuard.from_config would load them
        return RagGuard(cfg, fake_guard.generator, fake_guard.embedder, fake_guard.retriever, fake_guard.index_path)

    monkeypatch.setattr(RagGuard, "from_config", classmethod(from_config))
    lc.clear_cache()
    try:
        for _ in range(2):
            fake_generator.enqueue([YES, YES])
        ChatRagGuard(samples=2, temperature=0.2).invoke(QUESTION)
        ChatRagGuard(samples=2, temperature=0.9).invoke(QUESTION)  # other sampling, same weights
        fake_generator.enqueue([YES, YES])
        RagGuardChain(samples=2).invoke(QUESTION)
        assert len(built) == 1
        fake_generator.enqueue([YES, YES])
        ChatRagGuard(samples=2).invoke(QUESTION, model="some/other-model")  # another generator: another pipeline
        assert [c.generator.model for c in built] == ["embedded", "some/other-model"]
    finally:
        lc.clear_cache()


def test_a_shared_pipeline_reloads_its_index_when_it_is_rebuilt_on_disk(
    fake_guard: RagGuard, fake_generator: Any, fake_embedder: Any, tiny_index: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After `ragguard index build` into the same folder, a running app's components answer from the new
    index (as serve does), and a component built afterwards agrees with a new retriever."""
    import ragguard.integrations.langchain as lc
    from ragguard.retrieval.index import build_index

    def from_config(cls: type, cfg: Config) -> RagGuard:
        return RagGuard(cfg, fake_guard.generator, fake_guard.embedder, fake_guard.retriever, fake_guard.index_path)

    monkeypatch.setattr(RagGuard, "from_config", classmethod(from_config))
    lc.clear_cache()
    try:
        fake_generator.enqueue([YES, YES])
        before = RagGuardChain(samples=2, index_path=str(tiny_index)).invoke(QUESTION)
        assert all(d.metadata["doc_id"] != "kb/parking.md" for d in before["sources"])
        docs = tmp_path / "other" / "kb"
        docs.mkdir(parents=True)
        (docs / "parking.md").write_text("# Parking\n\nStaff park in level 2 of the garage.", encoding="utf-8")
        build_index([docs], tiny_index, fake_embedder)
        fake_generator.enqueue([YES, YES])
        after = RagGuardChain(samples=2, index_path=str(tiny_index)).invoke(QUESTION)
        assert [d.metadata["doc_id"] for d in after["sources"]] == ["kb/parking.md"]
        assert after["report"]["fingerprint"]["index"] != before["report"]["fingerprint"]["index"]
    finally:
        lc.clear_cache()


def test_chain_batch_fails_only_the_slot_of_a_question_the_pipeline_refuses(
    fake_guard: RagGuard, fake_generator: Any
) -> None:
    long = "word " * 600  # over generator.max_question_tokens (512)
    fake_generator.enqueue([YES, YES])
    out = RagGuardChain(guard=fake_guard, samples=2).batch([QUESTION, long], return_exceptions=True)
    assert out[0]["answer"] == YES
    assert isinstance(out[1], UsageError) and "over generator.max_question_tokens" in str(out[1])
    with pytest.raises(UsageError, match="over generator.max_question_tokens"):  # refused before generating
        RagGuardChain(guard=fake_guard, samples=2).batch([QUESTION, long])
    assert fake_generator.pending == 0


def test_chain_takes_per_call_settings_as_the_chat_model_does(fake_guard: RagGuard, fake_generator: Any) -> None:
    chain = RagGuardChain(guard=fake_guard, samples=2)
    fake_generator.enqueue([YES, YES, NO])
    assert len(chain.invoke(QUESTION, samples=3)["report"]["samples"]) == 3
    fake_generator.enqueue([YES, YES, NO])
    assert len(chain.bind(samples=3).invoke(QUESTION)["report"]["samples"]) == 3
    fake_generator.enqueue([YES, YES, NO])
    fake_generator.enqueue([YES, YES, NO])
    assert [len(r["report"]["samples"]) for r in chain.batch([QUESTION, QUESTION], samples=3)] == [3, 3]
    fake_generator.enqueue([YES])
    report = chain.invoke(QUESTION, temperature=0)["report"]
    assert len(report["samples"]) == 1 and any(w.startswith("temperature=0: only the greedy") for w in report["warnings"])
    fake_generator.enqueue([YES, YES])
    assert len(chain.invoke(QUESTION)["report"]["samples"]) == 2  # the fields again
    with pytest.raises(UsageError, match="unsupported keyword argument.*colour: it takes samples, seed"):
        chain.invoke(QUESTION, colour="red")


def test_langchains_llm_cache_never_serves_one_guards_answer_for_another_index(
    fake_guard: RagGuard, fake_generator: Any, fake_embedder: Any, tmp_path: Path
) -> None:
    from langchain_core.caches import InMemoryCache
    from langchain_core.globals import set_llm_cache

    from ragguard.retrieval.index import IndexRetriever, KnowledgeIndex, build_index

    docs = tmp_path / "other" / "kb"
    docs.mkdir(parents=True)
    (docs / "parking.md").write_text("# Parking\n\nStaff park in level 2 of the garage.", encoding="utf-8")
    build_index([docs], tmp_path / "other-index", fake_embedder)
    retriever = IndexRetriever(KnowledgeIndex.load(tmp_path / "other-index"), fake_embedder)
    other = RagGuard(Config(), fake_generator, fake_embedder, retriever, index_path=str(tmp_path / "other-index"))
    set_llm_cache(InMemoryCache())
    try:
        fake_generator.enqueue([YES, YES])
        a = ChatRagGuard(guard=fake_guard, samples=2).invoke(QUESTION)
        fake_generator.enqueue([NO, NO])
        b = ChatRagGuard(guard=other, samples=2).invoke(QUESTION)
        assert (a.content, b.content) == (YES, NO)
        assert [s["doc_id"] for s in b.response_metadata["sources"]] == ["kb/parking.md"]
        assert fake_generator.pending == 0
        fake_generator.model_sha256 = "ab" * 32  # known once the weights loaded: the key must not change with it
        again = ChatRagGuard(guard=fake_guard, samples=2).invoke(QUESTION)  # the same guard: the cache answers
        assert again.content == YES and fake_generator.pending == 0
    finally:
        set_llm_cache(None)


def test_constructors_raise_ragguards_own_error_for_a_bad_config(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from ragguard.errors import ConfigError

    for build in (ChatRagGuard, RagGuardChain, lambda **kw: ConsistencyGuard(model=FakeListChatModel(responses=["x"]), **kw)):
        with pytest.raises(ConfigError, match="config file .*nope.yaml' does not exist"):
            build(config_path=str(tmp_path / "nope.yaml"))
    with pytest.raises(ValidationError):  # a field of the wrong type stays pydantic's
        ChatRagGuard(samples="many")


def test_timeout_and_max_retries_reach_an_openai_backend(fake_guard: RagGuard) -> None:
    from ragguard.errors import ConfigError

    served = str(Path(__file__).parent.parent / "configs" / "openai-vllm-server.yaml")
    chat = ChatRagGuard(config_path=served, timeout=5, max_retries=0)
    assert (chat._base_config.generator.timeout, chat._base_config.generator.max_retries) == (5.0, 0)
    assert ChatRagGuard(timeout=5)._base_config.hash() == ChatRagGuard()._base_config.hash()  # a local model ignores them
    with pytest.raises(ConfigError, match="timeout"):
        ChatRagGuard(config_path=served, timeout=-1)


@pytest.mark.asyncio
async def test_ainvoke_generates_off_the_event_loop(fake_guard: RagGuard, fake_generator: Any) -> None:
    inner = fake_generator.generate

    def slow_generate(messages: Any, seeds: Any) -> Any:
        time.sleep(0.3)
        return inner(messages, seeds)

    fake_guard.generator.generate = slow_generate  # type: ignore[method-assign]
    fake_generator.enqueue([YES, YES])
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(20):
            await asyncio.sleep(0.01)
            ticks += 1

    msg, _ = await asyncio.gather(ChatRagGuard(guard=fake_guard, samples=2).ainvoke(QUESTION), ticker())
    assert msg.content == YES
    assert ticks == 20  # the loop kept running while the model "generated"


@pytest.mark.asyncio
async def test_abatch_answers_every_input(fake_guard: RagGuard, fake_generator: Any) -> None:
    fake_generator.enqueue([YES, YES])
    fake_generator.enqueue([YES, YES])
    out = await ChatRagGuard(guard=fake_guard, samples=2).abatch([QUESTION, QUESTION])
    assert [m.content for m in out] == [YES, YES]


# ----------------------------------------------------------- ConsistencyGuard
def test_guard_votes_and_flags_the_contradiction() -> None:
    answers = ["Yes, ask HR."] * 3 + ["No, you don't need it."]
    model = GenericFakeChatModel(messages=iter(answers))
    guard = ConsistencyGuard(model=model, samples=4, embedder=WordEmbedder(), max_concurrency=1)
    msg = guard.invoke("Do I need an employment certificate?")
    assert isinstance(msg, AIMessage)
    assert msg.content == "Yes, ask HR."
    report = msg.response_metadata
    assert report["verdict"] == "contradiction"
    assert report["agreement"] == pytest.approx(0.75)
    assert [s["text"] for s in report["samples"]] == answers
    assert {c["size"] for c in report["clusters"]} == {3, 1}
    assert any(c["kind"] == "polarity" for c in report["contradictions"])
    assert report["fingerprint"]["embedder"] == "word-embedder"
    assert any("was not given temperature/seed" in w for w in report["warnings"])


def test_guard_binds_temperature_and_a_seed_per_sample() -> None:
    model = RecordingChatModel(replies=["Yes, ask HR."])
    question = "Do I need an employment certificate?"
    out = ConsistencyGuard(
        model=model, samples=3, temperature=0.4, seed=11, embedder=WordEmbedder(), output="dict", max_concurrency=1
    ).invoke(question)
    seeds = [derive_seed(11, question, i) for i in range(3)]
    assert model.calls == [{"temperature": 0.4, "seed": s} for s in seeds]
    assert out["answer"] == "Yes, ask HR." and out["report"]["verdict"] == "consistent"
    assert [s["seed"] for s in out["report"]["samples"]] == seeds
    assert (
        out["report"]["fingerprint"]["seeds"] == seeds and out["report"]["fingerprint"]["model"] == "RecordingChatModel"
    )


def test_guard_sums_the_usage_of_its_calls() -> None:
    model = RecordingChatModel(replies=["Yes."])
    msg = ConsistencyGuard(model=model, samples=4, embedder=WordEmbedder()).invoke("Is it open?")
    assert msg.usage_metadata == {"input_tokens": 12, "output_tokens": 8, "total_tokens": 20}


def test_guard_falls_back_to_plain_calls_when_the_runnable_refuses_sampling() -> None:
    chain = RunnableLambda(lambda question: f"Yes, ask HR about: {question}")
    msg = ConsistencyGuard(model=chain, samples=3, bind_sampling=True, embedder=WordEmbedder()).invoke("Forms?")
    assert msg.content == "Yes, ask HR about: Forms?"
    assert any("refused" in w and "TypeError" in w for w in msg.response_metadata["warnings"])
    assert [s["seed"] for s in msg.response_metadata["samples"]] == [None, None, None]


class FailingFirstChatModel(RecordingChatModel):
    """Raises ``error`` on its first call, then answers as RecordingChatModel."""

    error: Any = None

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        if self.error is not None and not self.calls:
            self.calls.append({"raised": True, **kwargs})
            raise self.error
        return super()._generate(messages, stop, run_manager, **kwargs)


def test_guard_raises_a_transient_error_instead_of_taking_it_for_a_refusal_of_its_parameters() -> None:
    model = FailingFirstChatModel(replies=["Yes."], error=TimeoutError("Request timed out"))
    with pytest.raises(TimeoutError, match="timed out"):
        ConsistencyGuard(model=model, samples=3, embedder=WordEmbedder(), max_concurrency=1).invoke("Is it open?")
    assert len(model.calls) == 1  # not called again unbound
    # A server's 400 that names the parameter is a refusal: the samples are drawn plainly, and it is said.
    model = FailingFirstChatModel(replies=["Yes."], error=ValueError("Unsupported parameter: 'seed'"))
    msg = ConsistencyGuard(model=model, samples=3, embedder=WordEmbedder(), max_concurrency=1).invoke("Is it open?")
    assert any(w.startswith("the model refused seed/temperature (ValueError") for w in msg.response_metadata["warnings"])
    assert model.calls[1:] == [{}, {}, {}]
    # A TypeError from a bug inside the model is no refusal of the parameters either
    model = FailingFirstChatModel(replies=["Yes."], error=TypeError("can only concatenate str (not \"int\") to str"))
    with pytest.raises(TypeError, match="concatenate"):
        ConsistencyGuard(model=model, samples=3, embedder=WordEmbedder(), max_concurrency=1).invoke("Is it open?")


@pytest.mark.asyncio
async def test_guard_raises_a_transient_error_on_the_async_path_too() -> None:
    model = FailingFirstChatModel(replies=["Yes."], error=ConnectionError("connection reset"))
    with pytest.raises(ConnectionError):
        await ConsistencyGuard(model=model, samples=3, embedder=WordEmbedder(), max_concurrency=1).ainvoke("Open?")
    assert len(model.calls) == 1


def test_guard_refuses_an_empty_question_before_calling_the_model() -> None:
    model = RecordingChatModel(replies=["Yes."])
    for question in ("   ", {"question": "", "context": "x"}):
        with pytest.raises(UsageError, match="ConsistencyGuard: .*empty.*: pass the question the model should answer"):
            ConsistencyGuard(model=model, samples=3, embedder=WordEmbedder()).invoke(question)
    assert model.calls == []


def test_guard_reads_questions_and_context_from_chain_inputs() -> None:
    prompt = ChatPromptTemplate.from_messages([("system", "Context: {context}"), ("human", "{question}")])
    model = FakeListChatModel(responses=["Twenty five days of leave."])
    guard = ConsistencyGuard(model=prompt | model, samples=2, embedder=WordEmbedder(), max_concurrency=1)
    docs = [Document(page_content="Employees get twenty five days of leave.")]
    msg = guard.invoke({"question": "How many leave days?", "context": docs})
    report = msg.response_metadata
    assert report["question"] == "How many leave days?"
    assert report["sources"][0]["text"] == docs[0].page_content and report["grounded"] is True
    with pytest.raises(UsageError, match="'question'"):
        guard.invoke({"query": "no question key"})
    plain = ConsistencyGuard(model=model, samples=2, embedder=WordEmbedder(), max_concurrency=1)
    from_messages = plain.invoke([SystemMessage("x"), HumanMessage("How many leave days?")])
    assert from_messages.response_metadata["question"] == "How many leave days?"


@pytest.mark.asyncio
async def test_guard_ainvoke() -> None:
    answers = ["Yes, ask HR."] * 3 + ["No, you don't need it."]
    guard = ConsistencyGuard(
        model=GenericFakeChatModel(messages=iter(answers)), samples=4, embedder=WordEmbedder(), max_concurrency=1
    )
    msg = await guard.ainvoke("Do I need an employment certificate?")
    assert msg.content == "Yes, ask HR." and msg.response_metadata["verdict"] == "contradiction"


# ------------------------------------------------------- retriever and chain
def test_retriever_returns_documents_with_metadata(tiny_index: Path, fake_embedder: Any) -> None:
    retriever = RagGuardRetriever(index_path=str(tiny_index), embedder=fake_embedder, k=2)
    docs = retriever.invoke(QUESTION)
    assert len(docs) == 2 and all(isinstance(d, Document) for d in docs)
    assert docs[0].metadata["doc_id"] == "docs/payroll-bank-card.md"
    assert set(docs[0].metadata) == {"doc_id", "chunk_id", "score", "source", "tags", "lang"}
    assert docs[0].metadata["source"] == "docs/payroll-bank-card.md" and docs[0].metadata["lang"] == "en"
    assert docs[0].metadata["score"] >= docs[1].metadata["score"]
    assert "employment certificate" in docs[0].page_content
    assert len(retriever.invoke(QUESTION, k=1)) == 1


def test_retrievers_over_one_index_and_embedder_share_the_loaded_ones(
    tiny_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_embedder: Any
) -> None:
    """Without an embedder of their own, retrievers over the same index and embedder settings load the embedder
    and the index once (as the other components share pipelines); their k and search options stay their own."""
    import shutil

    import ragguard.generation.backends
    import ragguard.integrations.langchain as lc

    built: list[Any] = []
    monkeypatch.setattr(ragguard.generation.backends, "build_embedder",
                        lambda config: built.append(make_embedder()) or built[-1])
    lc.clear_cache()
    try:
        first, second = RagGuardRetriever(index_path=str(tiny_index), k=1), RagGuardRetriever(index_path=str(tiny_index))
        assert len(first.invoke(QUESTION)) == 1 and len(second.invoke(QUESTION)) == 3  # k 1; top_k 3
        a, b = first._get_searcher(), second._get_searcher()
        assert len(built) == 1 and a.embedder is b.embedder is built[0] and a.index is b.index
        cfg = Config().replace("retrieval", candidates=7)  # other search options: the same loaded ones
        third = RagGuardRetriever(index_path=str(tiny_index), config_path=cfg)
        assert third._get_searcher().index is a.index and third._get_searcher().options != a.options
        other = tmp_path / "other"
        shutil.copytree(tiny_index, other)
        elsewhere = RagGuardRetriever(index_path=str(other))._get_searcher()
        assert elsewhere.index is not a.index and elsewhere.embedder is a.embedder  # another index, the same embedder
        assert len(built) == 1
        assert RagGuardRetriever(index_path=str(tiny_index), config_path=Config().replace(
            "embedder", batch_size=16))._get_searcher().embedder is not a.embedder  # other embedder settings
        assert len(built) == 2
    finally:
        lc.clear_cache()


def test_consistency_guards_with_the_same_embedder_settings_share_one_loaded_embedder(
    tiny_index: Path, monkeypatch: pytest.MonkeyPatch, make_embedder: Any
) -> None:
    """Each guard loaded its own embedder (a second copy of the model per guard in an app)."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    import ragguard.generation.backends
    import ragguard.integrations.langchain as lc

    built: list[Any] = []
    monkeypatch.setattr(ragguard.generation.backends, "build_embedder",
                        lambda config: built.append(make_embedder()) or built[-1])
    lc.clear_cache()
    try:
        guards = [ConsistencyGuard(model=FakeListChatModel(responses=["x"]), samples=n) for n in (3, 5)]
        assert guards[0]._get_embedder() is guards[1]._get_embedder() is built[0] and len(built) == 1
        retriever = RagGuardRetriever(index_path=str(tiny_index))  # the same default embedder settings
        assert retriever._get_searcher().embedder is built[0] and len(built) == 1
    finally:
        lc.clear_cache()


def test_retriever_documents_carry_the_chunks_source_tags_and_lang(tmp_path: Path, fake_embedder: Any) -> None:
    from ragguard.retrieval.index import build_index

    docs = tmp_path / "kb"
    docs.mkdir()
    row = {"question": "Who approves overtime?", "answer": "Your line manager approves overtime.",
           "tags": "hr, overtime", "lang": "en"}
    (docs / "faq.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    build_index([docs], tmp_path / "index", fake_embedder)
    retriever = RagGuardRetriever(index_path=str(tmp_path / "index"), embedder=fake_embedder,
                                  config_path=Config().replace("retrieval", min_score=None))
    [doc] = retriever.invoke("Who approves overtime?")
    assert doc.metadata["doc_id"] == "kb/faq.jsonl:1" and doc.metadata["chunk_id"]  # kept
    assert doc.metadata["source"] == "kb/faq.jsonl"  # the file the row came from: LangChain's "source"
    assert doc.metadata["tags"] == ["hr", "overtime"] and doc.metadata["lang"] == "en"


def test_chain_publishes_its_input_and_output_schemas() -> None:
    chain = RagGuardChain()
    schema = chain.get_input_jsonschema()
    assert {"type": "string"} in schema["anyOf"] and schema["$defs"]["ChainInput"]["required"] == ["question"]
    out = chain.get_output_jsonschema()
    assert sorted(out["$defs"]["ChainOutput"]["properties"]) == ["answer", "report", "sources"]


def test_chain_sources_are_the_documents_the_retriever_returns(fake_guard: RagGuard, fake_generator: Any,
                                                               fake_embedder: Any, tiny_index: Path) -> None:
    fake_generator.enqueue([YES, YES])
    sources = RagGuardChain(guard=fake_guard, samples=2).invoke(QUESTION)["sources"]
    retriever = RagGuardRetriever(index_path=str(tiny_index), embedder=fake_embedder,
                                  config_path=Config().replace("retrieval", min_score=None))
    assert sources and [(d.metadata, d.page_content) for d in sources] == [
        (d.metadata, d.page_content) for d in retriever.invoke(QUESTION)]
    assert all({"source", "tags", "lang"} <= set(d.metadata) for d in sources)


def test_chat_says_its_finish_reason_as_serve_does(fake_guard: RagGuard, fake_generator: Any) -> None:
    from ragguard.core.protocols import Completion

    fake_generator.enqueue([YES, YES])
    assert ChatRagGuard(guard=fake_guard, samples=2).invoke(QUESTION).response_metadata["finish_reason"] == "stop"
    inner = fake_generator.generate

    def cut(messages: Any, seeds: Any) -> Any:  # every answer ran into max_new_tokens
        return [Completion(c.text, c.seed, truncated=True) for c in inner(messages, seeds)]

    fake_guard.generator.generate = cut  # type: ignore[method-assign]
    fake_generator.enqueue([YES, YES])
    assert ChatRagGuard(guard=fake_guard, samples=2).invoke(QUESTION).response_metadata["finish_reason"] == "length"
    fake_generator.enqueue([YES, YES])  # cut at a stop string before the length limit: it finished on the stop
    stopped = ChatRagGuard(guard=fake_guard, samples=2, stop=["HR"]).invoke(QUESTION)
    assert stopped.content == "Yes, ask " and stopped.response_metadata["finish_reason"] == "stop"


def test_retriever_reloads_its_index_when_it_is_rebuilt_on_disk(tiny_index: Path, fake_embedder: Any,
                                                                tmp_path: Path) -> None:
    from ragguard.retrieval.index import build_index

    retriever = RagGuardRetriever(index_path=str(tiny_index), embedder=fake_embedder,
                                  config_path=Config().replace("retrieval", min_score=None))
    assert all(d.metadata["doc_id"] != "kb/parking.md" for d in retriever.invoke(QUESTION))
    docs = tmp_path / "other" / "kb"
    docs.mkdir(parents=True)
    (docs / "parking.md").write_text("# Parking\n\nStaff park in level 2 of the garage.", encoding="utf-8")
    build_index([docs], tiny_index, fake_embedder)
    assert [d.metadata["doc_id"] for d in retriever.invoke(QUESTION)] == ["kb/parking.md"]


def test_retriever_applies_the_configs_top_k_and_min_score(tiny_index: Path, fake_embedder: Any) -> None:
    def retriever(k: int | None = None, **retrieval: Any) -> RagGuardRetriever:
        cfg = Config().replace("retrieval", **retrieval)
        return RagGuardRetriever(index_path=str(tiny_index), embedder=fake_embedder, config_path=cfg, k=k)

    one = retriever(top_k=1, min_score=None)
    assert len(one.invoke(QUESTION)) == 1  # k left out: retrieval.top_k
    assert len(one.invoke(QUESTION, k=3)) == 3 and len(retriever(2, top_k=1, min_score=None).invoke(QUESTION)) == 2
    best = one.invoke(QUESTION)[0].metadata["score"]
    assert len(retriever(top_k=3, min_score=round(best - 0.01, 6)).invoke(QUESTION)) == 3  # the best clears it
    assert retriever(top_k=3, min_score=round(best + 0.01, 6)).invoke(QUESTION) == []  # where ask abstains
    assert RagGuardRetriever(index_path=str(tiny_index), embedder=fake_embedder).invoke("zebra quantum saxophone") == []


@pytest.mark.parametrize("query", ["", "   ", "?!", 5, None], ids=repr)
def test_retriever_refuses_a_query_that_is_no_question_in_one_line(
        tiny_index: Path, fake_embedder: Any, query: Any) -> None:
    retriever = RagGuardRetriever(index_path=str(tiny_index), embedder=fake_embedder)
    with pytest.raises(UsageError, match="retriever.invoke") as refused:
        retriever.invoke(query)
    assert "\n" not in str(refused.value) and "question" not in str(refused.value)  # it is a query


def test_retriever_caps_k_per_call_as_in_the_constructor(tiny_index: Path, fake_embedder: Any) -> None:
    retriever = RagGuardRetriever(index_path=str(tiny_index), embedder=fake_embedder)
    for k in (51, 100, -1, 2.5, True):
        with pytest.raises(UsageError, match=f"k must be an integer from 0 to 50, got {k!r}: ask for at most 50"):
            retriever.invoke(QUESTION, k=k)
    assert retriever.invoke(QUESTION, k=0) == []


def test_retriever_refuses_an_index_built_by_another_embedder(tiny_index: Path) -> None:
    with pytest.raises(IndexLoadError, match="built with embedder"):
        RagGuardRetriever(index_path=str(tiny_index), embedder=WordEmbedder()).invoke("anything")


def test_chain_answers_strings_and_dicts(fake_guard: RagGuard, fake_generator: Any) -> None:
    chain = RagGuardChain(guard=fake_guard, samples=2)
    fake_generator.enqueue([YES, YES])
    out = chain.invoke(QUESTION)
    assert set(out) == {"answer", "report", "sources"}
    assert out["answer"] == YES and out["report"]["verdict"] == "consistent"
    assert out["sources"][0].metadata["doc_id"] == "docs/payroll-bank-card.md"
    fake_generator.enqueue([NO, NO])
    assert chain.invoke({"question": QUESTION})["answer"] == NO


def test_chain_batch_isolates_bad_inputs(fake_guard: RagGuard, fake_generator: Any) -> None:
    chain = RagGuardChain(guard=fake_guard, samples=2)
    fake_generator.enqueue([YES, YES])
    fake_generator.enqueue([NO, NO])
    out = chain.batch([QUESTION, "   ", {"question": QUESTION}], return_exceptions=True)
    assert out[0]["answer"] == YES and isinstance(out[1], UsageError) and out[2]["answer"] == NO
    with pytest.raises(UsageError):  # without return_exceptions, a bad input fails before any generation
        chain.batch([QUESTION, ""])
    assert len(fake_generator.calls) == 2


def test_chain_composes_with_lcel(fake_guard: RagGuard, fake_generator: Any) -> None:
    fake_generator.enqueue([YES, YES])
    app = RagGuardChain(guard=fake_guard, samples=2) | RunnableLambda(
        lambda r: f"{r['answer']} [{r['report']['verdict']}]"
    )
    assert app.invoke(QUESTION) == f"{YES} [consistent]"


# ------------------------------------------------------------ standard suites
class TestChatRagGuardUnit(ChatModelUnitTests):
    """LangChain's standard unit suite (construction and tracing parameters; no model runs)."""

    @property
    def chat_model_class(self) -> type[ChatRagGuard]:
        return ChatRagGuard

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {}  # default arguments: what `ChatRagGuard()` gives a new user

    @property
    def has_tool_calling(self) -> bool:
        return False  # ragguard votes on free-text answers; there is no tool-call protocol to vote on

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True


@_asyncio_marked
@pytest.mark.integration
class TestChatRagGuardIntegration(ChatModelIntegrationTests):
    """LangChain's standard integration suite on ``ChatRagGuard()`` with default arguments.

    The standard prompts ("Hello", "hi", haikus) are off-topic for the handbook index, so the
    default gate (``retrieval.min_score``) abstains on them: the message is then the short refusal,
    never empty content (the suite asserts non-empty content).
    """

    @property
    def chat_model_class(self) -> type[ChatRagGuard]:
        return ChatRagGuard

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {}

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False  # text-only generator

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str | None:
        # A second model that exists offline: the embedded model's converted folder, loaded as an
        # ordinary transformers checkpoint (present once an earlier test of the session loaded it).
        cache = Path(os.environ.get("RAGGUARD_CACHE", ""))
        done = sorted(cache.glob("models/*/ragguard-complete")) if cache.name else []
        return str(done[0].parent) if done else None


@_asyncio_marked
@pytest.mark.integration
class TestRagGuardRetrieverIntegration(RetrieversIntegrationTests):
    """LangChain's standard retriever suite on the bundled handbook index and the embedded embedder."""

    @property
    def retriever_constructor(self) -> type[RagGuardRetriever]:
        return RagGuardRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"k": 3}

    @property
    def retriever_query_example(self) -> str:
        return HANDBOOK_QUESTION


# ------------------------------------------------- real models, own checks
@pytest.mark.integration
def test_chat_on_the_embedded_model_reports_evidence_and_tokenizer_counts() -> None:
    chat = ChatRagGuard(samples=2, max_tokens=24, temperature=0.7)
    msg = chat.invoke(HANDBOOK_QUESTION)
    meta = msg.response_metadata
    assert msg.content and meta["verdict"] in ("consistent", "inconsistent", "contradiction")
    assert meta["sources"][0]["doc_id"].endswith("leave-annual.md")
    assert meta["fingerprint"]["model_sha256"] and len(meta["samples"]) == 2
    usage = msg.usage_metadata
    assert usage is not None and usage["input_tokens"] > 100  # the retrieved context is in the prompt
    assert chat.get_num_tokens("annual leave") == len(chat.get_token_ids("annual leave")) > 0
    hello = ChatRagGuard().invoke("Hello")  # off-topic: the default gate abstains with a refusal
    assert hello.response_metadata["verdict"] == "abstain" and hello.content == "The knowledge base has nothing on this."


@pytest.mark.integration
def test_chat_without_retrieval_on_the_embedded_model() -> None:
    chat = ChatRagGuard(samples=2, max_tokens=16, temperature=0.7, retrieval=False)
    msg = chat.invoke([SystemMessage("Answer in one short sentence."), HumanMessage("What colour is the sky?")])
    assert msg.content and msg.response_metadata["sources"] == []
    assert msg.usage_metadata is not None and 0 < msg.usage_metadata["input_tokens"] < 100


# --------------------------------------------------------------------- examples
def _run_example(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.integration
def test_example_langchain_app_runs() -> None:
    out = _run_example("langchain_app.py", HANDBOOK_QUESTION, "--samples", "2", "--max-tokens", "24")
    assert "verdict:" in out and "leave-annual.md" in out


@pytest.mark.integration  # the fake chat model is offline, but the embedder is the real embedded one
def test_example_guard_my_model_runs() -> None:
    out = _run_example("guard_my_model.py")
    assert "verdict: contradiction" in out


def test_the_integration_and_examples_depend_on_langchain_core_only() -> None:
    package = sorted((ROOT / "ragguard" / "integrations" / "langchain").glob("*.py"))
    assert {p.name for p in package} >= {"chat_models.py", "guards.py", "retrievers.py", "chains.py"}
    used: set[str] = set()
    for path in [*package, *(ROOT / "examples").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        roots = {m.split(".")[0] for m in modules if m.startswith("langchain")}
        # Shared helpers (and examples/ray_audit.py) may use no LangChain at all.
        assert roots <= {"langchain_core"}, (path.name, roots)
        used |= roots
    assert used == {"langchain_core"}


def test_consistency_guard_builds_the_embedder_of_its_config_backend() -> None:
    """No ``embedder``: the config's embedder backend is built on first use (no request is made here)."""
    from ragguard.config import Config
    from ragguard.generation.backends.openai import OpenAIEmbedder

    cfg = Config.from_dict({"embedder": {"backend": "openai", "model": "bge", "base_url": "http://127.0.0.1:9/v1"}})
    guard = ConsistencyGuard(model=FakeListChatModel(responses=["Yes."]), config_path=cfg)
    assert isinstance(guard._get_embedder(), OpenAIEmbedder)
