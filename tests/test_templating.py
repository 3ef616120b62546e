"""The shared template environment escapes values and refuses undefined names."""

from __future__ import annotations

import json

import pytest

from ragguard.apps.templating import render, script_json


def test_values_are_escaped_in_text_and_in_inline_json() -> None:
    hostile = "</script><img src=x onerror=alert(1)>&"
    page = render("_escape_check.html.j2", value=hostile, data={"answer": hostile})
    assert "<img" not in page and "</script><img" not in page
    assert "&lt;/script&gt;&lt;img" in page
    inline = page.split("const data = ", 1)[1].split(";</script>", 1)[0]
    assert json.loads(inline) == {"answer": hostile}


def test_script_json_refuses_nan_and_keeps_chinese_readable() -> None:
    assert script_json({"q": "需要证明吗"}) == '{"q": "需要证明吗"}'
    with pytest.raises(ValueError):
        script_json({"x": float("nan")})


def test_an_undefined_name_is_an_error() -> None:
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        render("_escape_check.html.j2", data={})
