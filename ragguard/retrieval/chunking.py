"""Cutting documents into chunks measured in the embedder's tokens (no heavy imports).

Chunks keep a heading with the paragraphs under it and are packed up to
``size`` units: tokens of the embedder's own tokenizer when it has one (a
chunk longer than the embedder's window would be silently truncated when
embedded), an estimate (words, CJK characters and punctuation) for
embedders without a tokenizer, or characters. Splitting is on paragraph and
sentence boundaries (including Chinese full stops), never on whitespace
alone, so Chinese text without spaces is chunked correctly. Consecutive
chunks share up to ``overlap`` units of whole sentences. Chunk ids are
stable: they derive from the document id, the position and the chunk text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ragguard.retrieval.documents import Document

__all__ = [
    "Document",
    "Chunk",
    "ChunkingSettings",
    "TokenCounter",
    "chunk_document",
    "estimate_tokens",
]

TokenCounter = Callable[[Sequence[str]], list[int]]
"""Counts the tokens of each text (without special tokens)."""

UNITS = ("tokens", "chars")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document that is embedded and retrieved on its own."""

    doc_id: str
    chunk_id: str
    text: str
    source: str = ""
    lang: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    def to_record(self) -> dict[str, Any]:
        """The chunk store (chunks.jsonl) form."""
        return {"doc_id": self.doc_id, "chunk_id": self.chunk_id, "text": self.text,
                "source": self.source or self.doc_id, "lang": self.lang, "tags": list(self.tags)}


@dataclass(frozen=True)
class ChunkingSettings:
    """How documents are cut (recorded in the index manifest).

    Args:
        unit: ``"tokens"`` (the embedder's tokenizer, or an estimate) or ``"chars"``.
        size: the most units in a chunk.
        overlap: units of whole sentences repeated from the end of the previous chunk.
        tokenizer: whose tokens were counted (the embedder's name, or ``"estimate"``).
    """

    unit: str = "tokens"
    size: int = 250
    overlap: int = 40
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"chunking unit {self.unit!r} is not one of {UNITS}")
        if self.size < 8 or not 0 <= self.overlap < self.size:
            raise ValueError(f"chunking size {self.size} / overlap {self.overlap}: need size >= 8, 0 <= overlap < size")

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "size": self.size, "overlap": self.overlap, "tokenizer": self.tokenizer}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkingSettings:
        """Read a manifest's ``chunking`` (format 1 stored ``chunk_chars``/``overlap_chars``)."""
        if "chunk_chars" in data:
            return cls(unit="chars", size=int(data["chunk_chars"]), overlap=int(data.get("overlap_chars", 0)))
        return cls(unit=data["unit"], size=int(data["size"]), overlap=int(data["overlap"]),
                   tokenizer=data.get("tokenizer"))


_ESTIMATE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]+|[^\w\s]")


def estimate_tokens(texts: Sequence[str]) -> list[int]:
    """A tokenizer-free token count: words, CJK characters and punctuation marks count one each."""
    return [len(_ESTIMATE.findall(t)) for t in texts]


def _char_count(texts: Sequence[str]) -> list[int]:
    return [len(t) for t in texts]


# A sentence ends at . ! ? ; followed by whitespace, right after a CJK stop, or at a line end.
_BOUNDARY = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])\s*|\s*\n\s*")
_CJK_END = ("。", "！", "？", "；")


