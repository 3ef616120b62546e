"""Sentence-transformers embedder (loaded lazily).

:func:`embed_alone` (passage vectors remembered per embedder) lives in :mod:`ragguard.core.passages`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragguard.core.passages import embed_alone
from ragguard.errors import ModelLoadError
from ragguard.generation.models import EMBEDDED_EMBEDDER, embedded_embedder_path, quiet_transformers

__all__ = ["SentenceTransformerEmbedder", "embed_alone"]


class SentenceTransformerEmbedder:
    """Embeds texts with a sentence-transformers model, normalised to unit length.

    Args:
        model: ``"embedded"`` for the bundled all-MiniLM-L6-v2, a local folder
            or a hub id (needs network on first use).
        device: ``"cpu"`` or ``"cuda"``.
        batch_size: texts per encoding batch.
    """

    def __init__(self, model: str = "embedded", device: str = "cpu", batch_size: int = 32) -> None:
        self.model_spec = model
        self.name = EMBEDDED_EMBEDDER if model == "embedded" else model
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None

    def load(self) -> None:
        """Load the model now (otherwise done on first use), so that loading can be timed apart."""
        self._load()

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        quiet_transformers()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:  # pragma: no cover - a declared dependency
            raise ModelLoadError("sentence-transformers is not installed: run `pip install sentence-transformers`") from None
        if self.model_spec == "embedded":
            path = str(embedded_embedder_path())
            # The bundled model is complete on disk; never ask a hub about it.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        else:
            path = self.model_spec
        from ragguard.generation.sources import check_weights_source

        check_weights_source(path, "embedder.model")
        try:
            self._model = SentenceTransformer(path, device=self.device, model_kwargs={"use_safetensors": True})
        except Exception as exc:
            raise ModelLoadError(f"cannot load embedder {self.name!r} ({type(exc).__name__}: {exc}): "
                                 "check embedder.model in the config") from None
        return self._model

    @property
    def dimension(self) -> int:
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def max_tokens(self) -> int:
        """The longest input in tokens; the model truncates anything longer."""
        return int(self._load().max_seq_length)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text under the model's tokenizer, without special tokens (chunking measures with it)."""
        if not texts:
            return []
        tokenizer = self._load().tokenizer
        ids = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        return [len(i) for i in ids]

    def unknown_share(self, texts: Sequence[str]) -> float | None:
        """Share of the tokens of ``texts`` that the tokenizer reads as unknown (``None``: no unknown token).

        A high share means the model's vocabulary lacks the texts' script (all-MiniLM-L6-v2 reads most
        Chinese characters as ``[UNK]``), so their vectors say little about them.
        """
        tokenizer = self._load().tokenizer
        unk = getattr(tokenizer, "unk_token_id", None)
        if unk is None or not texts:
            return None
        ids = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        total = sum(len(i) for i in ids)
        return sum(row.count(unk) for row in ids) / total if total else None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return unit-length float32 vectors, one row per text."""
        model = self._load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
