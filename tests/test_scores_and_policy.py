"""Grounding, confidence, the on_flagged policy, adaptive sampling and degenerate-sampling warnings."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import WordEmbedder

from ragguard.config import Config
from ragguard.core.consistency import ConsistencyChecker, ConsistencySettings, confidence_score, support_scores
from ragguard.core.protocols import Completion
from ragguard.core.types import Passage, Sample
from ragguard.pipeline import RagGuard, sample_seeds

Q = "Do employees without the payroll bank's debit card need an employment certificate?"


class ScriptedGenerator:
    """Answers by sample seed: the text for a seed is fixed, whatever else is in the batch."""

    name = "scripted"
    device = "cpu"
    adapter = None
    model_sha256 = None

    def __init__(self, by_index: list[str]) -> None:
        self.by_index = by_index
        self.calls: list[list[int | None]] = []

    def generate(self, messages, seeds):  # type: ignore[no-untyped-def]
        self.calls.append(list(seeds))
        order = sample_seeds(0, Q, len(self.by_index))
        return [Completion(text=self.by_index[order.index(s)], seed=s) for s in seeds]


class StaticRetriever:
    def search(self, query: str, k: int) -> list[Passage]:
        text = "Employees without an Eastbridge Bank debit card must request an employment certificate from HR."
        return [Passage("handbook/payroll.md", "handbook/payroll.md#0", text, 0.9)][:k]


def guard(answers: list[str], **sampling) -> tuple[RagGuard, ScriptedGenerator]:
    cfg = Config().replace("sampling", samples=len(answers), **sampling)
    gen = ScriptedGenerator(answers)
    return RagGuard(cfg, gen, WordEmbedder(), StaticRetriever()), gen


def test_support_scores_and_confidence_formula() -> None:
    answers = np.array([[1.0, 0.0], [0.0, 1.0]])
    passages = np.array([[1.0, 0.0], [0.6, 0.8]])
    assert support_scores(answers, passages) == [1.0, 0.8]
    assert support_scores(answers, np.zeros((0, 2))) == []
    assert confidence_score(0.6, 0.2, True) == 0.4
    assert confidence_score(0.6, 0.2, False) == 0.2
    assert confidence_score(0.6, 0.0, None) == 0.6
    assert confidence_score(0.2, 0.4, True) == 0.0


class CountingEmbedder(WordEmbedder):
    """Word vectors whose batch changes every vector a little (as padding does), counting what it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def embed(self, texts):
        self.seen.extend(texts)
        vectors = super().embed(texts)
        vectors[:, 0] += 0.05 * len(texts)  # a direction that grows with the batch, like padding's drift
        return vectors


def test_passages_are_embedded_alone_once_per_embedder() -> None:
    from ragguard.core import passages as embedders

    embedder = CountingEmbedder()
    passages = ["the certificate is required", "debit cards are issued by the payroll bank"]
    first = embedders.embed_alone(embedder, passages)
    assert embedder.seen == passages  # one call per passage
    again = embedders.embed_alone(embedder, [passages[1], "a third passage", passages[0]])
    assert embedder.seen == [*passages, "a third passage"]  # remembered: only the new one is embedded
    assert np.array_equal(again[[2, 0]], first)
    alone = embedder.embed([passages[0]])[0]
    assert np.array_equal(first[0], alone)  # not scaled by a batch: the vector of the text on its own
    other = CountingEmbedder()
    embedders.embed_alone(other, passages[:1])
    assert other.seen == passages[:1]  # memory is per embedder
    assert embedders.embed_alone(embedder, []).shape[0] == 0


def test_passage_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragguard.core import passages as embedders

    monkeypatch.setattr(embedders, "_ALONE_SIZE", 2)
    embedder = CountingEmbedder()
    embedders.embed_alone(embedder, ["a", "b", "c"])
    embedders.embed_alone(embedder, ["c", "a"])
    assert embedder.seen == ["a", "b", "c", "a"]  # "a" was the oldest, forgotten when "c" came


def test_grounding_support_does_not_depend_on_what_is_embedded_beside_a_passage() -> None:
    checker = ConsistencyChecker(CountingEmbedder())
    answers = [Sample(text="Yes, they need an employment certificate.", seed=None, greedy=True),
               Sample(text="Yes, an employment certificate is needed.", seed=1, greedy=False)]
    best = "employees need an employment certificate"
    one = checker.check(Q, answers, [best])
    more = checker.check(Q, answers, [best, "unrelated text about parking", "and the canteen menu"])
    assert one.clusters[0].support == more.clusters[0].support is not None


