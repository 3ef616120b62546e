"""Audit a question set against a fleet of OpenAI-compatible servers with Ray Data.

Ray Data fans the questions out over actors; each actor draws one greedy answer and ``samples - 1``
seeded samples from the servers through ragguard's ``openai`` backend (round robin over every
``--endpoint``), and a second stage scores them with ragguard's ``check`` (cluster by meaning,
contradiction detectors, vote). The results land in one ``results.jsonl`` (sorted by id) plus a
verdict count on stdout.

    pip install "ragguard[openai]" "ray[data]"
    vllm serve Qwen/Qwen2.5-0.5B-Instruct --port 8000 --enable-prefix-caching   # on each GPU node
    python examples/ray_audit.py examples/faq.jsonl --out ray-audit \\
        --endpoint http://gpu-node-1:8000/v1 --endpoint http://gpu-node-2:8000/v1 \\
        --model Qwen/Qwen2.5-0.5B-Instruct --samples 8 --actors 4

Seeds derive from (base seed, question, sample index) exactly as in ``ragguard ask``, and each
sample is its own request (``request_mode: per_seed``), so a question's samples do not depend on
which actor or server drew them. Ray is needed only to run this script, never by ragguard.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any


class SampleAnswers:
    """Ray Data stage 1 (an actor): retrieve context and draw the answers of one question."""

    def __init__(self, endpoints: list[str], model: str, samples: int, seed: int, index: str | None,
                 top_k: int = 4, concurrency: int = 16, max_retries: int = 3) -> None:
        from ragguard.config import Config
        from ragguard.generation.backends import build_generator

        self.config = Config.from_dict({
            "generator": {"backend": "openai", "base_url": endpoints, "model": model, "request_mode": "per_seed",
                          "concurrency": concurrency, "max_retries": max_retries},
            "sampling": {"samples": samples, "seed": seed},
            "retrieval": {"index": index, "top_k": top_k if index else 0},
        })
        self.generator = build_generator(self.config)
        self.retriever = None
        if index:
            from ragguard.generation.backends import build_embedder
            from ragguard.pipeline import build_retriever

            self.retriever = build_retriever(self.config, build_embedder(self.config.embedder), index)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        from ragguard.generation.prompts import build_messages
        from ragguard.pipeline import sample_seeds

        cfg = self.config
        question = str(row["question"]).strip()
        passages = self.retriever.search(question, cfg.retrieval.top_k) if self.retriever else []
        messages = build_messages(question, passages, cfg.prompt.system, cfg.prompt.max_context_chars)
        seeds = sample_seeds(cfg.sampling.seed, question, cfg.sampling.samples)
        try:
            completions = self.generator.generate(messages, seeds)
        except Exception as exc:  # noqa: BLE001 - an unreachable server marks the row, the run goes on
            return {**row, "samples": "[]", "seeds": "[]", "context": "[]", "error": str(exc)}
        # JSON strings keep Ray's columnar blocks simple (lists of varying length per row).
        return {**row, "samples": json.dumps([c.text for c in completions]), "seeds": json.dumps(seeds),
                "context": json.dumps([p.text for p in passages]), "error": ""}


class ScoreAnswers:
    """Ray Data stage 2 (an actor): ragguard's ``check`` on the drawn answers."""

    def __init__(self, embedder: Any = None) -> None:
        from ragguard.apps.check import default_embedder
        from ragguard.config import Config

        self.config = Config()
        e = self.config.embedder
        self.embedder = embedder or default_embedder(e.model, e.device, e.batch_size)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        from ragguard.apps.check import check

        if row["error"]:
            return {"id": row["id"], "question": row["question"], "status": "error", "error": row["error"]}
        report = check(row["question"], json.loads(row["samples"]), json.loads(row["context"]),
                       embedder=self.embedder, config=self.config)
        record = report.to_dict()
        record.pop("timings", None)
        # check() sees no seeds; put back which sample was the greedy one and what drew each.
        for sample, seed in zip(record["samples"], json.loads(row["seeds"]), strict=True):
            sample["seed"], sample["greedy"] = seed, seed is None
        return {"id": row["id"], "question": row["question"], "status": "ok", "verdict": report.verdict,
                "record": json.dumps(record, ensure_ascii=False)}


def read_questions(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            data = json.loads(line)
            rows.append({"id": str(data.get("id", f"line{line_no}")), "question": data["question"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", type=Path, help=".jsonl with question and optional id")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--endpoint", action="append", required=True, help="an OpenAI-compatible base URL (repeat)")
    parser.add_argument("--model", required=True, help="the served model name")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", default=None, help="a ragguard index folder for retrieval (default: none)")
    parser.add_argument("--actors", type=int, default=2, help="sampling actors (each sends up to 16 requests)")
    args = parser.parse_args()

    try:
        import ray
    except ImportError:
        sys.exit('examples/ray_audit.py needs Ray Data: run `pip install "ray[data]"`')

    ray.init(ignore_reinit_error=True)
    rows = read_questions(args.questions)
    ds = ray.data.from_items(rows)
    ds = ds.map(SampleAnswers, concurrency=args.actors, fn_constructor_kwargs={
        "endpoints": args.endpoint, "model": args.model, "samples": args.samples, "seed": args.seed,
        "index": args.index,
    })
    ds = ds.map(ScoreAnswers, concurrency=1)
    results = sorted(ds.take_all(), key=lambda r: r["id"])
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "results.jsonl").open("w", encoding="utf-8") as f:
        for r in results:
            record = json.loads(r["record"]) if r["status"] == "ok" else {"error": r["error"]}
            f.write(json.dumps({"id": r["id"], "status": r["status"], **record}, ensure_ascii=False) + "\n")
    counts = Counter(r.get("verdict", "error") for r in results)
    print(f"{len(results)} questions: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"results: {args.out / 'results.jsonl'}")


if __name__ == "__main__":
    main()
