"""Finding and reading source documents: folders, globs, encodings and file formats.

Supported: ``.md``/``.markdown``/``.txt``, ``.html``/``.htm`` (main text only),
``.pdf`` (its text layer, through pypdf), ``.docx`` (through python-docx) and
FAQ tables (``.jsonl``/``.csv`` with ``question`` and ``answer`` columns,
each row one document). Text files in another encoding than UTF-8 are
decoded with the encoding charset-normalizer detects (UTF-16 also without a
byte-order mark).

Every file that cannot be used comes out as ``(None, path, reason)`` so the
build can list it, and so do a folder that cannot be listed (path ending in
``/``), a broken symlink and a FIFO, socket or device; nothing is dropped
silently and nothing is fatal. Symlinked folders are followed. Files left out
by the include/exclude globs (and hidden files) come out with a reason that
starts with ``"excluded"``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from ragguard._io import numbered_lines
from ragguard._text import clean_text
from ragguard.errors import UsageError
from ragguard.retrieval.documents import Document, sha256_bytes

__all__ = ["SUFFIXES", "EXCLUDED", "iter_documents", "detect_language", "decode_text", "source_ids", "excluded_by"]

_log = logging.getLogger("ragguard.loaders")

TEXT_SUFFIXES = (".md", ".markdown", ".txt")
HTML_SUFFIXES = (".html", ".htm")
TABLE_SUFFIXES = (".jsonl", ".csv")
SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + (".pdf", ".docx") + TABLE_SUFFIXES
EXCLUDED = "excluded"

Item = tuple[Document | None, str, str | None]


def source_ids(source: str | Path) -> tuple[Path, str]:
    """The folder that document ids are relative to, and the id prefix of ``source``.

    A folder ``docs`` gives ids ``docs/…`` (``.`` gives the current folder's own name, as its parent
    would); a single file gives its own name.
    """
    root = Path(source)
    if root.is_dir():
        return root, f"{root.name or root.resolve().name}/"
    return root.parent, root.name


def check_distinct_sources(sources: Sequence[str | Path]) -> None:
    """Refuse two sources that are different folders or files with one name: their documents would share ids.

    ``x/docs`` and ``y/docs`` both give ids ``docs/…``, so one's ``info.txt`` would silently replace the other's.

    Raises:
        UsageError: naming both sources and the id they share.
    """
    from ragguard.errors import UsageError

    seen: dict[str, tuple[str | Path, Path]] = {}
    for source in sources:
        _, ident = source_ids(source)
        where = Path(source).resolve()
        if ident in seen and seen[ident][1] != where:
            raise UsageError(f"sources {str(seen[ident][0])!r} and {str(source)!r} would both give document ids "
                             f"{ident!r}...: index their common parent folder instead, or one of them under "
                             "another name")
        seen.setdefault(ident, (source, where))


def iter_documents(
    sources: Iterable[str | Path],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Iterator[Item]:
    """Yield ``(document, path, skip_reason)`` for every file under ``sources``.

    Folders are walked recursively in sorted order. ``include`` and
    ``exclude`` are shell globs matched (``fnmatch``, so ``*`` also crosses
    ``/``) against the path relative to the source folder and against the
    file name; with ``include`` set, only matching files are read. Hidden
    files and folders (a name starting with ``.``) are left out.

    A file reached by several names (a symlink and its target, or one file
    passed twice) is read once, by its resolved path, under the name met
    first: sources in the order given, each walked in sorted order. The
    first name is kept, rather than the target's, so that a document's id does
    not depend on which of the names is the link; the others are reported as
    excluded ("same file as ...").

    Raises:
        UsageError: a source does not exist.
    """
    seen: dict[Path, str] = {}  # resolved path -> the doc id it was read under
    for source in sources:
        root = Path(source)
        if not root.exists():
            raise UsageError(
                f"source {str(root)!r} does not exist: pass a folder or file of documents "
                f"({', '.join(SUFFIXES)})"
            )
        if root.is_dir():
            entries = sorted(_walk(root), key=lambda e: e[0])
        else:
            entries = [(root.name, root, None if root.is_file() else _not_a_file(root))]
        for rel, path, problem in entries:
            doc_id = source_ids(root)[1] + rel if root.is_dir() else rel
            if not _utf8(doc_id):  # an old archive's Latin-1 name: an id must be text that JSON can hold
                shown = doc_id.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                yield None, shown, "its name is not UTF-8: rename the file to index it"
                continue
            if root.is_dir():
                # A folder's include globs cannot be judged (they match files), so an unreadable folder is listed.
                folder = rel.endswith("/")
                why = excluded_by(rel.rstrip("/"), () if folder else include, exclude)
                if why:
                    yield None, doc_id, why
                    continue
            if problem:
                yield None, doc_id, problem
                continue
            real = path.resolve()
            if real in seen:
                yield None, doc_id, f"{EXCLUDED}: same file as {seen[real]}"
                continue
            seen[real] = doc_id
            yield from _read_file(path, doc_id)


def _walk(root: Path) -> Iterator[tuple[str, Path, str | None]]:
    """``(relative path, path, problem)`` of every file under the folder ``root``, in no particular order.

    Symlinked folders are followed, except one that leads back to a folder it is inside (a loop: its
    files are read under the outer name; it comes out excluded). What cannot be read comes with a
    problem instead of being left out: a folder that cannot be listed (its relative path ends in
    ``/``), a broken symlink, and a FIFO, socket or device.
    """

    def walk(folder: Path, rel: str, above: dict[Path, str]) -> Iterator[tuple[str, Path, str | None]]:
        try:
            with os.scandir(folder) as listing:
                names = sorted(entry.name for entry in listing)
        except OSError as exc:
            yield rel, folder, f"folder cannot be read ({exc.strerror or exc}); its files were not read"
            return
        for name in names:
            path, sub = folder / name, rel + name
            try:
                is_dir, is_file = path.is_dir(), path.is_file()  # through symlinks
                real = path.resolve() if is_dir else None
            except (OSError, RuntimeError) as exc:
                yield sub, path, f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
                continue
            if real is not None and real in above:
                yield sub + "/", path, f"{EXCLUDED}: link to {above[real]}, a folder it is inside"
            elif real is not None:
                yield from walk(path, sub + "/", {**above, real: prefix + sub + "/"})
            elif not is_file:
                yield sub, path, _not_a_file(path)
            else:
                yield sub, path, None

    prefix = source_ids(root)[1]
    yield from walk(root, "", {root.resolve(): prefix})


def _not_a_file(path: Path) -> str:
    """Why ``path``, which is neither a folder nor a regular file (through symlinks), is not read."""
    if path.is_symlink() and not path.exists():
        return f"broken symlink (to {os.readlink(path)!r}, which cannot be found)"
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file")
    return f"not a regular file ({kind})"


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def excluded_by(rel: str, include: Sequence[str], exclude: Sequence[str]) -> str | None:
    """Why the file at ``rel`` (relative to its source folder) is left out by the globs or as hidden; None: read."""
    name = rel.rsplit("/", 1)[-1]
    if any(part.startswith(".") for part in rel.split("/")):
        return f"{EXCLUDED}: hidden"
    if include and not any(fnmatch(rel, g) or fnmatch(name, g) for g in include):
        return f"{EXCLUDED}: matches no --include glob"
    for g in exclude:
        if fnmatch(rel, g) or fnmatch(name, g):
            return f"{EXCLUDED}: matches --exclude {g!r}"
    return None


def _read_file(path: Path, doc_id: str) -> Iterator[Item]:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        yield None, doc_id, f"unsupported file type {path.suffix or '(none)'}"
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        yield None, doc_id, f"cannot be read ({exc.strerror or exc})"
        return
    if not data.strip():
        yield None, doc_id, "empty file"
        return
    digest = sha256_bytes(data)
    if suffix == ".pdf":
        text, reason = _pdf_text(data)
    elif suffix == ".docx":
        text, reason = _docx_text(data)
    else:
        text, reason = decode_text(data)
    if text is None:
        yield None, doc_id, reason
        return
    if suffix in TABLE_SUFFIXES:
        yield from _faq_rows(text, suffix, doc_id, digest)
        return
    meta: dict[str, Any] = {}
    if suffix in HTML_SUFFIXES:
        from ragguard.retrieval.html_text import html_to_text

        text = html_to_text(_BLOB.sub("", text))
    elif suffix in (".md", ".markdown"):
        text, meta = _front_matter(text, doc_id)
        text = _BLOB.sub("", _markdown_images(text))
    else:
        text = _BLOB.sub("", text)
    if not text.strip():
        yield None, doc_id, "no text in the page" if suffix in HTML_SUFFIXES else "empty file"
        return
    yield _document(doc_id, doc_id, text, digest, meta), doc_id, None


# An inline image is not text: ![alt](data:...), <img src="data:..." alt="...">, a [ref]: data:... line.
_MD_DATA = re.compile(r"!?\[([^\]\n]*)\]\(\s*<?data:[^)\s]*>?(?:\s+\"[^\"\n]*\")?\s*\)")
_IMG_DATA = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*[\"']?data:[^>]*>", re.I)
_ALT = re.compile(r"\balt\s*=\s*(\"[^\"]*\"|'[^']*')", re.I)
_REF_DATA = re.compile(r"^ {0,3}\[[^\]\n]+\]:[ \t]*<?data:.*\n?", re.M)
# A data URI anywhere, and a 1000-character "word" of base64: encoded files, not text.
_BLOB = re.compile(r"\bdata:[\w.+-]+/[\w.+-]+(?:;[\w.+-]+=[\w.+-]+)*(?:;base64)?,[A-Za-z0-9+/=%_-]{32,}"
                   r"|(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{1000,}={0,2}")


def _markdown_images(text: str) -> str:
    """Inline data-URI images of a Markdown text replaced by their alt text."""
    if "data:" not in text:
        return text
    text = _MD_DATA.sub(lambda m: m.group(1).strip(), text)
    text = _IMG_DATA.sub(lambda m: (alt.group(1)[1:-1].strip() if (alt := _ALT.search(m.group(0))) else ""), text)
    return _REF_DATA.sub("", text)


def _document(doc_id: str, source: str, text: str, digest: str, meta: dict[str, Any]) -> Document:
    # A JSON escape in a FAQ row can hold a lone surrogate; the embedder's tokenizer refuses those.
    text, warning = clean_text(text, f"source {doc_id!r}")
    if warning:
        _log.warning("%s", warning)
    lang = meta.get("lang") or meta.get("language")
    return Document(
        doc_id=doc_id,
        text=text,
        sha256=digest,
        source=source,
        lang=str(lang).strip().lower() if lang else detect_language(text),
        tags=_tags(meta.get("tags")),
    )


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else re.split(r"[,;]", str(value))
    return tuple(sorted({str(t).strip() for t in items if str(t).strip()}))


# ------------------------------------------------------------------ decoding
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def decode_text(data: bytes) -> tuple[str | None, str | None]:
    """``(text, None)`` or ``(None, reason)``: UTF-8 (BOM dropped), UTF-16 (with a BOM or recognised), else detected."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), None
        except UnicodeDecodeError:
            return None, "undecodable text (broken UTF-16)"
    if b"\x00" in data[:8192]:
        text = _utf16_without_bom(data)
        return (text, None) if text is not None else (None, "binary file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = _western(data)
    if text is None:
        from charset_normalizer import from_bytes

        matches = from_bytes(data)
        best = matches.best()
        if best is None:
            return None, "undecodable text (no encoding fits; save it as UTF-8)"
        text = str(best)
    if len(_CONTROL.findall(text[:8192])) > 0.05 * max(1, len(text[:8192])):
        return None, "binary file"
    return text, None


def _utf16_without_bom(data: bytes) -> str | None:
    """``data`` as UTF-16 when it looks like it (no byte-order mark), else None.

    In UTF-16 text, ASCII characters give a NUL at every other byte (a few others, such as 一 U+4E00, one
    at the other offsets); binary files have NULs at even and odd offsets alike. So: most NULs at one
    parity, an even length, strict decoding, and printable text (a binary's NUL pairs read as U+0000).
    """
    sample = data[:8192]
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if len(data) % 2 or max(even, odd) < 2 or max(even, odd) <= 4 * min(even, odd):
        return None
    try:
        text = data.decode("utf-16-le" if odd else "utf-16-be")
    except UnicodeDecodeError:
        return None
    head = text[:4096]
    printable = sum(c.isprintable() or c.isspace() for c in head)
    return text if printable >= 0.98 * len(head) else None


_WESTERN_EXTRA = set("ŒœŠšŸŽž‘’‚“”„–—…€«»‹›°")


def _western(data: bytes) -> str | None:
    """The cp1252 reading of ``data`` when it looks like Western text, else None.

    Detectors guess poorly on short Latin-1/cp1252 texts (``café`` fits a dozen
    code pages), so these are tried first: every run of non-ASCII characters is
    at most two accented letters or typographic marks, inside mostly ASCII words.
    """
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    runs = re.findall(r"[^\x00-\x7f]+", text)
    if not runs or any(len(r) > 2 for r in runs):
        return None
    if not all((c.isalpha() and "\u00c0" <= c <= "\u00ff") or c in _WESTERN_EXTRA for r in runs for c in r):
        return None
    ascii_letters = len(re.findall(r"[A-Za-z]", text))
    return text if ascii_letters >= 2 * sum(len(r) for r in runs) else None


# ------------------------------------------------------------------ formats
def _pdf_text(data: bytes) -> tuple[str | None, str | None]:
    import logging

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # broken files are reported as skipped instead
    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            return None, "encrypted PDF"
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except Exception as exc:  # pypdf raises many types on broken files
        return None, f"cannot read PDF ({type(exc).__name__})"
    text = "\n\n".join(p for p in pages if p)
    if not text.strip():
        return None, "PDF has no text layer (a scan? run OCR first)"
    return text, None


def _docx_text(data: bytes) -> tuple[str | None, str | None]:
    try:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        document = docx.Document(io.BytesIO(data))
        parts: list[str] = []
        for element in document.element.body.iterchildren():
            tag = element.tag.rsplit("}", 1)[-1]
            if tag == "p":
                para = Paragraph(element, document)
                text = para.text.strip()
                if not text:
                    continue
                style = (para.style.name if para.style is not None else "") or ""
                level = re.fullmatch(r"Heading (\d)", style)
                if level or style == "Title":
                    text = "#" * (int(level.group(1)) if level else 1) + " " + text
                parts.append(text)
            elif tag == "tbl":
                rows = [" | ".join(c.text.strip() for c in row.cells) for row in Table(element, document).rows]
                parts.append("\n".join(r for r in rows if r.strip(" |")))
    except Exception as exc:  # python-docx raises many types on broken files
        return None, f"cannot read DOCX ({type(exc).__name__})"
    text = "\n\n".join(p for p in parts if p)
    if not text.strip():
        return None, "empty file"
    return text, None


_QUESTION_KEYS = ("question", "q")
_ANSWER_KEYS = ("answer", "a")


def _faq_rows(text: str, suffix: str, source: str, digest: str) -> Iterator[Item]:
    """One document per question/answer row, ids ``SOURCE:N`` (N = 1-based row number)."""
    rows: list[tuple[int, Any]] = []
    lines: dict[int, int] = {}  # csv: the file line where each row ends (a quoted cell may span lines)
    if suffix == ".jsonl":
        for n, line in enumerate((ln for _, ln in numbered_lines(text) if ln.strip()), 1):
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError:
                rows.append((n, None))
    else:
        reader = csv.DictReader(io.StringIO(text))
        for n, row in enumerate(reader, 1):
            rows.append((n, row))
            lines[n] = reader.line_num
    docs: list[Item] = []
    bad: list[Item] = []
    for n, row in rows:
        row_id = f"{source}:{n}"
        if not isinstance(row, dict):
            bad.append((None, row_id, "row is not a JSON object"))
            continue
        if row.get(None):  # csv: more cells than the header (an unquoted comma cut a cell in two)
            cells = len(row) - 1 + len(row[None])
            bad.append((None, row_id, f"row (line {lines[n]}) has {cells} cells but the header {len(row) - 1}: "
                                      "quote a cell that holds a comma; the row was not read"))
            continue
        lower = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
        question = next((lower[k] for k in _QUESTION_KEYS if k in lower), None)
        answer = next((lower[k] for k in _ANSWER_KEYS if k in lower), None)
        if not isinstance(question, str) or not isinstance(answer, str) or not question.strip() or not answer.strip():
            bad.append((None, row_id, "row has no question or no answer"))
            continue
        body = f"# {' '.join(question.split())}\n\n{answer.strip()}"
        docs.append((_document(row_id, source, body, digest, lower), row_id, None))
    if not docs:
        yield None, source, "no question/answer rows (a FAQ table needs question and answer columns)"
        return
    yield from docs
    yield from bad


_KEY_LINE = re.compile(r"[A-Za-z_][\w-]*[ \t]*:")


def _front_matter(text: str, doc_id: str) -> tuple[str, dict[str, Any]]:
    """Split a leading ``---`` YAML block (tags, lang) from a Markdown text.

    A block that is not a YAML mapping stays in the text (nothing is lost). When it opens like one
    (``key:``) but does not parse, a warning names the file and the line: its tags and language would
    otherwise be dropped without a word.
    """
    match = re.match(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*\r?\n", text, re.S)  # CRLF: a file saved on Windows
    if not match:
        return text, {}
    import yaml

    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        if not _KEY_LINE.match(match.group(1).lstrip()):
            return text, {}  # prose between two rules, not a front matter gone wrong
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 2}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        _log.warning("source %r: its front matter is not valid YAML (%s%s): indexed as text, its tags and lang "
                     "are not read; fix the block between the --- lines", doc_id, where, problem)
        return text, {}
    if not isinstance(meta, dict):
        return text, {}
    return text[match.end() :], {str(k).lower(): v for k, v in meta.items()}


# ------------------------------------------------------------------ language
def detect_language(text: str) -> str:
    """A language code guessed from the script: zh, ja, ko, ru, else en.

    Latin-script text is labelled ``en``; set ``lang:`` in Markdown front
    matter or a ``lang`` column of a FAQ table for anything finer.
    """
    sample = text[:4000]
    han = len(re.findall(r"[\u3400-\u9fff]", sample))
    kana = len(re.findall(r"[\u3040-\u30ff]", sample))
    hangul = len(re.findall(r"[\uac00-\ud7af]", sample))
    cyrillic = len(re.findall(r"[\u0400-\u04ff]", sample))
    latin = len(re.findall(r"[A-Za-z]", sample))
    if kana and kana * 10 >= han:
        return "ja"
    scores = {"zh": han * 2, "ko": hangul * 2, "ru": cyrillic, "en": latin}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] > 0 else "en"
