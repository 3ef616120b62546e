"""Main text of an HTML page, with headings kept as Markdown-style lines (stdlib only).

Scripts, styles, navigation, headers, footers and forms are dropped;
headings become ``#`` lines so the chunker keeps each heading with the
paragraphs under it; block elements end paragraphs; a table row becomes one
line ``cell | cell | cell`` (as the DOCX reader writes them), except in a
table used for layout (a cell holds headings, lists, tables or several
paragraphs), whose cells stay paragraphs; ``<pre>`` keeps its line breaks and
indentation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

__all__ = ["html_to_text"]

_SKIP = {"script", "style", "nav", "header", "footer", "form", "noscript", "template", "svg", "button", "select",
         "title", "head"}
_BLOCK = {"p", "div", "li", "tr", "table", "section", "article", "blockquote", "pre", "dd", "dt", "ul", "ol", "br",
          "main", "aside", "figure", "figcaption", "hr"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


_SKIP_CLASS = re.compile(r"\b(toc|navheader|navfooter|breadcrumbs?|menu|sidebar|nav|skip-?link|cookie)\b", re.I)
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}
# A cell holding one of these (or several paragraphs) makes its table a layout, not rows of data.
_LAYOUT = set(_HEADINGS) | {"table", "ul", "ol", "dl", "pre", "blockquote", "hr", "section", "article", "main",
                            "aside", "figure"}
# Inside one paragraph: a line break and a space or tab of <pre> text, which the whitespace clean-up must keep.
_LINE, _SPACE, _TAB = "\ue000", "\ue001", "\ue002"
_KEPT = str.maketrans({_SPACE: " ", _TAB: "\t"})


@dataclass
class _Table:
    outside: list[str]  # the parts the table is written into when it ends
    rows: list[list[list[str]]] = field(default_factory=list)  # row -> cell -> parts
    caption: list[str] = field(default_factory=list)  # text before the first cell
    layout: bool = False
    paragraphs: int = 0  # p/div started in the current cell


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[tuple[str, bool]] = []  # (tag, whether it started a skipped region)
        self.skip_depth = 0
        self.heading: int | None = None
        self.tables: list[_Table] = []
        self.pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = " ".join(v or "" for k, v in attrs if k in ("class", "id", "role"))
        skipping = tag in _SKIP or bool(_SKIP_CLASS.search(classes))
        if tag not in _VOID:
            self.stack.append((tag, skipping))
            if skipping:
                self.skip_depth += 1
        if self.skip_depth:
            return
        table = self.tables[-1] if self.tables else None
        if table and (tag in _LAYOUT or (tag in ("p", "div") and table.paragraphs)):
            table.layout = True
        if tag == "table":
            self.tables.append(_Table(self.parts))
            self.parts = self.tables[-1].caption
        elif table and tag == "tr":
            table.rows.append([])
        elif table and tag in ("td", "th"):
            if not table.rows:
                table.rows.append([])
            table.rows[-1].append([])
            table.paragraphs = 0
            self.parts = table.rows[-1][-1]
        elif tag in _HEADINGS:
            self.heading = _HEADINGS[tag]
            self.parts.append("\n\n" + "#" * self.heading + " ")
        elif tag in _BLOCK:
            self.parts.append("\n\n" if tag != "li" else "\n\n- ")
        if table and tag in ("p", "div"):
            table.paragraphs += 1
        if tag == "pre":
            self.pre_depth += 1
        elif tag == "br" and self.pre_depth:
            self.parts.append(_LINE)

    def handle_endtag(self, tag: str) -> None:
        if not any(t == tag for t, _ in self.stack):
            return  # a stray end tag
        while self.stack:
            open_tag, skipping = self.stack.pop()
            if not self.skip_depth:
                self._closed(open_tag)
            if skipping:
                self.skip_depth -= 1
            if open_tag == tag:
                break
        if self.skip_depth:
            return
        if tag in _HEADINGS and self.heading is not None:
            self.heading = None
            self.parts.append("\n\n")
        elif tag in _BLOCK and tag not in ("table", "tr"):
            self.parts.append("\n\n")

    def _closed(self, tag: str) -> None:
        """Leave a table or ``<pre>``, also when an end tag further out closes it."""
        if tag == "table" and self.tables:
            table = self.tables.pop()
            self.parts = table.outside
            self.parts.append("\n\n" + _table_text(table) + "\n\n")
        elif tag == "pre" and self.pre_depth:
            self.pre_depth -= 1

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        data = re.sub(f"[{_LINE}{_SPACE}{_TAB}]", "", data)
        if self.pre_depth:
            lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            self.parts.append(_LINE.join(ln.replace(" ", _SPACE).replace("\t", _TAB) for ln in lines))
        else:
            self.parts.append(re.sub(r"\s+", " ", data))


def _table_text(table: _Table) -> str:
    """A data table as one paragraph, a line ``cell | cell`` per row; a layout table's cells as paragraphs."""
    caption = "".join(table.caption)
    if table.layout:
        return "\n\n".join([caption] + ["".join(cell) for row in table.rows for cell in row])
    lines = [" ".join(caption.split())]
    for row in table.rows:
        cells = [" ".join("".join(cell).split()) for cell in row]
        while cells and not cells[-1]:
            cells.pop()
        while cells and not cells[0]:  # DocBook puts an icon's empty cell before "Note"
            cells.pop(0)
        lines.append(" | ".join(cells))
    return _LINE.join(line for line in lines if line)


def html_to_text(html: str) -> str:
    """The readable text of ``html`` (empty when it has none)."""
    parser = _Extractor()
    parser.feed(html)
    parser.close()
    while parser.tables:  # a table left open at the end of the page
        parser._closed("table")
    raw = "".join(parser.parts)
    paragraphs = []
    for block in re.split(r"\n\s*\n", raw):
        lines = [" ".join(line.split()).translate(_KEPT).rstrip() for line in block.split(_LINE)]
        text = "\n".join(ln for ln in lines if ln)
        if text and not re.fullmatch(r"-|#+", text):  # an empty list item or heading
            paragraphs.append(text)
    return "\n\n".join(paragraphs)
