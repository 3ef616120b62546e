"""Natural-language inference (NLI) for the consistency check.

Optional: configured with ``consistency.nli_model`` (any Hugging Face
sequence-classification NLI checkpoint, a folder or a hub id, for example
``cross-encoder/nli-deberta-v3-small`` or
``MoritzLaurer/mDeBERTa-v3-base-xnli-multilingual-nli-2mil7``). It serves
three purposes in :mod:`ragguard.core.consistency`:

* clustering by two-way entailment (``consistency.clustering: entailment``),
  as in semantic entropy: two answers share a meaning when each entails the
  other;
* the ``nli`` contradiction detector, on every pair of answers;
* grounding by entailment (``consistency.grounding: entailment``): does a
  retrieved passage entail the answer?

An NLI model is anything with ``name`` and ``predict(pairs)`` returning one
row ``[P(entailment), P(neutral), P(contradiction)]`` per (premise,
hypothesis) pair (:class:`ragguard.core.protocols.NLIModel`); :class:`TransformersNLI`
is the Hugging Face one.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ragguard.core.protocols import CONTRADICTION, ENTAILMENT, NEUTRAL, NLIModel
from ragguard.errors import ModelLoadError

__all__ = ["NLIModel", "TransformersNLI", "label_columns", "load_nli", "ENTAILMENT", "NEUTRAL", "CONTRADICTION"]


def label_columns(id2label: dict[int, str]) -> tuple[int, int | None, int | None]:
    """Map a checkpoint's labels to (entailment, neutral, contradiction) class indices.

    Two-class checkpoints (entailment / not entailment) have no neutral or
    contradiction class: those come back as ``None``.

    Raises:
        ValueError: when no label names entailment (for example ``LABEL_0``).
    """
    found: dict[str, int] = {}
    for idx, label in sorted((int(k), str(v).lower()) for k, v in id2label.items()):
        if "contradict" in label:
            found.setdefault("contradiction", idx)
        elif "neutral" in label:
            found.setdefault("neutral", idx)
        elif "entail" in label and not any(neg in label for neg in ("not", "non")):
            found.setdefault("entailment", idx)
    if "entailment" not in found:
        names = ", ".join(f"{k}={v}" for k, v in sorted(id2label.items()))
        raise ValueError(f"none of its labels names entailment ({names})")
    return found["entailment"], found.get("neutral"), found.get("contradiction")


class TransformersNLI:
    """An NLI cross-encoder loaded with transformers (lazily, on the first prediction).

    Args:
        model: a local folder or a hub id.
        device: ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
        batch_size: pairs per forward pass.
        max_length: tokens per pair; longer pairs are truncated (premise first).
    """

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 16, max_length: int = 512) -> None:
        self.name = model
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self._model = None
        self._tokenizer = None
        self._columns: tuple[int, int | None, int | None] = (0, None, None)
        self.pairs_scored = 0

    def _load(self) -> None:
        if self._model is not None:
            return
        from ragguard.generation.models import quiet_transformers

        quiet_transformers()
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from ragguard.generation.sources import check_weights_source

        try:
            check_weights_source(self.name, "consistency.nli_model")
            tokenizer = AutoTokenizer.from_pretrained(self.name)
            model = AutoModelForSequenceClassification.from_pretrained(self.name, use_safetensors=True)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"could not load the NLI model {self.name!r} ({first}): set consistency.nli_model to a local "
                "folder holding a sequence-classification checkpoint, or to a hub id this machine can download"
            ) from None
        try:
            self._columns = label_columns(model.config.id2label)
        except ValueError as exc:
            raise ModelLoadError(
                f"{self.name!r} is not an NLI classifier: {exc}; pick a checkpoint trained for NLI"
            ) from None
        model.eval()
        model.to(self.device)
        self._model, self._tokenizer = model, tokenizer

    def predict(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Probabilities per pair, columns (entailment, neutral, contradiction), rounded to 1e-6."""
        out = np.zeros((len(pairs), 3), dtype=np.float64)
        if not pairs:
            return out
        self._load()
        import torch

        ent, neu, con = self._columns
        with torch.inference_mode():
            for start in range(0, len(pairs), self.batch_size):
                chunk = pairs[start : start + self.batch_size]
                enc = self._tokenizer(
                    [p for p, _ in chunk],
                    [h for _, h in chunk],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                logits = self._model(**enc).logits.float()
                probs = torch.softmax(logits, dim=-1).cpu().numpy().astype(np.float64)
                rows = slice(start, start + len(chunk))
                out[rows, ENTAILMENT] = probs[:, ent]
                if neu is not None:
                    out[rows, NEUTRAL] = probs[:, neu]
                if con is not None:
                    out[rows, CONTRADICTION] = probs[:, con]
                if neu is None and con is None:  # two-class: "not entailment" counts as neutral
                    out[rows, NEUTRAL] = 1.0 - probs[:, ent]
        self.pairs_scored += len(pairs)
        return np.round(out, 6)


@functools.lru_cache(maxsize=2)
def load_nli(model: str, device: str = "cpu", batch_size: int = 16) -> TransformersNLI:
    """One NLI model per setting per process (weights load on first use)."""
    return TransformersNLI(model, device, batch_size)
