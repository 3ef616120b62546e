"""Main text of an HTML page, with headings kept as Markdown-style lines (stdlib only).

Scripts, styles, navigation, headers, footers and forms are dropped;
headings become ``#`` lines so the chunker keeps each heading with the
paragraphs under it; block elements end paragraphs.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

_SKIP = {"script", "style", "nav", "header", "footer", "form", "noscript", "template", "svg", "button", "select",
         "title", "head"}
_BLOCK = {"p", "div", "li", "tr", "table", "section", "article", "blockquote", "pre", "dd", "dt", "ul", "ol", "br",
          "main", "aside", "figure", "figcaption", "hr"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


_SKIP_CLASS = re.compile(r"\b(toc|navheader|navfooter|breadcrumbs?|menu|sidebar|nav|skip-?link|cookie)\b", re.I)
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[tuple[str, bool]] = []  # (tag, whether it started a skipped region)
        self.skip_depth = 0
        self.heading: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = " ".join(v or "" for k, v in attrs if k in ("class", "id", "role"))
        skipping = tag in _SKIP or bool(_SKIP_CLASS.search(classes))
        if tag not in _VOID:
            self.stack.append((tag, skipping))
            if skipping:
                self.skip_depth += 1
        if self.skip_depth:
            return
        if tag in _HEADINGS:
            self.heading = _HEADINGS[tag]
            self.parts.append("\n\n" + "#" * self.heading + " ")
        elif tag in _BLOCK:
            self.parts.append("\n\n" if tag != "li" else "\n\n- ")

    def handle_endtag(self, tag: str) -> None:
        if not any(t == tag for t, _ in self.stack):
            return  # a stray end tag
        while self.stack:
            open_tag, skipping = self.stack.pop()
            if skipping:
                self.skip_depth -= 1
            if open_tag == tag:
                break
        if self.skip_depth:
            return
        if tag in _HEADINGS and self.heading is not None:
            self.heading = None
            self.parts.append("\n\n")
        elif tag in _BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """The readable text of ``html`` (empty when it has none)."""
    parser = _Extractor()
    parser.feed(html)
    parser.close()
    raw = "".join(parser.parts)
    paragraphs = []
    for block in re.split(r"\n\s*\n", raw):
        line = " ".join(block.split())
        if line and line not in ("-", "#"):
            paragraphs.append(line)
    return "\n\n".join(paragraphs)
