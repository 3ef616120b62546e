"""Adapters that plug ragguard into other frameworks.

Each integration lives in its own module and imports its framework only when
that module is imported, so ``import ragguard`` never pulls one in:

* :mod:`ragguard.integrations.langchain`: LangChain components
  (``pip install "ragguard[langchain]"``).
"""

__all__: list[str] = []
