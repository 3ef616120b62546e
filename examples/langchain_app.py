"""An LCEL app on ragguard: handbook answers that carry a consistency verdict.

    pip install "ragguard[langchain]"
    python examples/langchain_app.py ["question" ...] [--samples N] [--max-tokens N]

``RagGuardChain`` runs the whole pipeline (retrieve from the example index,
draw several answers, vote) and is composed with ordinary LangChain
runnables. Everything runs offline on the embedded models.
"""

from __future__ import annotations

import argparse
from typing import Any

from langchain_core.runnables import RunnableLambda

from ragguard.integrations.langchain import RagGuardChain

QUESTIONS = [
    "How many days of annual leave do I get?",
    "Do employees without the payroll bank's debit card need an employment certificate?",
]


def format_answer(result: dict[str, Any]) -> str:
    """One printable block: the voted answer, its verdict and where it came from."""
    report = result["report"]
    sources = ", ".join(dict.fromkeys(doc.metadata["doc_id"] for doc in result["sources"]))
    lines = [
        result["answer"] or "(no answer: ragguard abstained)",
        f"verdict: {report['verdict']}  agreement: {report['agreement']:.0%}  samples: {len(report['samples'])}",
        f"sources: {sources or '-'}",
    ]
    lines += [f"warning: {w}" for w in report["warnings"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", nargs="*", default=QUESTIONS)
    parser.add_argument("--samples", type=int, default=5, help="answers drawn per question")
    parser.add_argument("--max-tokens", type=int, default=64, help="longest answer in tokens")
    args = parser.parse_args()
    # index_path=None is the bundled example index (indexes/handbook); pass your own folder here.
    chain = RagGuardChain(index_path=None, samples=args.samples, max_tokens=args.max_tokens)
    app = chain | RunnableLambda(format_answer)
    # batch() answers all questions with one RagGuard.ask_many call (shared generation passes).
    for question, text in zip(args.questions, app.batch(args.questions), strict=True):
        print(f"Q: {question}\n{text}\n")


if __name__ == "__main__":
    main()