def _blocks(text: str) -> list[str]:
    """Paragraph blocks, with each heading glued to the block that follows it."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]
    blocks: list[str] = []
    pending_heading = ""
    for para in paragraphs:
        if para.startswith("#") and "\n" not in para:
            pending_heading = f"{pending_heading}\n{para}".strip()
            continue
        blocks.append(f"{pending_heading}\n{para}".strip() if pending_heading else para)
        pending_heading = ""
    if pending_heading:
        blocks.append(pending_heading)
    return blocks


def _spans(block: str) -> list[tuple[int, int]]:
    """Sentence spans of a block (separators excluded)."""
    spans = []
    pos = 0
    for m in _BOUNDARY.finditer(block):
        if m.start() > pos:
            spans.append((pos, m.start()))
        pos = max(pos, m.end())
    if pos < len(block):
        spans.append((pos, len(block)))
    return spans


class _Measure:
    """Counts units of texts; :meth:`sep` is the cost of a separator (characters count, tokens do not)."""

    def __init__(self, settings: ChunkingSettings, counter: TokenCounter | None) -> None:
        self.chars = settings.unit == "chars"
        self.count: TokenCounter = _char_count if self.chars else (counter or estimate_tokens)

    def sep(self, separator: str) -> int:
        return len(separator) if self.chars else 0


def _hard_split(text: str, start: int, end: int, limit: int, measure: _Measure) -> list[tuple[int, int, int]]:
    """Cut an over-long sentence into spans of at most ``limit`` units, at spaces when there are any.

    Each cut counts only a window a little longer than the piece it cuts (the window doubles until it no
    longer fits), so a sentence of megabytes without a stop is cut in linear time, not quadratic.
    """
    out = []
    while start < end:
        width = 4 * limit  # a first guess of the characters that ``limit`` units cover
        while start + width < end and measure.count([text[start : start + width]])[0] <= limit:
            width *= 2
        stop = min(end, start + width)
        if stop == end and (units := measure.count([text[start:end]])[0]) <= limit:
            out.append((start, end, units))
            break
        lo, hi = start + 1, stop  # the longest prefix that fits (binary search on characters)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if measure.count([text[start:mid]])[0] <= limit:
                lo = mid
            else:
                hi = mid - 1
        cut = lo
        space = text.rfind(" ", start + 1, cut + 1)
        if space > start + (cut - start) // 2:
            cut = space
        out.append((start, cut, measure.count([text[start:cut]])[0]))
        start = cut
        while start < end and text[start] == " ":
            start += 1
    return out


@dataclass
class _Piece:
    text: str
    cost: int
    sentences: list[tuple[str, int]]


def _pieces(blocks: list[str], size: int, run_limit: int, measure: _Measure) -> list[_Piece]:
    """Blocks that fit in a chunk, and longer blocks cut into runs of whole sentences of at most ``run_limit``.

    ``run_limit`` leaves room in the chunk for the title and the overlap.
    """
    spans = [_spans(b) for b in blocks]
    flat = [b[s:e] for b, sp in zip(blocks, spans, strict=True) for s, e in sp]
    counts = iter(measure.count(flat))
    pieces: list[_Piece] = []
    for block, sp in zip(blocks, spans, strict=True):
        sentences: list[tuple[int, int, int]] = []
        block_counts = [next(counts) for _ in sp]
        whole = len(block) if measure.chars else sum(block_counts)
        limit = size if whole <= size else run_limit
        for (s, e), c in zip(sp, block_counts, strict=True):
            sentences.extend([(s, e, c)] if c <= size else _hard_split(block, s, e, size, measure))
        runs: list[tuple[list[tuple[int, int, int]], int]] = []  # (sentences, cost)
        for s, e, c in sentences:
            if runs:
                run, cost = runs[-1]
                added = e - run[-1][1] if measure.chars else c
                if cost + added <= limit:
                    run.append((s, e, c))
                    runs[-1] = (run, cost + added)
                    continue
            runs.append(([(s, e, c)], e - s if measure.chars else c))
        for run, cost in runs:
            text = block[run[0][0] : run[-1][1]]
            pieces.append(_Piece(text, len(text) if measure.chars else cost, [(block[s:e], c) for s, e, c in run]))
    return pieces


def _join_tail(sentences: list[tuple[str, int]]) -> str:
    out = ""
    for text, _ in sentences:
        out = text if not out else (f"{out}{text}" if out.endswith(_CJK_END) else f"{out} {text}")
    return out


def chunk_document(doc: Document, settings: ChunkingSettings, counter: TokenCounter | None = None) -> list[Chunk]:
    """Cut a document into chunks; the document title prefixes every chunk after the first.

    Args:
        counter: counts tokens with the embedder's tokenizer (unit ``"tokens"``);
            without one, :func:`estimate_tokens` is used.
    """
    measure = _Measure(settings, counter)
    size, overlap = settings.size, settings.overlap
    title = next((line.lstrip("#").strip() for line in doc.text.splitlines() if line.startswith("#")), "")
    title_cost = measure.count([title])[0] if title else 0
    texts: list[str] = []
    current = ""
    cost = 0
    sentences: list[tuple[str, int]] = []
    run_limit = max(size // 2, size - overlap - title_cost - measure.sep("\n"))
    for piece in _pieces(_blocks(doc.text), size, run_limit, measure):
        if current and cost + measure.sep("\n\n") + piece.cost > size:
            texts.append(current)
            # Overlap: whole sentences from the end of the previous chunk, never a heading.
            tail: list[tuple[str, int]] = []
            for sentence in reversed(sentences):
                if sentence[0].startswith("#"):
                    break
                candidate = [sentence, *tail]
                tail_cost = len(_join_tail(candidate)) if measure.chars else sum(c for _, c in candidate)
                if tail_cost > overlap:
                    break
                tail = candidate
            prefix = title if title and not piece.text.startswith("#") else ""
            # The overlap, then the title, give way when they would push the chunk past ``size``.
            head = f"{prefix}\n" if prefix else ""
            options = [(f"{head}{_join_tail(tail)}\n\n{piece.text}", tail)] if tail else []
            options += [(f"{head}{piece.text}", []), (piece.text, [])]
            for text, carried in options:
                if measure.chars:
                    text_cost = len(text)
                else:
                    with_title = bool(head) and text.startswith(head) and text != piece.text
                    text_cost = (title_cost if with_title else 0) + sum(c for _, c in carried) + piece.cost
                if text_cost <= size or text == piece.text:
                    current, cost, sentences = text, text_cost, [*carried, *piece.sentences]
                    break
        else:
            current = f"{current}\n\n{piece.text}" if current else piece.text
            cost = len(current) if measure.chars else cost + piece.cost
            sentences.extend(piece.sentences)
    if current:
        texts.append(current)
    chunks = []
    for position, text in enumerate(texts):
        digest = hashlib.sha256(f"{doc.doc_id}\0{position}\0{text}".encode()).hexdigest()[:12]
        chunks.append(Chunk(doc_id=doc.doc_id, chunk_id=f"{doc.doc_id}#{position}-{digest}", text=text,
                            source=doc.source or doc.doc_id, lang=doc.lang, tags=doc.tags))
    return chunks
