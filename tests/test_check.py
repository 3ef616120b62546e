"""`ragguard check` and the record reader shared with the audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import WordEmbedder
from typer.testing import CliRunner

from ragguard.apps.check import check
from ragguard.apps.cli import app
from ragguard.apps.records import BadRecord, Record, read_records
from ragguard.errors import UsageError

Q = "Do employees without the payroll bank's debit card need an employment certificate?"


def test_check_flags_the_seed_contradiction_and_votes_the_majority() -> None:
    samples = [
        "Yes, they must request one from HR with form HR-07.",
        "No, they do not need an employment certificate.",
        "Yes, an employment certificate from HR is required.",
        "Yes. Request it via form HR-07.",
    ]
    report = check(Q, samples, "Employees without the card must ask HR for a certificate.", embedder=WordEmbedder())
    assert report.verdict == "contradiction"
    assert report.agreement == 0.75
    assert report.answer.startswith("Yes")
    flagged = [c for c in report.contradictions if c.kind == "polarity"]
    assert {tuple(sorted((c.a, c.b))) for c in flagged} == {(0, 1), (1, 2), (1, 3)}
    assert all(not s.greedy and s.seed is None for s in report.samples)
    assert report.sources[0].text.startswith("Employees without the card")


def test_check_agreeing_answers_are_consistent() -> None:
    samples = ["Probation lasts three months."] * 4 + ["Probation lasts 3 months."]
    report = check("How long is probation?", samples, embedder=WordEmbedder())
    assert report.verdict == "consistent"
    assert [c for c in report.contradictions if c.kind != "divergent"] == []


@pytest.mark.parametrize(("question", "samples"), [("", ["a"]), ("q?", []), ("q?", "not a list"), ("q?", [1, 2])])
def test_check_rejects_bad_input(question: str, samples: object) -> None:
    with pytest.raises(UsageError):
        check(question, samples, embedder=WordEmbedder())  # type: ignore[arg-type]


def test_read_records_reports_bad_lines_and_keeps_order(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "a"}\nnot json\n\n[1, 2]\n{"question": "b"}\n', encoding="utf-8")
    records = list(read_records(path))
    assert [type(r) for r in records] == [Record, BadRecord, BadRecord, Record]
    assert [r.line for r in records] == [1, 2, 4, 5]
    assert "not valid JSON" in records[1].error  # type: ignore[union-attr]


def test_read_records_json_and_csv(tmp_path: Path) -> None:
    (tmp_path / "q.json").write_text(json.dumps([{"question": "a"}, 3]), encoding="utf-8")
    got = list(read_records(tmp_path / "q.json"))
    assert isinstance(got[0], Record) and isinstance(got[1], BadRecord)
    (tmp_path / "q.csv").write_text("id,question\n1,How many days?\n2,什么时候发工资？,extra\n", encoding="utf-8")
    rows = list(read_records(tmp_path / "q.csv"))
    assert rows[0] == Record(2, {"id": "1", "question": "How many days?"})
    assert isinstance(rows[1], BadRecord) and rows[1].line == 3


@pytest.mark.parametrize("name", ["missing.jsonl", "q.txt"])
def test_read_records_refuses_unusable_files(tmp_path: Path, name: str) -> None:
    if name.endswith(".txt"):
        (tmp_path / name).write_text("x")
    with pytest.raises(UsageError):
        list(read_records(tmp_path / name))


def test_cli_check_json_keeps_input_order_and_reports_bad_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.generation.embedders

    monkeypatch.setattr(ragguard.generation.embedders, "SentenceTransformerEmbedder", lambda *a, **k: WordEmbedder())
    path = tmp_path / "s.jsonl"
    rows = [
        {"question": Q, "samples": ["Yes, ask HR.", "No, you do not need it."]},
        "broken",
        {"question": "How long is probation?", "samples": ["Three months.", "Three months."]},
    ]
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r.get("verdict") for r in data["results"]] == ["contradiction", None, "consistent"]
    assert data["results"][1]["line"] == 2 and "error" in data["results"][1]
    assert "s.jsonl:2: skipped" in result.stderr


def test_cli_check_exits_2_when_every_record_is_bad(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.generation.embedders

    monkeypatch.setattr(ragguard.generation.embedders, "SentenceTransformerEmbedder", lambda *a, **k: WordEmbedder())
    path = tmp_path / "s.jsonl"
    path.write_text('{"samples": ["x"]}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 2
    assert "no 'question' field" in result.stderr


def test_check_without_an_embedder_reuses_one_per_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.apps.check
    import ragguard.generation.embedders

    made: list[str] = []

    def factory(model: str, device: str, batch_size: int) -> WordEmbedder:
        made.append(model)
        return WordEmbedder()

    monkeypatch.setattr(ragguard.generation.embedders, "SentenceTransformerEmbedder", factory)
    ragguard.apps.check.default_embedder.cache_clear()
    for _ in range(3):
        check("How long is probation?", ["Three months.", "Three months."])
    assert made == ["embedded"]
    ragguard.apps.check.default_embedder.cache_clear()


# ------------------------------------------------------------------ samples with log-probabilities
LEAVE = "How many days of annual leave do I get?"


def test_check_takes_samples_with_logprob_lists_summaries_or_none() -> None:
    samples = [
        {"text": "Twenty days a year.", "logprobs": [-0.1, -0.2, -0.6]},
        {"text": "Twenty days a year.", "logprob_mean": -0.25, "logprob_min": -0.5, "tokens": 4},
        "Ten days, prorated in the first year.",
    ]
    report = check(LEAVE, samples, embedder=WordEmbedder())
    got = [s.to_dict() for s in report.samples]
    assert [(s["text"], s["logprob_mean"], s["logprob_min"], s["tokens"]) for s in got] == [
        ("Twenty days a year.", -0.3, -0.6, 3),
        ("Twenty days a year.", -0.25, -0.5, 4),
        ("Ten days, prorated in the first year.", None, None, None),
    ]
    assert report.to_dict()["semantic_entropy_weighted"] is None  # one sample has no log-probabilities
    samples[2] = {"text": samples[2], "logprobs": [-2.0, -3.0]}
    weighted = check(LEAVE, samples, embedder=WordEmbedder())
    assert weighted.verdict == report.verdict and weighted.semantic_entropy == report.semantic_entropy
    assert 0.0 < weighted.semantic_entropy_weighted < weighted.semantic_entropy  # the odd answer is improbable
    plain = check(LEAVE, [s if isinstance(s, str) else s["text"] for s in samples], embedder=WordEmbedder())
    assert plain.semantic_entropy_weighted is None and all(s.tokens is None for s in plain.samples)


@pytest.mark.parametrize(("sample", "message"), [
    ({"answer": "x"}, "unknown key"),
    ({"logprobs": [-1.0]}, "no 'text'"),
    ({"text": "x", "logprobs": [0.7, 0.2]}, "not probabilities"),
    ({"text": "x", "logprobs": [-1.0, None]}, r"samples\[0\]\.logprobs\[1\]"),
    ({"text": "x", "logprobs": "-1.0"}, "a list of token log-probabilities"),
    ({"text": "x", "logprobs": [-1.0], "tokens": 1}, "both 'logprobs' and tokens"),
    ({"text": "x", "logprob_mean": -1.0, "logprob_min": -0.5}, "above its logprob_mean"),
    ({"text": "x", "logprob_mean": float("nan")}, "finite number"),
    ({"text": "x", "tokens": 2.5}, "an integer"),
    ({"text": "x", "logprobs": []}, "logprobs is empty: leave it out"),
])
def test_check_rejects_bad_logprobs_with_one_line(sample: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        check(LEAVE, [sample], embedder=WordEmbedder())
    assert "\n" not in str(info.value)


def test_cli_check_json_carries_input_logprobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.generation.embedders

    monkeypatch.setattr(ragguard.generation.embedders, "SentenceTransformerEmbedder", lambda *a, **k: WordEmbedder())
    path = tmp_path / "s.jsonl"
    rows = [
        {"question": LEAVE, "samples": [{"text": "Twenty days.", "logprobs": [-0.5, -0.1]},
                                        {"text": "Twenty days.", "logprob_mean": -0.2}]},
        {"question": LEAVE, "samples": ["Twenty days.", "Twenty days."]},
        {"question": LEAVE, "samples": [{"text": "Twenty days.", "logprobs": [3]}]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path), "--json"])
    assert result.exit_code == 0, result.output
    first, second, bad = json.loads(result.stdout)["results"]
    assert [(s["logprob_mean"], s["logprob_min"], s["tokens"]) for s in first["samples"]] == [
        (-0.3, -0.5, 2), (-0.2, None, None)]
    assert first["semantic_entropy_weighted"] == 0.0  # one cluster
    assert second["semantic_entropy_weighted"] is None and second["samples"][0]["logprob_mean"] is None
    assert bad["line"] == 3 and "not probabilities" in bad["error"]


def test_cli_check_reads_the_csv_layouts_of_the_readme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.generation.embedders

    monkeypatch.setattr(ragguard.generation.embedders, "SentenceTransformerEmbedder", lambda *a, **k: WordEmbedder())
    numbered = tmp_path / "numbered.csv"
    numbered.write_text(
        "question,sample_1,sample_2,sample_3,context\n"
        f'"{Q}","Yes, ask HR.","No, you do not need it.",,"Ask HR for the certificate."\n'
        "How long is probation?,Three months.,Three months.,Three months.,\n", encoding="utf-8")
    listed = tmp_path / "listed.csv"
    listed.write_text(
        'question,samples,context\n"How long is probation?","[""Three months."", ""Three months.""]",'
        '"[""Probation lasts three months."", ""It can be extended.""]"\n'
        'Bad row?,"Three months.",\n'
        'One sample?,"[""a""]",\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(numbered), "--json"])
    assert result.exit_code == 0, result.output
    first, second = json.loads(result.stdout)["results"]
    assert [s["text"] for s in first["samples"]] == ["Yes, ask HR.", "No, you do not need it."]
    assert first["verdict"] == "contradiction" and len(second["samples"]) == 3
    assert second["verdict"] == "consistent"
    result = CliRunner().invoke(app, ["check", str(listed), "--json"])
    assert result.exit_code == 0, result.output
    ok, bad, one = json.loads(result.stdout)["results"]
    assert [s["text"] for s in ok["samples"]] == ["Three months."] * 2 and ok["verdict"] == "consistent"
    assert "not a JSON list" in bad["error"]
    assert [s["text"] for s in one["samples"]] == ["a"]


def test_a_csv_row_with_both_sample_layouts_is_refused() -> None:
    from ragguard.apps.check import record_from_csv

    with pytest.raises(UsageError, match="both a 'samples' cell and sample_N columns"):
        record_from_csv({"question": "q", "samples": '["a"]', "sample_1": "b"})
    assert record_from_csv({"question": "q", "sample_2": "b", "sample_10": "c", "sample_1": "a", "context": ""}) == {
        "question": "q", "samples": ["a", "b", "c"]}


def test_cli_check_reads_every_context_shape_and_a_bad_record_stops_only_itself(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.generation.embedders

    monkeypatch.setattr(ragguard.generation.embedders, "SentenceTransformerEmbedder", lambda *a, **k: WordEmbedder())
    leave = "Full-time staff get 25 days of leave."
    rows = [
        {"question": LEAVE, "samples": ["25 days.", "25 days."], "context": 5},
        {"question": LEAVE, "samples": ["25 days.", "25 days."], "context": [{"text": leave, "doc_id": "leave.md"}]},
        {"question": LEAVE, "samples": ["25 days.", "25 days."], "context": {"text": leave}},
        {"question": LEAVE, "samples": ["25 days.", "25 days."], "context": [leave, 3]},
        {"question": LEAVE, "samples": [{"text": "25 days.", "logprobs": [-1e308, -1e308]}, "25 days."]},
        {"question": LEAVE, "samples": ["25 days.", "25 days."], "contexts": [leave], "id": 7},
        {"question": LEAVE, "samples": ["", "", "25 days."]},
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)["results"]
    assert [r["line"] for r in out] == [1, 2, 3, 4, 5, 6, 7]
    assert out[0]["error"].startswith("'context' is int: give a passage string or a list of passages")
    assert [s["text"] for s in out[1]["sources"]] == [leave]  # the text, not the object's repr
    assert out[2]["error"].startswith("'context' is dict") and out[3]["error"].startswith("context[1] is int")
    assert out[4]["samples"][0]["logprob_mean"] == -1e308  # finite values whose sum overflows
    assert "field 'contexts' is not read (did you mean 'context'?)" in out[5]["warnings"]
    assert not any("'id'" in w for w in out[5]["warnings"])  # the caller's own fields ride along unremarked
    assert out[6]["verdict"] == "abstain" and out[6]["warnings"] == [
        "2 of 3 answers were empty and they are the largest group, so there is no answer (verdict abstain)"]


@pytest.mark.parametrize(
    ("question", "samples", "kind", "quoted"),
    [
        ("試用期多長？", ["三個月。", "三個月。", "六個月。"], "quantity", "三個月"),
        ("工資通過哪家銀行發放？", ["工資由招商銀行代發。", "工資由招商銀行代發。", "工資由中國工商銀行代發。"], "entity",
         "中國工商銀行"),
        ("沒有工資卡的員工需要提交在職證明嗎？", ["需要。", "需要。", "不需要。"], "polarity", "需要"),
    ],
)
def test_traditional_chinese_answers_are_checked_as_simplified_ones_are(
        question: str, samples: list[str], kind: str, quoted: str) -> None:
    report = check(question, samples, embedder=WordEmbedder())
    assert report.verdict == "contradiction"
    found = [c for c in report.contradictions if c.kind == kind]
    assert found
    # The finding quotes the answers as written, in Traditional characters.
    assert any(quoted in c.explanation for c in found)


def test_cli_check_shows_warnings_grounding_and_ids_and_cuts_by_width(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.generation.embedders

    monkeypatch.setattr(ragguard.generation.embedders, "SentenceTransformerEmbedder", lambda *a, **k: WordEmbedder())
    long_zh = "没有工资卡的员工在申请年假之前是否需要先向人力资源部提交一份加盖了公司公章的在职证明文件？"
    rows = [
        {"id": "q-9", "question": "年假怎么申请？", "samples": ["提前一周提交申请。"], "contexts": "x"},
        {"id": 7, "question": "工资通过哪家银行发放？", "samples": ["中国工商银行北京分行。"] * 3,
         "context": "工资统一通过招商银行代发。"},
        {"question": long_zh, "samples": ["需要。", "需要。"]},
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    as_json = json.loads(CliRunner().invoke(app, ["check", str(path), "--json"]).stdout)["results"]
    assert [r.get("id") for r in as_json] == ["q-9", 7, None]
    out = CliRunner().invoke(app, ["check", str(path)]).stdout
    assert "warning: field 'contexts' is not read" in out
    assert "warning: only one answer was drawn" in out
    assert "not grounded in its context: '" in out and "in no passage" in out
    last = [line for line in out.splitlines() if line.startswith("    3 ")][0]
    assert last.endswith("…") and long_zh[:20] in last and long_zh not in last


def test_a_short_answer_quoted_from_the_context_is_grounded_despite_its_low_cosine() -> None:
    """The whole-answer cosine of "Your line manager." to a long passage is far under grounding_threshold,
    but all it adds is in the passage: it is grounded. An invented answer stays ungrounded."""
    context = ("Full-time staff get 25 days of annual leave per year. Leave requests are approved by your line "
               "manager. The office is closed on public holidays and staff may carry over five days.")
    quoted = check("Who approves leave requests?", ["Your line manager."] * 3, context, embedder=WordEmbedder())
    assert quoted.clusters[0].support < 0.45 and quoted.grounding["support"] == 1.0
    assert quoted.grounded is True and quoted.confidence == 1.0
    invented = check("Who approves leave requests?", ["The finance director."] * 3, context, embedder=WordEmbedder())
    assert invented.grounded is False and invented.confidence == 0.5


# ------------------------------------------------------------------ helper24 D7: OpenAI-shaped log-probabilities
def _openai_tokens(values: list[float]) -> list[dict]:
    return [{"token": f"t{i}", "logprob": v, "bytes": [116, 48 + i], "top_logprobs": [{"token": "x", "logprob": -9.0}]}
            for i, v in enumerate(values)]


@pytest.mark.parametrize("logprobs", [
    {"content": _openai_tokens([-0.1, -0.2, -0.6])},  # choice.logprobs of the chat API, as returned
    _openai_tokens([-0.1, -0.2, -0.6]),  # its content list
    [{"logprob": -0.1}, {"logprob": -0.2}, {"logprob": -0.6}],
    {"token_logprobs": [-0.1, -0.2, -0.6]},  # the completions API
])
def test_check_reads_openai_shaped_logprobs(logprobs: object) -> None:
    report = check(LEAVE, [{"text": "Twenty days a year.", "logprobs": logprobs}, "Twenty days a year."],
                   embedder=WordEmbedder())
    got = report.samples[0]
    assert (got.logprob_mean, got.logprob_min, got.tokens) == (pytest.approx(-0.3), -0.6, 3)


@pytest.mark.parametrize(("logprobs", "message"), [
    ({"content": _openai_tokens([-0.1]) + [{"token": "y"}]}, r"samples\[0\]\.logprobs\.content\[1\] is an object without 'logprob'"),
    ({"content": None}, r"logprobs\.content is null"),
    ({"refusal": None, "tokens": []}, "without 'content' or 'token_logprobs'"),
    ([{"logprob": 0.5}], r"logprobs\[0\]\.logprob is 0\.5, above 0"),
])
def test_check_refuses_bad_openai_logprobs_by_place(logprobs: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check(LEAVE, [{"text": "x", "logprobs": logprobs}], embedder=WordEmbedder())


@pytest.mark.parametrize("sample", [
    {"text": "x", "logprobs": {"tokens": ["w"] * 20000}},
    {"text": "x", "logprobs": [{"token": "w" * 50000, "logprob": "high"}]},
    {"text": ["w" * 10] * 5000},
    {"text": "x", "tokens": list(range(10000))},
    {"text": "x", **{f"key{i}": i for i in range(3000)}},
    {"text": "x", "logprobs": "-1.0" * 10000},
])
def test_check_errors_quote_at_most_a_bounded_part_of_the_value(sample: dict) -> None:
    with pytest.raises(UsageError) as info:
        check(LEAVE, [sample], embedder=WordEmbedder())
    assert len(str(info.value)) < 400, str(info.value)[:500]


# ------------------------------------------------------------------ helper24 D3: a context cell is one passage or a JSON list
@pytest.mark.parametrize(("cell", "passages"), [
    ("[1] Staff get 25 days.", ["[1] Staff get 25 days."]),
    ("[Leave policy](https://hr.example/leave) Staff get 25 days.", ["[Leave policy](https://hr.example/leave) Staff get 25 days."]),
    ("[see the handbook] staff get 25 days", ["[see the handbook] staff get 25 days"]),
    ("[1, 2]", ["[1, 2]"]),
    ('["Staff get 25 days.", "Ask your manager."]', ["Staff get 25 days.", "Ask your manager."]),
    ("[]", []),  # an empty list (pandas writes it so) is no context
])
def test_a_csv_context_cell_is_a_json_list_of_passages_or_else_one_passage(cell: str, passages: list[str]) -> None:
    from ragguard.apps.check import record_from_csv

    data = record_from_csv({"question": "q", "sample_1": "a", "context": cell})
    report = check(data["question"], data["samples"], data["context"], embedder=WordEmbedder())
    assert [p.text for p in report.sources] == passages


def test_only_the_samples_cell_gets_the_samples_advice() -> None:
    from ragguard.apps.check import record_from_csv

    with pytest.raises(UsageError, match=r"the 'samples' cell is not a JSON list \(Unterminated string starting "
                                         r"at column 2\)"):
        record_from_csv({"question": "q", "samples": '["a', "context": "[1] Staff get 25 days."})


def test_a_jsonl_error_says_at_column_once(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "unterminated}\n', encoding="utf-8")
    (bad,) = read_records(path)
    assert bad.error == "not valid JSON (Unterminated string starting at column 14)"  # type: ignore[union-attr]


# ------------------------------------------------------------------ helper24 D10, D11: messages and invisible answers
@pytest.mark.parametrize(("question", "message"), [
    (42, "'question' is int, not a string"), (None, "'question' is null"), (["q?"], "'question' is list, not a string"),
    ("  ", "'question' is empty"),
])
def test_a_question_that_is_not_a_string_is_not_called_empty(question: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check(question, ["a", "a"], embedder=WordEmbedder())  # type: ignore[arg-type]


@pytest.mark.parametrize(("data", "message"), [
    ({"Question": "q?", "samples": ["a"]}, "record has no 'question' field (it has 'Question': rename it to 'question')"),
    ({"question": "q?", "Samples": ["a"]}, "record has no 'samples' field (it has 'Samples': rename it to 'samples')"),
    ({"question": "q?", "answers": ["a"]}, "record has no 'samples' field (a list of answers)"),
])
def test_a_misspelled_required_field_is_named(data: dict, message: str) -> None:
    from ragguard.apps.check import check_record
    from ragguard.config import Config

    with pytest.raises(UsageError) as info:
        check_record(data, WordEmbedder(), Config())
    assert str(info.value) == message


def test_the_one_sample_warning_of_check_does_not_name_a_samples_flag() -> None:
    report = check(LEAVE, ["25 days."], embedder=WordEmbedder())
    assert report.confidence == 0.0
    assert [w for w in report.warnings if "only one answer" in w] == [
        "only one answer was drawn, so the verdict does not measure consistency and confidence is 0 "
        "(give 3 or more answers per record)"]
    assert not any("--samples" in w for w in report.warnings)


@pytest.mark.parametrize("samples", [
    ["\u200b", "\u200b\u200b", "\u0301"],  # zero-width spaces, a lone combining acute accent
    ["\ufeff", "\u2060 ", "\u200d\u200c"],  # BOM, word joiner, zero-width joiner and non-joiner
])
def test_answers_of_only_invisible_characters_are_empty_answers(samples: list[str]) -> None:
    report = check("Q?", samples, embedder=WordEmbedder())
    assert report.verdict == "abstain" and report.answer == ""
    assert any("held only invisible characters" in w and "counted as empty" in w for w in report.warnings)
    assert any("3 of 3 answers were empty" in w for w in report.warnings)


def test_an_answer_with_a_zero_width_space_inside_text_is_kept() -> None:
    report = check("Q?", ["25\u200bdays.", "25\u200bdays.", "\u200b"], embedder=WordEmbedder())
    assert report.verdict != "abstain" and report.answer == "25\u200bdays."


# ------------------------------------------------------------------ helper24: the `check` command
@pytest.fixture
def word_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.generation.embedders

    monkeypatch.setattr(ragguard.generation.embedders, "SentenceTransformerEmbedder", lambda *a, **k: WordEmbedder())


def _jsonl(tmp_path: Path, rows: list, name: str = "s.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _rows(n: int) -> list[dict]:
    return [{"id": f"r{i}", "question": f"How long is probation {i}?", "samples": ["Three months.", "Three months."]}
            for i in range(1, n + 1)]


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, k: int) -> None:
    """A checker that scores k records, then is interrupted (Ctrl-C, or SIGTERM turned into one)."""
    import ragguard.apps.check

    real, calls = ragguard.apps.check.check_record, []

    def fake(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) > k:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ragguard.apps.check, "check_record", fake)


def test_an_interrupted_check_prints_the_results_so_far_and_says_how_to_go_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, word_embedder: None) -> None:
    path = _jsonl(tmp_path, [*_rows(2), "broken", *_rows(5)[2:]])  # 6 records, the 3rd not JSON
    full = json.loads(CliRunner().invoke(app, ["check", str(path), "--json"]).stdout)["results"]
    with monkeypatch.context() as m:
        _interrupt_after(m, 3)  # 3 records scored; the bad line needs no checker
        result = CliRunner().invoke(app, ["check", str(path), "--json"])
    assert result.exit_code == 130
    out = json.loads(result.stdout)  # still exactly one JSON object
    assert out["interrupted"] is True and out["checked"] == 4 and out["next_skip"] == 4
    assert out["results"] == full[:4]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ragguard: error: interrupted after 4 of 6 records") and "rerun with --skip 4" in message
    rest = CliRunner().invoke(app, ["check", str(path), "--json", "--skip", "4"])
    assert rest.exit_code == 0, rest.output
    assert json.loads(rest.stdout) == {"results": full[4:]}  # nothing redone, nothing lost

    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        text = CliRunner().invoke(app, ["check", str(path), "--skip", "1"])
    assert text.exit_code == 130
    assert [line.split()[:2] for line in text.stdout.splitlines()] == [["2", "r2"]]
    assert "rerun with --skip 3" in text.stderr  # the bad line 3 was read; line 4's record was interrupted


def test_check_shows_progress_on_stderr_for_long_inputs_only(tmp_path: Path, word_embedder: None) -> None:
    result = CliRunner().invoke(app, ["check", str(_jsonl(tmp_path, _rows(25))), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["results"]) == 25  # stdout holds the JSON object alone
    assert "25/25 100%" in result.stderr and "consistent 25" in result.stderr
    short = CliRunner().invoke(app, ["check", str(_jsonl(tmp_path, _rows(3), "short.jsonl")), "--json"])
    assert short.stderr == ""


def test_check_skip_past_the_end_is_a_usage_error(tmp_path: Path, word_embedder: None) -> None:
    result = CliRunner().invoke(app, ["check", str(_jsonl(tmp_path, _rows(3))), "--skip", "3"])
    assert result.exit_code == 2
    assert "--skip 3 skips every record" in result.stderr and "holds 3 records" in result.stderr


def test_failed_records_keep_their_id_beside_line(tmp_path: Path, word_embedder: None) -> None:
    path = _jsonl(tmp_path, [{"id": "empty-samples", "question": "Q?", "samples": []}, {"id": 7, "question": "Q?"}])
    first, second = json.loads(CliRunner().invoke(app, ["check", str(path), "--json"]).stdout)["results"]
    assert (first["line"], first["id"]) == (1, "empty-samples") and "non-empty list" in first["error"]
    assert (second["line"], second["id"]) == (2, 7) and "no 'samples' field" in second["error"]
    csv = tmp_path / "ids.csv"
    csv.write_text('id,question,samples\n,Q?,"[""yes""]"\n7,Q2?,not a list\n', encoding="utf-8")
    ok, bad = json.loads(CliRunner().invoke(app, ["check", str(csv), "--json"]).stdout)["results"]
    assert "id" not in ok  # an empty id cell is no id
    assert bad["id"] == "7" and "not a JSON list" in bad["error"]


def test_a_failed_record_keeps_its_warnings_so_rows_an_unclosed_quote_swallowed_are_named(
        tmp_path: Path, word_embedder: None) -> None:
    path = tmp_path / "badcell.csv"
    path.write_text('question,samples\nQ?,"[""a"", ""b""\nQ2?,"[""a""]"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path), "--json"])
    (entry,) = json.loads(result.stdout)["results"]
    assert "not a JSON list" in entry["error"]
    assert any("cell spans lines 2-3" in w and "swallowed" in w for w in entry["warnings"])
    assert "badcell.csv:2: warning: the 'samples' cell spans lines 2-3" in result.stderr


def test_a_config_error_is_one_usage_error_before_any_record_and_the_calibration_is_read_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, word_embedder: None) -> None:
    path = _jsonl(tmp_path, _rows(3))
    config = tmp_path / "badcal.yaml"
    config.write_text(f"consistency:\n  calibration: {tmp_path / 'nope.json'}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path), "--json", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert "consistency.calibration" in result.stderr and "skipped" not in result.stderr

    import ragguard.apps.calibration_io

    reads: list[object] = []
    monkeypatch.setattr(ragguard.apps.calibration_io, "resolve_calibration", lambda *a: reads.append(a))
    result = CliRunner().invoke(app, ["check", str(path), "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert len(reads) == 1


def test_check_ids_follow_audits_rules_with_a_warning_for_each_drop(tmp_path: Path, word_embedder: None) -> None:
    base = {"question": "How long is probation?", "samples": ["Three months.", "Three months."]}
    path = tmp_path / "ids.jsonl"
    ids = ["1.5", "NaN", "true", '["x"]', '"a\\nb"', '"dup"', '"dup"', "0"]
    path.write_text("".join(json.dumps(base)[:-1] + f', "id": {i}}}\n' for i in ids), encoding="utf-8")
    out = json.loads(CliRunner().invoke(app, ["check", str(path), "--json"]).stdout)["results"]
    assert [r.get("id", "-") for r in out] == ["-", "-", "-", "-", "a\nb", "dup", "dup", 0]
    warned = [[w for w in r["warnings"] if "id" in w] for r in out]
    assert warned[0] == ["'id' 1.5 is float, not a string or a whole number: it is left out of the result"]
    assert "is float" in warned[1][0] and warned[2] == [
        "'id' True is a bool, not a string or a whole number: it is left out of the result"]
    assert "is list" in warned[3][0] and "control character" in warned[4][0]
    assert warned[5] == [] and warned[6] == ["duplicate id 'dup': line 6 has it too"] and warned[7] == []


def test_a_json_lists_positions_are_called_items(tmp_path: Path, word_embedder: None) -> None:
    path = tmp_path / "list.json"
    path.write_text(json.dumps([_rows(1)[0], {"question": "Q?"}, {**_rows(1)[0], "id": "r1"}]), encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path), "--json"])
    assert "list.json item 2: skipped: record has no 'samples' field" in result.stderr
    assert "list.json:2" not in result.stderr
    assert json.loads(result.stdout)["results"][2]["warnings"][0] == "duplicate id 'r1': item 1 has it too"


def test_check_text_columns_line_up_without_colours_and_show_id_and_confidence(
        tmp_path: Path, word_embedder: None) -> None:
    rows = [{"id": "a", "question": "How long is probation?", "samples": ["Three months.", "Three months."]},
            {"id": "long-id-2", "question": Q, "samples": ["Yes, ask HR.", "No, you do not need it."]},
            {"question": "年假怎么申请？", "samples": ["提前一周提交申请。"] * 3}]
    out = CliRunner().invoke(app, ["check", str(_jsonl(tmp_path, rows))]).stdout
    table = [line for line in out.splitlines() if not line.startswith("       ")]
    assert table[0].startswith("    1  a          CONSISTENT     100%  conf ")
    assert table[1].startswith("    2  long-id-2  CONTRADICTION   50%  conf ")
    assert table[2].startswith("    3             CONSISTENT     100%  conf ")
    assert len({line.index("conf ") for line in table}) == 1


def test_check_strict_exits_1_when_any_record_was_skipped(tmp_path: Path, word_embedder: None) -> None:
    path = _jsonl(tmp_path, [*_rows(2), {"question": "Q?"}])
    assert CliRunner().invoke(app, ["check", str(path), "--json"]).exit_code == 0
    result = CliRunner().invoke(app, ["check", str(path), "--json", "--strict"])
    assert result.exit_code == 1
    assert len(json.loads(result.stdout)["results"]) == 3
    assert "gate failed: 1 of 3 records skipped as invalid (--strict)" in result.stderr
    assert CliRunner().invoke(app, ["check", str(_jsonl(tmp_path, _rows(2), "ok.jsonl")), "--strict"]).exit_code == 0


def test_check_says_whether_an_input_answer_was_cut_only_when_the_input_does() -> None:
    """An input sample's truncated is null unless the input says: truncated true/false, or the server's
    finish_reason ("length" is cut); the two disagreeing is refused."""
    samples = ["Yes.", {"text": "Yes.", "finish_reason": "length"}, {"text": "Yes.", "truncated": False},
               {"text": "Yes.", "finish_reason": "stop", "logprobs": [-0.1]}]
    report = check("Do I need a certificate?", samples, embedder=WordEmbedder())
    assert [s["truncated"] for s in report.to_dict()["samples"]] == [None, True, False, False]
    with pytest.raises(UsageError, match=r"samples\[0\] has truncated true but finish_reason 'stop': give one"):
        check("Q?", [{"text": "a", "truncated": True, "finish_reason": "stop"}], embedder=WordEmbedder())
    with pytest.raises(UsageError, match=r"samples\[0\].truncated is 'yes': give true or false"):
        check("Q?", [{"text": "a", "truncated": "yes"}], embedder=WordEmbedder())


def test_check_reads_stdin_and_gzipped_files_with_the_same_lines(tmp_path: Path, word_embedder: None) -> None:
    import gzip

    path = _jsonl(tmp_path, [*_rows(1), "broken", *_rows(3)[2:]])
    plain = CliRunner().invoke(app, ["check", str(path), "--json"])
    assert plain.exit_code == 0, plain.output
    zipped = tmp_path / "s.jsonl.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    piped = CliRunner().invoke(app, ["check", "-", "--json"], input=path.read_bytes())
    for result, name in ((CliRunner().invoke(app, ["check", str(zipped), "--json"]), str(zipped)), (piped, "stdin")):
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == json.loads(plain.stdout)  # the same records, on the same lines
        assert f"{name}:2: skipped: not valid JSON" in result.stderr
    csv = tmp_path / "s.csv.gz"
    csv.write_bytes(gzip.compress(b'question,sample_1,sample_2\nHow long?,Three months.,Three months.\n'))
    (entry,) = json.loads(CliRunner().invoke(app, ["check", str(csv), "--json"]).stdout)["results"]
    assert entry["line"] == 2 and entry["verdict"] == "consistent"
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(zipped.read_bytes()[:30])
    for args, stdin, message in (([str(cut)], None, "is not a whole gzip file"),
                                 (["-"], b'[{"question": "Q?"}]', "piped records are read as JSON lines"),
                                 (["-"], b"", "stdin holds no records")):
        result = CliRunner().invoke(app, ["check", *args], input=stdin)
        assert result.exit_code == 2 and message in result.stderr, result.output
        assert len(result.stderr.strip().splitlines()) == 1


def test_an_id_is_trimmed_with_a_warning_as_audit_trims_it(tmp_path: Path, word_embedder: None) -> None:
    row = _rows(1)[0]
    path = _jsonl(tmp_path, [{**row, "id": "q1"}, {**row, "id": " q1 "}, {**row, "id": "\tq2\n"}, {**row, "id": 3},
                             {**row, "id": "q2"}])
    full = json.loads(CliRunner().invoke(app, ["check", str(path), "--json"]).stdout)["results"]
    assert [r["id"] for r in full] == ["q1", "q1", "q2", 3, "q2"]  # as audit reads them; a number stays a number
    warned = [[w for w in r["warnings"] if "id" in w] for r in full]
    assert warned[1] == ["'id' ' q1 ' has whitespace around it: it is read as 'q1'", "duplicate id 'q1': line 1 has it too"]
    assert warned[2] == ["'id' '\\tq2\\n' has whitespace around it: it is read as 'q2'"]  # not a control character
    assert warned[0] == warned[3] == [] and warned[4] == ["duplicate id 'q2': line 3 has it too"]


def test_a_continued_check_warns_of_an_id_first_used_in_the_skipped_records(tmp_path: Path, word_embedder: None) -> None:
    row = _rows(1)[0]
    path = _jsonl(tmp_path, [{**row, "id": "q1"}, {**row, "id": "q2"}, "broken", {**row, "id": "q1"}])
    full = json.loads(CliRunner().invoke(app, ["check", str(path), "--json"]).stdout)["results"]
    assert full[3]["warnings"] == ["duplicate id 'q1': line 1 has it too"]
    rest = CliRunner().invoke(app, ["check", str(path), "--json", "--skip", "3"])
    assert json.loads(rest.stdout)["results"] == full[3:]  # a continued run says what the whole run says
