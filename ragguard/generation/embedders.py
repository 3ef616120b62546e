"""Sentence-transformers embedder (loaded lazily), and passage vectors remembered per embedder."""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragguard.errors import ModelLoadError
from ragguard.generation.models import EMBEDDED_EMBEDDER, embedded_embedder_path, quiet_transformers

__all__ = ["SentenceTransformerEmbedder", "embed_alone"]

_ALONE_SIZE = 4096  # texts remembered per embedder (384-dim float32: about 6 MB)
_alone: weakref.WeakKeyDictionary[Any, OrderedDict[str, np.ndarray]] = weakref.WeakKeyDictionary()
_alone_lock = threading.Lock()


def embed_alone(embedder: Any, texts: Sequence[str]) -> np.ndarray:
    """Vectors of ``texts``, each embedded on its own and remembered for this embedder.

    A text encoded alone is not padded to the length of others in its batch,
    so its vector never depends on what else was embedded: remembered or not,
    it is the same. Grounding embeds the retrieved passages this way, which
    repeat across questions of an audit or a server's requests (and a long
    passage no longer pads a batch of short answers to its length).
    """
    try:
        with _alone_lock:
            memory = _alone.setdefault(embedder, OrderedDict())
    except TypeError:  # an embedder that cannot be weakly referenced: nothing is remembered
        memory = OrderedDict()
    rows: list[np.ndarray] = []
    for text in texts:
        with _alone_lock:
            vector = memory.get(text)
            if vector is not None:
                memory.move_to_end(text)
        if vector is None:
            vector = np.asarray(embedder.embed([text]), dtype=np.float32)[0]
            vector.setflags(write=False)
            with _alone_lock:
                memory[text] = vector
                while len(memory) > _ALONE_SIZE:
                    memory.popitem(last=False)
        rows.append(vector)
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(rows)


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
        try:
            self._model = SentenceTransformer(path, device=self.device)
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
