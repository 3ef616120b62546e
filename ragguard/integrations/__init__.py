"""Adapters that plug ragguard into other frameworks.

Each integration lives in its own subpackage and imports its framework only when
that subpackage is imported, so ``import ragguard`` never pulls one in:

* :mod:`ragguard.integrations.langchain`: LangChain components, one module per
  interface (``pip install "ragguard[langchain]"``).
"""

__all__: list[str] = []
