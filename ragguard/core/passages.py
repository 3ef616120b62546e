"""Passage vectors remembered per embedder (over the :class:`~ragguard.core.protocols.Embedder` protocol).

Grounding embeds the retrieved passages, which repeat across the questions
of an audit or a server's requests; :func:`embed_alone` embeds each once per
embedder, on its own, and remembers it.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["embed_alone"]

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
