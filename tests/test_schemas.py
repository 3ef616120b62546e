"""The shipped JSON Schema (ragguard/schemas/record.schema.json) against what ragguard really writes.

Every record here comes from the real code paths over the test fakes: ``ask --json`` through the CLI and
the pipeline, an audit's ``results.jsonl`` and ``check --json``. The served routes are checked against the
same schema in ``test_serve_openapi.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fakes import WordEmbedder, finite_json
from serve_fakes import build_gated_guard, build_guard
from typer.testing import CliRunner

import ragguard.apps.cli
from ragguard._io import json_line
from ragguard.apps.audit import run_audit
from ragguard.apps.cli import app
from ragguard.config import Config
from ragguard.core.protocols import Completion
from ragguard.errors import GenerationError, UsageError
from ragguard.pipeline import RagGuard
from ragguard.schemas import record_schema


def problems(instance: Any, definition: str | None = None) -> list[str]:
    """What is wrong with ``instance`` against the record schema (or one of its ``$defs``): ``[]`` when valid."""
    validator = jsonschema.Draft202012Validator(record_schema(definition))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
            for e in validator.iter_errors(instance)]


def assert_valid(instance: Any, definition: str | None = None) -> None:
    found = problems(instance, definition)
    assert not found, "\n".join(found)


def test_the_schema_is_draft_2020_12_and_ships_in_the_package() -> None:
    schema = record_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    # Package data: read through importlib.resources, beside the module in the wheel (hatch ships the folder).
    shipped = Path(ragguard.schemas.__file__).with_name("record.schema.json")
    assert json.loads(shipped.read_text(encoding="utf-8")) == schema
    for name in schema["$defs"]:
        jsonschema.Draft202012Validator.check_schema(record_schema(name))
    with pytest.raises(UsageError, match="'Nope' is not a definition of record.schema.json: use one of .*AuditLine"):
        record_schema("Nope")


class LogprobGenerator:
    """Answers from a table by question, with one log-probability per word; fails on demand."""

    name, device, adapter, model_sha256 = "table", "cpu", None, None

    def __init__(self, table: dict[str, list[str]], fail_on: frozenset[str] = frozenset()) -> None:
        self.table, self.fail_on = table, fail_on

    def generate(self, messages, seeds):  # type: ignore[no-untyped-def]
        question = messages[-1]["content"].split("Question: ")[-1].strip()
        if question in self.fail_on:
            raise GenerationError("out of memory (simulated)")
        texts = self.table.get(question, ["I do not know."])
        return [Completion(texts[i % len(texts)], s, tuple(-0.1 * (k + 1) for k, _ in enumerate(texts[i % len(texts)].split())))
                for i, s in enumerate(seeds)]


TABLE = {
    "How many days of annual leave do I get?": ["You get 25 days of annual leave per year."] * 3
    + ["You get 30 days of annual leave per year.", "You get 25 days of annual leave per year."],
    "Do I need an employment certificate?": ["Yes, request an employment certificate from HR."] * 2
    + ["No, you do not need a certificate."],
    "How do I connect to the VPN from home?": ["Use the VPN client with your hardware token."] * 8,
}


def test_ask_json_of_the_cli_matches_the_schema(monkeypatch: pytest.MonkeyPatch, fake_guard, fake_generator) -> None:
    monkeypatch.setattr(ragguard.apps.cli, "build_guard", lambda config, index: fake_guard)
    question = "Do employees without the payroll bank card need an employment certificate?"
    fake_generator.enqueue(["Yes, request an employment certificate from HR with form HR-07."] * 3
                           + ["No, they do not.", "Salaries are paid to a payroll bank card."])
    result = CliRunner().invoke(app, ["ask", question, "--json"])
    assert result.exit_code == 0, result.output
    record = finite_json(result.stdout)
    assert record["sources"] and record["grounding"] is not None and record["fingerprint"]["index"]
    assert_valid(record)
    assert_valid(record, "AskRecord")


def _records(guard: RagGuard, questions: list[str]) -> list[dict[str, Any]]:
    """The records as ``ask --json`` writes them (``json_line``), read back strictly."""
    return [finite_json(json_line(guard.ask(q).to_dict())) for q in questions]


def test_ask_records_of_every_kind_match_the_schema(tmp_path: Path) -> None:
    from test_calibration import labelled_set

    from ragguard.apps.calibrate import fit_calibration

    served = build_guard()
    plain = _records(served, ["How many days of annual leave do I get?", "Do I need an employment certificate?"])
    # The off-topic gate: an abstention with no samples, clusters or sources.
    (off_topic,) = _records(build_gated_guard(), ["zebra quantum saxophone"])
    assert off_topic["verdict"] == "abstain" and off_topic["samples"] == [] and off_topic["grounding"] is None
    # Log-probabilities, adaptive sampling and a calibration fitted for another setup (annotated with the mismatch).
    calibration = tmp_path / "cal.json"
    calibration.write_text(json.dumps(fit_calibration(labelled_set()).to_dict()), encoding="utf-8")
    config = (Config().replace("retrieval", min_score=None).replace("sampling", samples=8, adaptive=True)
              .replace("consistency", calibration=str(calibration)))
    guard = RagGuard(config, LogprobGenerator(TABLE), served.embedder, served.retriever)
    rich = _records(guard, list(TABLE))
    assert all(r["adaptive"] and r["calibration"]["file"] == str(calibration) for r in rich)
    assert any(r["adaptive"]["stopped"] == "agreed" for r in rich)
    assert any("mismatch" in r["calibration"] for r in rich)
    assert all(s["logprob_mean"] is not None and s["tokens"] for r in rich for s in r["samples"])
    assert {r["verdict"] for r in [*plain, *rich]} >= {"consistent", "contradiction"}
    for record in [*plain, off_topic, *rich]:
        assert_valid(record)


def test_the_schema_rejects_a_bad_verdict_a_missing_key_and_an_unknown_one() -> None:
    (record,) = _records(build_guard(), ["How many days of annual leave do I get?"])
    assert_valid(record)
    assert any(p.startswith("verdict: 'maybe' is not one of") for p in problems({**record, "verdict": "maybe"}))
    missing = {k: v for k, v in record.items() if k != "agreement"}
    assert any("'agreement' is a required property" in p for p in problems(missing))
    assert any("'extra' was unexpected" in p for p in problems({**record, "extra": 1}))
    kind = {**record, "contradictions": [{"a": 0, "b": 1, "kind": "rumour", "score": 0.5, "explanation": "x"}]}
    assert any(p.startswith("contradictions/0/kind:") for p in problems(kind))
    null_fingerprint = {**record, "fingerprint": None}
    assert any(p.startswith("fingerprint:") for p in problems(null_fingerprint))
    # A check result is an ask record without the fingerprint and timings: not an ask record.
    assert problems({k: v for k, v in record.items() if k not in ("fingerprint", "timings")})


def _audit_questions(path: Path) -> Path:
    rows: list[Any] = [
        {"id": "leave", "question": "How many days of annual leave do I get?", "reference": "25 days",
         "answers": ["twenty-five days"], "tags": ["leave"]},
        "this line is not json",
        {"id": "cert", "question": "Do I need an employment certificate?",
         "reference": "Yes: employees without the payroll bank card must request an employment certificate from HR."},
        {"id": "vpn", "question": "How do I connect to the VPN from home?", "tags": "it; remote"},
        {"id": "boom", "question": "Why does the model fail here?"},
        {"id": "long", "question": "Is " + "this question very long " * 40 + "?"},
        {"id": "cert", "question": "A second row with the id cert?"},
        {"id": "blank", "question": "   "},
    ]
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_every_kind_of_audit_results_line_matches_the_schema(tmp_path: Path) -> None:
    served = build_guard()
    config = Config().replace("retrieval", min_score=None).replace("sampling", samples=3) \
        .replace("generator", max_question_tokens=60)
    generator = LogprobGenerator(TABLE, fail_on=frozenset({"Why does the model fail here?"}))
    guard = RagGuard(config, generator, served.embedder, served.retriever)
    run_audit(_audit_questions(tmp_path / "q.jsonl"), tmp_path / "out", guard, batch_questions=1)
    lines = [finite_json(line) for line in (tmp_path / "out" / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    by_id = {r["id"]: r for r in lines}
    assert by_id["leave"]["status"] == "ok" and by_id["leave"]["reference_match"] == "match"
    assert by_id["leave"]["answers"] == ["twenty-five days"] and by_id["leave"]["reference_rule"]
    assert by_id["cert"]["reference_rule"] in ("embedding", "detector:polarity")
    assert by_id["vpn"]["reference_match"] is None and by_id["vpn"]["tags"] == ["it", "remote"]
    assert by_id["boom"]["status"] == "error" and "out of memory" in by_id["boom"]["error"]
    assert by_id["long"]["status"] == "invalid" and "max_question_tokens" in by_id["long"]["error"]
    assert by_id["line-2"]["status"] == "invalid" and "not valid JSON" in by_id["line-2"]["error"]
    assert by_id["line-7"]["record_id"] == "cert" and "duplicate id" in by_id["line-7"]["error"]
    assert by_id["line-8"]["status"] == "invalid"
    assert len(lines) == 8
    for line in lines:
        assert_valid(line, "AuditLine")
    # An answered line is an ask record plus the row's fields: the ask record's schema alone refuses it.
    assert problems(by_id["vpn"]) and not problems({k: v for k, v in by_id["vpn"].items()
                                                    if k not in ("id", "line", "tags", "reference", "status",
                                                                 "reference_match")})
    # The reference fields go together: a match without its rule is refused, as is a rule without a reference.
    assert problems({k: v for k, v in by_id["leave"].items() if k != "reference_rule"}, "AuditLine")
    assert problems({**by_id["vpn"], "reference_rule": "embedding", "reference_score": 0.5}, "AuditLine")
    assert problems({**by_id["boom"], "status": "failed"}, "AuditLine")


def test_check_json_matches_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ragguard.generation.embedders

    monkeypatch.setattr(ragguard.generation.embedders, "SentenceTransformerEmbedder", lambda *a, **k: WordEmbedder())
    rows: list[Any] = [
        {"id": "q1", "question": "Do I need an employment certificate?",
         "samples": ["Yes, ask HR.", "No, you do not need it.", "Yes, ask HR."],
         "context": ["Employees without the payroll bank card must request an employment certificate from HR."]},
        "broken",
        {"id": 7, "question": "How long is probation?", "samples": [{"text": "Three months.", "logprobs": [-0.5, -0.1]},
                                                                     {"text": "Three months.", "logprob_mean": -0.2}]},
        {"id": "q3", "question": "How long is probation?", "samples": []},
        {"question": "One answer?", "samples": ["Only one."], "labels": "kept"},
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path), "--json"])
    assert result.exit_code == 0, result.output
    output = finite_json(result.stdout)
    first, bad, second, failed, single = output["results"]
    assert first["id"] == "q1" and first["sources"] and "fingerprint" not in first
    assert second["id"] == 7 and second["samples"][0]["tokens"] == 2 and second["samples"][0]["truncated"] is None
    assert bad == {"line": 2, "error": bad["error"]} and failed["id"] == "q3" and "error" in failed
    assert single["confidence"] == 0.0 and "id" not in single
    assert_valid(output, "CheckOutput")
    for entry in output["results"]:
        assert_valid(entry, "CheckResult")
    # A check result carries no fingerprint: the ask record's fields alone do not make one.
    assert problems({**first, "fingerprint": None}, "CheckResult")
    assert problems({"results": [], "interrupted": True}, "CheckOutput")