def test_grounded_answer_and_confidence_discounted_by_explicit_contradiction() -> None:
    g, _ = guard([
        "Yes, employees without the card must request an employment certificate from HR.",
        "Yes, they must request an employment certificate from HR.",
        "Yes, request an employment certificate from HR.",
        "No, they do not need an employment certificate.",
        "Bananas are yellow.",
    ])
    report = g.ask(Q)
    assert report.verdict == "contradiction"
    assert report.agreement == 0.6
    assert report.grounded is True
    assert report.confidence == pytest.approx(0.4)  # 0.6 agreement - 0.2 share contradicting the winner
    assert all(c.support is not None for c in report.clusters)
    assert any("contradiction" in w for w in report.warnings)


def test_ungrounded_answer_is_marked() -> None:
    checker = ConsistencyChecker(WordEmbedder(), ConsistencySettings(grounding_threshold=0.45))
    samples = [Sample("Bananas are yellow and sweet.", None, True)] * 5
    result = checker.check("What colour are bananas?", samples, ["Employees must request a certificate from HR."])
    assert result.verdict == "consistent"
    assert result.grounded is False
    assert result.confidence == 0.5


def test_abstain_policy_returns_no_answer_and_lists_the_conflict() -> None:
    checker = ConsistencyChecker(WordEmbedder(), ConsistencySettings(on_flagged="abstain"))
    samples = [Sample("Yes, ask HR.", None, True), Sample("No, you do not need it.", 1, False),
               Sample("Yes, ask HR for it.", 2, False)]
    result = checker.check(Q, samples)
    assert result.answer == "" and result.verdict == "abstain" and result.confidence == 0.0
    assert "contradiction" in result.warnings[0] and "Yes, ask HR" in result.warnings[0] and "No, you do not" in result.warnings[0]


def test_adaptive_stops_after_an_agreeing_first_round() -> None:
    agreeing = ["Yes, request the employment certificate from HR."] * 5
    g, gen = guard(agreeing, adaptive=True)
    report = g.ask(Q)
    assert len(report.samples) == 3 and len(gen.calls) == 1
    assert report.fingerprint is not None and len(report.fingerprint.seeds) == 2
    assert report.adaptive == {"drawn": 3, "of": 5, "stopped": "agreed"}
    assert report.to_dict()["adaptive"] == report.adaptive


def test_adaptive_stops_when_the_first_round_already_contradicts() -> None:
    answers = ["Yes, ask HR.", "No, you do not need it.", "Yes, ask HR.", "Yes, ask HR.", "Yes, ask HR."]
    adaptive, gen = guard(answers, adaptive=True)
    fixed, _ = guard(answers, adaptive=False)
    a, f = adaptive.ask(Q), fixed.ask(Q)
    assert len(gen.calls) == 1 and len(a.samples) == 3
    assert a.adaptive == {"drawn": 3, "of": 5, "stopped": "contradiction"}
    # The contradicting pair and the verdict are those of the fixed-N run.
    assert a.verdict == f.verdict == "contradiction"
    assert {(c.a, c.b) for c in a.contradictions} <= {(c.a, c.b) for c in f.contradictions}


def test_adaptive_draws_the_rest_when_the_first_round_disagrees_and_matches_fixed_n() -> None:
    answers = ["Yes, ask HR.", "The canteen opens at noon.", "Yes, ask HR.", "Yes, ask HR.", "Yes, ask HR."]
    adaptive, gen = guard(answers, adaptive=True)
    fixed, _ = guard(answers, adaptive=False)
    a, f = adaptive.ask(Q), fixed.ask(Q)
    assert len(gen.calls) == 2 and len(a.samples) == 5
    assert a.adaptive == {"drawn": 5, "of": 5, "stopped": "all drawn"} and fixed.ask(Q).adaptive is None
    strip = lambda d: {k: v for k, v in d.items() if k not in ("timings", "fingerprint", "adaptive")}  # noqa: E731
    assert strip(a.to_dict()) == strip(f.to_dict())


def test_adaptive_rounds_and_a_middle_stop() -> None:
    from ragguard.adaptive import adaptive_rounds

    assert adaptive_rounds(3) == [3] and adaptive_rounds(5) == [3, 5] and adaptive_rounds(6) == [3, 4, 6]
    assert adaptive_rounds(8) == [3, 5, 8] and adaptive_rounds(16) == [3, 9, 16] and adaptive_rounds(4) == [3, 4]
    # The first round disagrees (an off-topic answer); greedy + 4 agree after the middle round
    # is not enough, because the off-topic answer stays: all 8 drawn, in three passes.
    answers = ["Yes, ask HR.", "The canteen opens at noon.", *["Yes, ask HR."] * 6]
    g, gen = guard(answers, adaptive=True)
    report = g.ask(Q)
    assert [len(c) for c in gen.calls] == [3, 2, 3] and len(report.samples) == 8
    # A contradiction that first appears in the middle round stops there.
    answers = ["Yes, ask HR.", "The canteen opens at noon.", "Yes, ask HR.", "No, you do not need it.",
               *["Yes, ask HR."] * 4]
    g, gen = guard(answers, adaptive=True)
    report = g.ask(Q)
    assert [len(c) for c in gen.calls] == [3, 2] and report.adaptive == {"drawn": 5, "of": 8, "stopped": "contradiction"}


