"""One error hierarchy for ragguard.

Every error carries an ``exit_code`` that the CLI uses (see CONTRACTS.md):
2 for usage errors (bad input, bad config), 3 for runtime errors (a model or
an index that cannot be loaded). Each class also inherits the builtin that
best describes it, so callers can catch ``ValueError`` or ``RuntimeError``
without knowing about ragguard.
"""

from __future__ import annotations

__all__ = [
    "RagGuardError",
    "UsageError",
    "ConfigError",
    "IndexError_",
    "IndexLoadError",
    "ModelLoadError",
    "QuantizationError",
    "GenerationError",
    "UpstreamError",
    "OutputError",
]


class RagGuardError(Exception):
    """Base class of every error ragguard raises on purpose."""

    exit_code: int = 3


class UsageError(RagGuardError, ValueError):
    """The caller passed something unusable (empty question, unreadable file...)."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file or value is invalid."""


class IndexError_(RagGuardError, RuntimeError):
    """Base class for index problems (the trailing underscore avoids the builtin)."""


class IndexLoadError(IndexError_):
    """An index is missing, damaged, foreign or from an incompatible version."""


class ModelLoadError(RagGuardError, RuntimeError):
    """A generator or embedder cannot be found or loaded."""


class QuantizationError(ModelLoadError):
    """A model cannot be held in 4-bit as asked (a layer narrower than the quantisation block...)."""


class GenerationError(RagGuardError, RuntimeError):
    """Generation failed at run time."""


class UpstreamError(GenerationError):
    """A model server (the ``openai`` backend's upstream) failed: it timed out, could not be reached, or
    answered an error status or an unreadable body.

    Attributes:
        kind: ``"timeout"``, ``"unreachable"``, ``"status"`` (an error status after the retries) or
            ``"bad_response"`` (a body that is not a chat completion).
        status: the HTTP status it answered (``None`` when it answered none).
        host: ``host:port`` of the server, without credentials or path (safe to log).
    """

    def __init__(self, message: str, kind: str, host: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind, self.host, self.status = kind, host, status


class OutputError(RagGuardError, OSError):
    """An output file cannot be written (a full disk, a read-only folder): the message names the file and the fix."""
