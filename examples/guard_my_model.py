"""Add ragguard's consistency check to a chat model your app already uses.

    pip install "ragguard[langchain]"
    python examples/guard_my_model.py

``ConsistencyGuard`` calls the model several times (binding a temperature and
a per-sample seed when the model takes them), clusters the answers by meaning
and returns the majority answer with a verdict. The model here is LangChain's
fake chat model with canned, disagreeing answers, so the example runs offline;
the answers are embedded with ragguard's bundled all-MiniLM-L6-v2.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel, FakeListChatModel

from ragguard.integrations.langchain import ConsistencyGuard

QUESTION = "Do employees without the payroll bank's debit card need an employment certificate?"


def my_chat_model() -> BaseChatModel:
    # Swap in the model your app already has, for example:
    #     from langchain_openai import ChatOpenAI
    #     return ChatOpenAI(model="gpt-4o-mini")
    # (or ChatAnthropic, ChatOllama, ...: any LangChain chat model or runnable).
    return FakeListChatModel(
        responses=[
            "Yes, they must request an employment certificate from HR before the bank opens an account.",
            "Yes, an employment certificate from HR is required to open the payroll account.",
            "No, they do not need an employment certificate.",
            "Yes, they need an employment certificate from HR.",
            "Yes, HR issues the employment certificate they need for the bank.",
        ]
    )


def main() -> None:
    # max_concurrency=1: the fake model is not thread-safe; real models can run their samples in parallel.
    guarded = ConsistencyGuard(model=my_chat_model(), samples=5, max_concurrency=1)
    message = guarded.invoke(QUESTION)
    report = message.response_metadata
    print(f"Q: {QUESTION}")
    print(f"A: {message.content}")
    print(f"verdict: {report['verdict']}  agreement: {report['agreement']:.0%}")
    for cluster in report["clusters"]:
        print(f"  [{cluster['id']}] x{cluster['size']}: {cluster['representative']}")
    for found in report["contradictions"]:
        print(f"  {found['kind']}: {found['explanation']}")


if __name__ == "__main__":
    main()
