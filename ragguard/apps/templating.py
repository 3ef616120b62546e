"""One Jinja2 environment for every page ragguard renders (audit report, serve's page).

Templates live in ``ragguard/apps/templates/``. Autoescaping is on for every
template, and an undefined name is an error rather than an empty string, so a
template that drifts from its caller fails loudly in the tests.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["TEMPLATES", "render", "script_json"]

TEMPLATES = Path(__file__).with_name("templates")


def script_json(value: Any) -> str:
    """JSON safe to embed inside an inline ``<script>`` element.

    ``<``, ``>`` and ``&`` are written as ``\\u`` escapes so that no value can
    close the script element or open a comment.
    """
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@lru_cache(maxsize=1)
def _environment():  # type: ignore[no-untyped-def]
    # Imported here: jinja2 is only needed when a page is rendered, and `import ragguard` stays light.
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["script_json"] = lambda value: Markup(script_json(value))
    return env


def render(name: str, **context: Any) -> str:
    """Render the template ``name`` (a file in ``ragguard/apps/templates/``) with ``context``."""
    return _environment().get_template(name).render(**context)
