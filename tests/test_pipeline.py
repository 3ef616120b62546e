"""The pipeline over fakes: the report contract, seeds, prompts, determinism, overrides."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fakes import CONTRACT_KEYS

from ragguard.config import Config
from ragguard.core.types import Report
from ragguard.errors import UsageError
from ragguard.pipeline import RagGuard, derive_seed, sample_seeds

QUESTION = "Do employees without the payroll bank card need an employment certificate?"
YES = "Yes, request an employment certificate from HR with form HR-07."
FIVE = [YES] * 4 + ["Salaries are paid to a payroll bank card."]

ADDED_KEYS = {"confidence", "calibrated", "grounded", "warnings", "semantic_entropy_weighted", "grounding"}


def check_contract(d: dict) -> None:
    """The ask --json shape of CONTRACTS.md, key by key and type by type."""
    assert set(d) == CONTRACT_KEYS | ADDED_KEYS | ({"calibration"} if d["calibrated"] else set())
    assert isinstance(d["calibrated"], bool)
    assert isinstance(d["question"], str) and isinstance(d["answer"], str)
    assert d["verdict"] in {"consistent", "inconsistent", "contradiction", "abstain"}
    assert isinstance(d["agreement"], float) and 0.0 <= d["agreement"] <= 1.0
    assert isinstance(d["semantic_entropy"], float) and 0.0 <= d["semantic_entropy"] <= 1.0
    for s in d["samples"]:
        assert set(s) == {"text", "seed", "greedy", "cluster", "logprob_mean", "logprob_min", "tokens",
                          "truncated"}
        assert isinstance(s["text"], str) and isinstance(s["greedy"], bool) and isinstance(s["cluster"], int)
        assert s["seed"] is None or (isinstance(s["seed"], int) and not isinstance(s["seed"], bool))
    for c in d["clusters"]:
        assert {"id", "size", "representative", "members"} <= set(c)
        assert isinstance(c["id"], int) and isinstance(c["size"], int) and isinstance(c["representative"], str)
        assert all(isinstance(m, int) for m in c["members"]) and len(c["members"]) == c["size"]
    for c in d["contradictions"]:
        assert set(c) == {"a", "b", "kind", "score", "explanation"}
        assert isinstance(c["a"], int) and isinstance(c["b"], int) and 0 <= c["a"] < len(d["samples"])
        assert isinstance(c["kind"], str) and isinstance(c["score"], float) and isinstance(c["explanation"], str)
    for p in d["sources"]:
        assert set(p) == {"doc_id", "chunk_id", "text", "score"}
        assert isinstance(p["doc_id"], str) and isinstance(p["text"], str) and isinstance(p["score"], float)
    fp = d["fingerprint"]
    assert {"model", "adapter", "embedder", "config_hash", "versions", "device", "seeds"} <= set(fp)
    assert isinstance(fp["model"], str) and isinstance(fp["embedder"], str) and isinstance(fp["device"], str)
    assert fp["adapter"] is None or isinstance(fp["adapter"], str)
    assert isinstance(fp["config_hash"], str) and all(isinstance(s, int) for s in fp["seeds"])
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fp["versions"].items())
    assert all(isinstance(k, str) and isinstance(v, float) for k, v in d["timings"].items())
    json.dumps(d)  # JSON-serialisable as is


def test_ask_returns_a_report_with_the_contract_keys(fake_guard: RagGuard, fake_generator) -> None:
    fake_generator.enqueue(FIVE)
    report = fake_guard.ask(QUESTION)
    assert isinstance(report, Report)
    d = report.to_dict()
    check_contract(d)
    assert d["question"] == QUESTION
    assert d["answer"] == YES
    assert d["verdict"] == "consistent" and d["agreement"] == 0.8
    assert [s["text"] for s in d["samples"]] == FIVE
    assert sorted(m for c in d["clusters"] for m in c["members"]) == [0, 1, 2, 3, 4]
    assert d["sources"][0]["doc_id"] == "docs/payroll-bank-card.md"
    assert len(d["sources"]) == 3  # retrieval.top_k
    fp = d["fingerprint"]
    assert fp["model"] == "fake-generator" and fp["embedder"] == "fake-embedder" and fp["device"] == "cpu"
    assert fp["config_hash"] == Config().hash()
    assert fp["index"].startswith("sha256:")
    assert {"generate", "check", "retrieve", "total"} <= set(d["timings"])
    assert fake_generator.pending == 0


def test_samples_are_one_greedy_then_derived_seeds(fake_guard: RagGuard, fake_generator) -> None:
    fake_generator.enqueue(FIVE)
    report = fake_guard.ask(QUESTION)
    expected = sample_seeds(0, QUESTION, 5)
    assert expected[0] is None and all(isinstance(s, int) for s in expected[1:])
    assert fake_generator.calls[0]["seeds"] == expected
    assert report.samples[0].greedy and report.samples[0].seed is None
    assert [s.seed for s in report.samples[1:]] == expected[1:]
    assert not any(s.greedy for s in report.samples[1:])
    assert report.fingerprint.seeds == expected[1:]


def test_generator_gets_the_retrieved_context_in_the_user_message(fake_guard: RagGuard, fake_generator) -> None:
    fake_generator.enqueue(FIVE)
    report = fake_guard.ask(QUESTION)
    messages = fake_generator.calls[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == Config().prompt.system
    user = messages[1]["content"]
    assert user.startswith("Context:\n[1] (docs/payroll-bank-card.md)\n")
    assert "must request an employment certificate from HR" in user
    assert user.rstrip().endswith(f"Question: {QUESTION}")
    for source in report.sources:
        assert source.doc_id in user
    assert "employment certificate" not in messages[0]["content"]


def test_same_question_twice_gives_identical_dicts_but_timings(fake_guard: RagGuard, fake_generator) -> None:
    fake_generator.enqueue(FIVE)
    fake_generator.enqueue(FIVE)
    first = fake_guard.ask(QUESTION).to_dict()
    second = fake_guard.ask(QUESTION).to_dict()
    first.pop("timings")
    second.pop("timings")
    assert first == second
    assert fake_generator.calls[0] == fake_generator.calls[1]


def test_samples_override_draws_three_and_changes_the_config_hash(fake_guard: RagGuard, fake_generator) -> None:
    fake_generator.enqueue(FIVE)
    fake_generator.enqueue(FIVE[:3])
    five = fake_guard.ask(QUESTION)
    three = fake_guard.ask(QUESTION, samples=3)
    assert len(three.samples) == 3 and len(fake_generator.calls[1]["seeds"]) == 3
    assert fake_generator.calls[1]["seeds"] == sample_seeds(0, QUESTION, 3) == fake_generator.calls[0]["seeds"][:3]
    assert three.fingerprint.config_hash != five.fingerprint.config_hash
    assert three.fingerprint.config_hash == Config().replace("sampling", samples=3).hash()
    assert fake_guard.config.sampling.samples == 5  # the override does not stick


def test_seed_override_changes_seeds_not_greedy(fake_guard: RagGuard, fake_generator) -> None:
    fake_generator.enqueue(FIVE)
    report = fake_guard.ask(QUESTION, seed=7)
    assert fake_generator.calls[0]["seeds"] == sample_seeds(7, QUESTION, 5)
    assert fake_generator.calls[0]["seeds"][0] is None
    assert report.fingerprint.seeds != sample_seeds(0, QUESTION, 5)[1:]


def test_bad_override_is_a_usage_error(fake_guard: RagGuard, fake_generator) -> None:
    with pytest.raises(UsageError, match="sampling.samples"):
        fake_guard.ask(QUESTION, samples=0)
    assert fake_generator.calls == []


def test_derive_seed_depends_on_base_question_and_index_only() -> None:
    seed = derive_seed(0, QUESTION, 1)
    assert seed == derive_seed(0, QUESTION, 1)
    assert 0 <= seed < 2**31
    assert derive_seed(1, QUESTION, 1) != seed
    assert derive_seed(0, QUESTION + " Really?", 1) != seed
    assert derive_seed(0, QUESTION, 2) != seed
    assert derive_seed(0, f"  {QUESTION}\n", 1) == seed  # surrounding whitespace is not part of the question
    # Not on what else was derived before (no hidden counter or global state).
    for i in range(10):
        derive_seed(i, "another question", i)
    assert derive_seed(0, QUESTION, 1) == seed
    seeds = sample_seeds(0, QUESTION, 6)
    assert seeds[0] is None and seeds[1:] == [derive_seed(0, QUESTION, i) for i in range(1, 6)]
    assert len(set(seeds[1:])) == 5
    assert sample_seeds(0, QUESTION, 3) == seeds[:3]  # fewer samples are a prefix of more


def test_derive_seed_is_the_same_in_another_process() -> None:
    code = f"from ragguard.pipeline import derive_seed; print(derive_seed(3, {QUESTION!r}, 2))"
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": str(h), "PATH": ""}).stdout.strip()
        for h in (1, 2)
    }
    assert outs == {str(derive_seed(3, QUESTION, 2))}


def test_sample_seeds_do_not_depend_on_other_questions(fake_guard: RagGuard, fake_generator) -> None:
    fake_generator.enqueue(["You get 25 days."] * 5)
    fake_generator.enqueue(FIVE)
    fake_guard.ask("How many days of annual leave do I get?")
    fake_guard.ask(QUESTION)
    assert fake_generator.calls[1]["seeds"] == sample_seeds(0, QUESTION, 5)
    assert fake_generator.calls[0]["seeds"] != fake_generator.calls[1]["seeds"]


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_is_a_usage_error(fake_guard: RagGuard, fake_generator, question: str) -> None:
    with pytest.raises(UsageError, match="question is empty"):
        fake_guard.ask(question)
    assert fake_generator.calls == []


def test_fake_generator_refuses_unqueued_calls(fake_guard: RagGuard) -> None:
    with pytest.raises(AssertionError, match="no replies are queued"):
        fake_guard.ask(QUESTION)


def test_without_retriever_the_prompt_has_no_context(fake_generator, fake_embedder) -> None:
    guard = RagGuard(Config(), fake_generator, fake_embedder)
    fake_generator.enqueue(FIVE)
    report = guard.ask(QUESTION)
    assert report.sources == []
    assert fake_generator.calls[0]["messages"][1]["content"] == f"Question: {QUESTION}"
    assert report.fingerprint.index is None
    assert "retrieve" not in report.timings


def test_model_cache_is_a_per_test_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    import os
    from pathlib import Path

    from ragguard.generation.models import cache_dir

    cache = cache_dir()
    assert cache == Path(os.environ["RAGGUARD_CACHE"])
    assert cache != Path.home() / ".cache" / "ragguard"
    assert cache.is_relative_to(tmp_path_factory.getbasetemp())


def test_context_budget_counts_chinese_characters_by_their_token_cost() -> None:
    from ragguard.core.types import Passage
    from ragguard.generation.prompts import context_cost, format_context

    assert context_cost("abc") == 3 and context_cost("在职证明") == 12
    zh = Passage("zh.md", "zh.md#0", "在职证明" * 200, 0.9)
    en = Passage("en.md", "en.md#0", "word " * 200, 0.8)
    text = format_context([zh, en], 600)
    assert context_cost(text) <= 600 + 2
    assert text.endswith("…") and "en.md" not in text
    assert format_context([en], 10_000).count("word") == 200


def test_a_replaced_config_samples_with_its_own_settings() -> None:
    """``guard.config = cfg.replace("sampling", temperature=...)`` must change what is drawn, not only the hash."""
    from fakes import WordEmbedder

    from ragguard.core.protocols import Completion

    class SettingsGenerator:
        name, device, adapter, model_sha256 = "settings", "cpu", None, None

        def __init__(self, sampling) -> None:  # type: ignore[no-untyped-def]
            self.sampling = sampling
            self.loads = 0

        def load(self) -> None:
            self.loads += 1

        def generate(self, messages, seeds):  # type: ignore[no-untyped-def]
            return [Completion(text=f"Yes, at temperature {self.sampling.temperature}.", seed=s) for s in seeds]

    cfg = Config().replace("retrieval", top_k=0)
    gen = SettingsGenerator(cfg.sampling)
    guard = RagGuard(cfg, gen, WordEmbedder())
    assert guard.ask(QUESTION).answer == "Yes, at temperature 0.5." and gen.loads == 0  # same settings: no copy
    guard.config = cfg.replace("sampling", temperature=0.9)
    hot = guard.ask(QUESTION)
    assert hot.answer == "Yes, at temperature 0.9."
    assert gen.sampling.temperature == 0.5 and gen.loads == 1  # the shared generator is untouched, loaded once
    assert hot.fingerprint.config_hash == guard.config.hash()
    guard.config = cfg.replace("sampling", samples=3)  # only the count differs: the generator itself serves
    assert guard.ask(QUESTION).answer == "Yes, at temperature 0.5." and len(guard.ask(QUESTION).samples) == 3


def test_passes_hold_more_questions_when_rows_share_the_prompt_cache() -> None:
    """max_batch_tokens bounds key/value positions: a shared prompt cache counts once per prompt."""
    from ragguard.pipeline import _groups, _Job

    cfg = Config().replace("generator", max_batch_tokens=10_000).replace("sampling", max_new_tokens=64)
    prompt = {"role": "user", "content": "word " * 360}  # estimated at 1800 // 3 + 16 = 616 tokens
    pending = [(_Job(question=f"q{i}", messages=[prompt]), [None, 1, 2, 3, 4, 5]) for i in range(8)]
    per_row = _groups(pending, cfg)  # 6 x (616 + 64) each: two questions per pass
    shared = _groups(pending, cfg, lambda prompt_tokens, rows, new: prompt_tokens + rows * new)  # 616 + 384
    assert [len(g) for g in per_row] == [2, 2, 2, 2]
    assert [len(g) for g in shared] == [8]
    assert [job.question for g in per_row for job, _ in g] == [f"q{i}" for i in range(8)]


def test_with_settings_shares_the_loaded_models_and_index(fake_guard: RagGuard, fake_generator) -> None:
    """A view asks with its own sampling and retrieval settings over the same generator, embedder and index."""
    cfg = fake_guard.config.replace("sampling", samples=2, temperature=0.9).replace("retrieval", language="zh")
    view = fake_guard.with_settings(cfg)
    assert view.generator is fake_guard.generator and view.embedder is fake_guard.embedder
    assert view.retriever is not fake_guard.retriever and view.retriever.index is fake_guard.retriever.index
    fake_generator.enqueue([YES, YES])
    report = view.ask("年假有多少天？")
    assert len(report.samples) == 2 and report.fingerprint.config_hash == cfg.hash()
    assert report.sources and {p.doc_id for p in report.sources} == {"docs/zh-leave-annual.md"}
    fake_generator.enqueue(FIVE)
    assert len({p.doc_id for p in fake_guard.ask(QUESTION).sources}) > 1  # the base guard keeps its own settings
    assert fake_guard.with_settings(fake_guard.config).retriever is fake_guard.retriever  # nothing to change


def test_with_settings_refuses_other_models(fake_guard: RagGuard) -> None:
    with pytest.raises(UsageError, match=r"generator\.model='other/model'.*RagGuard\.from_config"):
        fake_guard.with_settings(fake_guard.config.replace("generator", model="other/model"))
    with pytest.raises(UsageError, match=r"embedder\.model="):
        fake_guard.with_settings(fake_guard.config.replace("embedder", model="other/embedder"))


def test_ask_conversation_sends_the_messages_as_they_are(fake_guard: RagGuard, fake_generator) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"  {QUESTION} "}]
    fake_generator.enqueue([YES, YES, YES])
    report = fake_guard.ask_conversation(messages, samples=3)
    assert fake_generator.calls[-1]["messages"] == messages  # no retrieved context, no ragguard prompt
    assert fake_generator.calls[-1]["seeds"] == sample_seeds(0, QUESTION, 3)
    assert report.question == QUESTION and report.sources == [] and report.answer == YES
    assert report.fingerprint.seeds == sample_seeds(0, QUESTION, 3)[1:]
    assert "retrieve" not in report.timings and {"generate", "check", "total"} <= set(report.timings)
    with pytest.raises(UsageError, match="question is empty"):
        fake_guard.ask_conversation([{"role": "system", "content": "no user message"}])


def test_one_sample_says_it_measured_no_agreement(fake_guard: RagGuard, fake_generator) -> None:
    from ragguard.endpoints import SINGLE_SAMPLE_NOTE, TEMPERATURE_ZERO_NOTE, add_notes

    fake_generator.enqueue([YES])
    one = fake_guard.ask(QUESTION, samples=1)
    assert len(one.samples) == 1 and one.verdict == "consistent"
    assert one.confidence == 0.0  # agreement 1.0 of one answer is no evidence
    assert one.warnings.count(SINGLE_SAMPLE_NOTE) == 1
    # serve/LangChain at temperature 0 say the same with the reason: one note, not two.
    add_notes(one, [TEMPERATURE_ZERO_NOTE])
    assert one.warnings == [TEMPERATURE_ZERO_NOTE]
    fake_generator.enqueue(FIVE[:3])
    three = fake_guard.ask(QUESTION, samples=3)
    assert three.confidence > 0 and SINGLE_SAMPLE_NOTE not in three.warnings


def test_check_of_one_sample_says_it_measured_no_agreement(fake_embedder) -> None:
    from ragguard.apps.check import CHECK_SINGLE_SAMPLE_NOTE, check
    from ragguard.endpoints import SINGLE_SAMPLE_NOTE

    report = check(QUESTION, [YES], embedder=fake_embedder)
    # check's own note: ask's advises --samples, a flag check does not have
    assert report.confidence == 0.0 and CHECK_SINGLE_SAMPLE_NOTE in report.warnings
    assert SINGLE_SAMPLE_NOTE not in report.warnings


def test_loading_the_models_is_timed_as_its_own_stage(tiny_index, fake_generator) -> None:  # type: ignore[no-untyped-def]
    import time

    from conftest import FakeEmbedder

    from ragguard.retrieval.index import IndexRetriever, KnowledgeIndex

    class SlowToLoad(FakeEmbedder):
        loaded = False

        def load(self) -> None:
            if not self.loaded:
                time.sleep(0.3)
                self.loaded = True

        def embed(self, texts):  # type: ignore[no-untyped-def]
            self.load()  # lazily, as the real embedder does
            return super().embed(texts)

    embedder = SlowToLoad()
    guard = RagGuard(Config(), fake_generator, embedder, IndexRetriever(KnowledgeIndex.load(tiny_index), embedder),
                     index_path=str(tiny_index))
    fake_generator.enqueue(FIVE)
    first = guard.ask(QUESTION)
    assert first.timings["load"] >= 0.3 > first.timings["retrieve"]
    assert first.timings["total"] >= first.timings["load"]
    fake_generator.enqueue(FIVE)
    assert guard.ask(QUESTION).timings["load"] < 0.1


def test_answers_cut_at_the_length_limit_are_marked_truncated() -> None:
    from fakes import WordEmbedder

    from ragguard.core.protocols import Completion

    class CutGenerator:
        name, device, adapter, model_sha256 = "cut", "cpu", None, None

        def generate(self, messages, seeds):  # type: ignore[no-untyped-def]
            return [Completion(text="You get 25 days, based on your employment status. This", seed=s,
                               truncated=s is not None) for s in seeds]

    guard = RagGuard(Config().replace("retrieval", top_k=0), CutGenerator(), WordEmbedder())
    report = guard.ask(QUESTION, samples=3)
    assert [s["truncated"] for s in report.to_dict()["samples"]] == [False, True, True]
    assert any("2 of 3 answers were cut at sampling.max_new_tokens" in w for w in report.warnings)


def test_a_question_over_max_question_tokens_is_refused(fake_guard: RagGuard, fake_generator) -> None:
    counted: list[str] = []

    def count_tokens(text: str) -> int:  # one token per word, as a fake tokenizer
        counted.append(text)
        return len(text.split())

    fake_generator.count_tokens = count_tokens
    fake_guard.config = fake_guard.config.replace("generator", max_question_tokens=20)
    long_question = "How many leave days do I get " + "please " * 30 + "?"
    with pytest.raises(UsageError, match=r"the question is 38 tokens .* over generator.max_question_tokens 20"):
        fake_guard.ask(long_question)
    with pytest.raises(UsageError, match="max_question_tokens"):
        fake_guard.ask_conversation([{"role": "user", "content": long_question}])
    assert fake_generator.calls == []  # refused before anything ran
    fake_generator.enqueue(FIVE)
    assert fake_guard.ask(QUESTION).answer == YES  # 75 bytes: over 20 bytes, counted, 11 tokens
    assert counted[-1] == QUESTION
    counted.clear()
    fake_guard.config = fake_guard.config.replace("generator", max_question_tokens=512)
    fake_generator.enqueue(FIVE)
    fake_guard.ask(QUESTION)
    assert counted == []  # no more bytes than the limit: never counted


def test_a_string_given_to_ask_many_or_a_list_given_to_ask_is_refused_with_what_to_do(fake_guard: RagGuard,
                                                                                       fake_generator) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=r"ask_many takes a list of questions, got one string: use ask\(question\)"):
        fake_guard.ask_many("Hi")
    for wrong in (["a", "b"], None):
        with pytest.raises(UsageError, match=r"a question must be a string, got (list|NoneType): ask\(question\)"):
            fake_guard.ask(wrong)  # type: ignore[arg-type]
    assert fake_generator.calls == []


def test_a_question_of_punctuation_only_is_a_usage_error(fake_guard: RagGuard, fake_generator) -> None:
    with pytest.raises(UsageError, match="has no word in it"):
        fake_guard.ask("？！。。。")
    assert fake_generator.calls == []


def test_library_versions_are_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    from ragguard import provenance

    clear = getattr(provenance, "_read_versions", None)
    if clear is not None:
        clear.cache_clear()  # read afresh under the counter below
    reads: list[str] = []
    real = metadata.version

    def counted(name: str) -> str:
        reads.append(name)
        return real(name)

    monkeypatch.setattr(provenance.metadata, "version", counted)
    first = provenance.library_versions()
    first["torch"] = "edited by a caller"
    second = provenance.library_versions()
    assert reads and len(reads) == len(set(reads))  # each package once, not once per record
    assert second["torch"] != "edited by a caller" and second["ragguard"] == provenance.__version__


def test_the_totals_of_a_batch_add_up_to_its_wall_time_instead_of_each_counting_all_of_it(fake_guard: RagGuard) -> None:
    import time

    generate = fake_guard.generator.generate

    def slow(messages, seeds):  # type: ignore[no-untyped-def]
        time.sleep(0.1)  # one pass per question: the batch takes at least 0.4 s
        return generate(messages, seeds)

    fake_guard.generator.generate = slow  # type: ignore[method-assign]
    fake_guard.generator.generate_batch = None  # type: ignore[attr-defined]
    for _ in range(6):
        fake_guard.generator.enqueue(FIVE)
    fake_guard.ask("warm up")  # models loaded, so no question carries the load
    t = time.perf_counter()
    reports = fake_guard.ask_many([f"How many leave days do I get in year {i}?" for i in range(4)])
    wall = time.perf_counter() - t
    totals = [r.timings["total"] for r in reports]
    # each question's own stages plus a share of what no stage timed: not the whole batch's wall time each
    assert wall * 0.9 <= sum(totals) <= wall
    assert all(r.timings["total"] >= r.timings["generate"] + r.timings["check"] for r in reports)
    assert all(total < 0.75 * wall for total in totals)
    alone = fake_guard.ask("How many leave days?")
    assert alone.timings["total"] >= alone.timings["generate"] + alone.timings["check"]
