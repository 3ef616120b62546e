"""Reading source documents and splitting them into chunks (no heavy imports).

Chunks keep a heading with the paragraphs under it and are packed up to
``chunk_chars`` characters. Splitting is on paragraph and sentence
boundaries (including Chinese full stops), never on whitespace alone, so
Chinese text without spaces is chunked correctly. Chunk ids are stable: they
derive from the source path, the position and the chunk text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ragguard.errors import UsageError

__all__ = ["Document", "Chunk", "ChunkingSettings", "iter_documents", "chunk_document", "sha256_bytes"]

TEXT_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm")


@dataclass(frozen=True)
class Document:
    """A source text and where it came from (``doc_id`` is a relative path)."""

    doc_id: str
    text: str
    sha256: str


@dataclass(frozen=True)
class Chunk:
    """A piece of a document that is embedded and retrieved on its own."""

    doc_id: str
    chunk_id: str
    text: str


@dataclass(frozen=True)
class ChunkingSettings:
    """How documents are cut (recorded in the index manifest)."""

    chunk_chars: int = 1200
    overlap_chars: int = 150

    def to_dict(self) -> dict[str, int]:
        return {"chunk_chars": self.chunk_chars, "overlap_chars": self.overlap_chars}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iter_documents(sources: Iterable[str | Path]) -> Iterator[tuple[Document | None, str, str | None]]:
    """Yield ``(document, path, skip_reason)`` for every candidate file under ``sources``.

    Files that cannot be used yield ``(None, path, reason)`` so the caller can
    report them; they are never silently dropped.
    """
    for source in sources:
        root = Path(source)
        if not root.exists():
            raise UsageError(f"source {str(root)!r} does not exist: pass a folder or file of .md/.txt/.html documents")
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        base = root if root.is_dir() else root.parent
        for path in files:
            rel = path.relative_to(base).as_posix()
            doc_id = f"{root.name}/{rel}" if root.is_dir() else rel
            if path.suffix.lower() not in TEXT_SUFFIXES:
                yield None, doc_id, f"unsupported file type {path.suffix or '(none)'}"
                continue
            data = path.read_bytes()
            if b"\x00" in data[:4096]:
                yield None, doc_id, "binary file"
                continue
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                yield None, doc_id, "not valid UTF-8"
                continue
            if path.suffix.lower() in (".html", ".htm"):
                from ragguard.html_text import html_to_text

                text = html_to_text(text)
            if not text.strip():
                yield None, doc_id, "empty file" if path.suffix.lower() not in (".html", ".htm") else "no text in the page"
                continue
            yield Document(doc_id=doc_id, text=text, sha256=sha256_bytes(data)), doc_id, None


_SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])\s*")


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


def _split_long(block: str, limit: int) -> list[str]:
    if len(block) <= limit:
        return [block]
    pieces = [s for s in _SENTENCE_END.split(block) if s]
    out: list[str] = []
    current = ""
    for piece in pieces:
        while len(piece) > limit:  # a single sentence longer than the limit
            out.append(piece[:limit])
            piece = piece[limit:]
        if current and len(current) + 1 + len(piece) > limit:
            out.append(current)
            current = piece
        else:
            current = f"{current} {piece}".strip() if current else piece
    if current:
        out.append(current)
    return out


def chunk_document(doc: Document, settings: ChunkingSettings) -> list[Chunk]:
    """Cut a document into chunks; the document title prefixes every chunk after the first."""
    title = next((line.lstrip("#").strip() for line in doc.text.splitlines() if line.startswith("#")), "")
    pieces: list[str] = []
    for block in _blocks(doc.text):
        pieces.extend(_split_long(block, settings.chunk_chars))
    chunks_text: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 2 + len(piece) > settings.chunk_chars:
            chunks_text.append(current)
            tail = current[-settings.overlap_chars :] if settings.overlap_chars else ""
            # Carry the overlap from a sentence start so chunks never open mid-word.
            cut = max(tail.find(". "), tail.find("。"))
            tail = tail[cut + 1 :].strip() if cut >= 0 else ""
            prefix = f"{title}\n" if title and not piece.startswith("#") else ""
            current = f"{prefix}{tail}\n\n{piece}".strip() if tail else f"{prefix}{piece}"
            # The overlap, then the title, give way when they would push a chunk past chunk_chars.
            if len(current) > settings.chunk_chars:
                current = f"{prefix}{piece}" if len(prefix) + len(piece) <= settings.chunk_chars else piece
        else:
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks_text.append(current)
    chunks = []
    for position, text in enumerate(chunks_text):
        digest = hashlib.sha256(f"{doc.doc_id}\0{position}\0{text}".encode()).hexdigest()[:12]
        chunks.append(Chunk(doc_id=doc.doc_id, chunk_id=f"{doc.doc_id}#{position}-{digest}", text=text))
    return chunks
