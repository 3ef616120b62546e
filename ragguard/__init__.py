"""ragguard: trustworthy RAG answers.

Retrieve context from a FAISS index, draw one greedy and several seeded
answers, cluster them by meaning, flag contradictions and return the
majority answer with a verdict, the evidence and a fingerprint.

``import ragguard`` is light: torch, transformers, sentence-transformers and
faiss load only when a model or an index is used.
"""

from ragguard._version import __version__
from ragguard.config import Config, load_config
from ragguard.core.consistency import ConsistencyChecker, ConsistencySettings
from ragguard.core.types import Cluster, Contradiction, Fingerprint, Passage, Report, Sample
from ragguard.errors import (
    ConfigError,
    GenerationError,
    IndexLoadError,
    ModelLoadError,
    RagGuardError,
    UsageError,
)
from ragguard.pipeline import RagGuard

__all__ = [
    "__version__",
    "RagGuard",
    "Config",
    "load_config",
    "ConsistencyChecker",
    "ConsistencySettings",
    "Report",
    "Sample",
    "Cluster",
    "Contradiction",
    "Fingerprint",
    "Passage",
    "RagGuardError",
    "UsageError",
    "ConfigError",
    "IndexLoadError",
    "ModelLoadError",
    "GenerationError",
]