def test_adaptive_stops_on_agreement_only_once_a_majority_of_the_answers_is_drawn() -> None:
    # 3 of 8 agreeing is not enough (the fourth answer here goes off topic); 5 of 8 is.
    answers = ["Yes, ask HR.", "Yes, ask HR.", "Yes, ask HR.", "The canteen opens at noon.", *["Yes, ask HR."] * 4]
    g, gen = guard(answers, adaptive=True)
    report = g.ask(Q)
    assert [len(c) for c in gen.calls] == [3, 2, 3] and report.adaptive["stopped"] == "all drawn"
    g, gen = guard(["Yes, ask HR."] * 8, adaptive=True)
    report = g.ask(Q)
    assert [len(c) for c in gen.calls] == [3, 2] and report.adaptive == {"drawn": 5, "of": 8, "stopped": "agreed"}


def test_settled_waits_for_a_majority_to_agree_but_not_to_contradict() -> None:
    from ragguard.adaptive import settled as _settled
    from ragguard.core.types import Cluster, Contradiction, Report

    def report(n: int, contradicting: bool = False):  # type: ignore[no-untyped-def]
        samples = [Sample(text="Yes, ask HR.", seed=i or None, greedy=i == 0) for i in range(n)]
        found = [Contradiction(0, 1, "polarity", 1.0, "opposite answers")] if contradicting else []
        return Report(Q, "Yes, ask HR.", "consistent", 1.0, 0.0, samples,
                      [Cluster(id=0, size=n, representative="Yes, ask HR.", members=list(range(n)))], found)

    assert _settled(report(3), 5) == "agreed" and _settled(report(3), 6) is None and _settled(report(4), 6) == "agreed"
    assert _settled(report(4), 8) is None and _settled(report(5), 8) == "agreed"
    assert _settled(report(3, contradicting=True), 8) == "contradiction"


def test_degenerate_sampling_is_reported() -> None:
    g, _ = guard(["Yes, ask HR."] * 4)
    report = g.ask(Q)
    assert any(w.startswith("degenerate sampling") for w in report.warnings)
    g2, _ = guard(["Yes, ask HR.", "Yes, ask HR please.", "Yes, ask HR.", "Yes, ask HR."])
    assert not any(w.startswith("degenerate") for w in g2.ask(Q).warnings)


class LowRetriever:
    def search(self, query: str, k: int) -> list[Passage]:
        return [Passage("handbook/leave.md", "handbook/leave.md#0", "Annual leave is 25 days.", 0.11)]


def test_off_topic_question_abstains_without_generating() -> None:
    gen = ScriptedGenerator(["Yes."] * 5)
    g = RagGuard(Config(), gen, WordEmbedder(), LowRetriever())
    report = g.ask(Q)
    assert gen.calls == []
    assert report.verdict == "abstain" and report.answer == "" and report.samples == []
    assert "nothing on this" in report.warnings[0] and "0.11" in report.warnings[0]
    assert report.sources[0].score == 0.11  # what was found is still shown
    off = RagGuard(Config().replace("retrieval", min_score=None), ScriptedGenerator(["Yes."] * 5), WordEmbedder(),
                   LowRetriever())
    assert off.ask(Q).verdict != "abstain"


def test_adaptive_that_draws_everything_says_so_even_when_the_last_round_contradicts() -> None:
    answers = ["Yes, ask HR.", "The canteen opens at noon.", "Yes, ask HR.", "Yes, ask HR.", "No, you do not need it."]
    g, _ = guard(answers, adaptive=True)
    report = g.ask(Q)
    assert report.verdict == "contradiction" and report.adaptive == {"drawn": 5, "of": 5, "stopped": "all drawn"}


def test_a_bare_ru_that_means_how_is_not_a_condition() -> None:
    from ragguard.core.detectors.text import main_clause

    assert main_clause("如有疑问，请联系人事部。") == "请联系人事部。"
    assert main_clause("如何申请：向人事部提交表格。") == "如何申请：向人事部提交表格。"
