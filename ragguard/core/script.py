"""Traditional Chinese read as Simplified, so one set of Chinese cues serves both scripts.

The detectors' Chinese cues (需要/不需要, 个月, 银行 ...), the grounding's character
bigrams and the reference rules are written in Simplified characters. An answer in
Traditional characters (三個月, 招商銀行) would slip past all of them, and a Traditional
passage would share no bigram with a Simplified answer. :func:`simplified` maps each
Traditional character to its Simplified form, one character for one, so positions in the
folded text are positions in the original and a quoted span can be taken from the text as
written.

The character table is OpenCC's (``TSCharacters.txt``, Apache-2.0), read from the
``opencc-python-reimplemented`` package. When that file is not there (another ``opencc``
package installed in its place), text is left as it is: Simplified Chinese and every other
language read exactly as before, Traditional as it did before this fold existed.
"""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path

__all__ = ["simplified", "has_traditional_table"]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@lru_cache(maxsize=1)
def _table() -> dict[int, str]:
    spec = importlib.util.find_spec("opencc")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "dictionary" / "TSCharacters.txt"
        if path.is_file():
            table: dict[int, str] = {}
            for line in path.read_text(encoding="utf-8").splitlines():
                traditional, _, forms = line.partition("\t")
                first = forms.split(" ")[0] if forms else ""
                if len(traditional) == 1 and len(first) == 1 and first != traditional:
                    table[ord(traditional)] = first
            return table
    return {}


def has_traditional_table() -> bool:
    """Whether the Traditional-to-Simplified table was found (see the module docstring)."""
    return bool(_table())


def simplified(text: str) -> str:
    """``text`` with each Traditional Chinese character replaced by its Simplified form (same length)."""
    if not _CJK.search(text):
        return text
    return text.translate(_table())
