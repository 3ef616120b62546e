"""What a detector reports: a contradiction between two texts, with the spans that conflict."""

from __future__ import annotations

from dataclasses import dataclass

from ragguard.core.types import ENTITY, NLI, POLARITY, QUANTITY, FindingKind

__all__ = ["Finding"]

_WHAT = {POLARITY: "opposite answers", QUANTITY: "different values", ENTITY: "different names"}


@dataclass(frozen=True)
class Finding:
    """A contradiction between two texts, with the spans that conflict."""

    kind: FindingKind
    score: float
    span_a: str
    span_b: str

    def explanation(self) -> str:
        """One line that says what conflicts and quotes both spans."""
        what = f"the NLI model reads a contradiction (p={self.score:.2f})" if self.kind == NLI else (
            _WHAT.get(self.kind, self.kind))
        return f'{what}: "{self.span_a}" vs "{self.span_b}"'
