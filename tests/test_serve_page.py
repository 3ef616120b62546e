"""``GET /``: serve's page is one self-contained HTML document, open without the key, under a strict CSP.

In process (FastAPI's test client) over the fast pipeline of ``serve_fakes``; the page in a real
browser is tests/test_page_browser.py.
"""

from __future__ import annotations

import re

import pytest
from serve_fakes import build_guard

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from ragguard.apps.serve import ServeSettings, create_app  # noqa: E402
from ragguard.apps.serve.page import content_security_policy, render_page  # noqa: E402
from ragguard.endpoints import Refusals  # noqa: E402

KEY = "page-test-key"


def client_for(settings: ServeSettings) -> TestClient:
    return TestClient(create_app(build_guard(), settings))


@pytest.fixture(scope="module")
def open_client():  # type: ignore[no-untyped-def]
    with client_for(ServeSettings(max_samples=12)) as client:
        yield client


def test_the_page_is_html_in_utf8_with_a_strict_policy(open_client: TestClient) -> None:
    response = open_client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'" and directives["connect-src"] == "'self'"
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]{16,})'", directives["script-src"]).group(1)
    assert directives["style-src"] == f"'nonce-{nonce}'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    page = response.text
    assert '<meta charset="utf-8">' in page
    # Every executable script and style carries this response's nonce; nothing else could run.
    scripts = re.findall(r"<script([^>]*)>", page)
    assert [s for s in scripts if 'type="application/json"' not in s] == [f' nonce="{nonce}"']
    assert re.findall(r"<style([^>]*)>", page) == [f' nonce="{nonce}"']
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", page)  # no inline event handlers (the CSP would block them)
    # A fresh nonce each time (a nonce that repeats is no protection).
    assert open_client.get("/").headers["content-security-policy"] != policy


def test_the_page_loads_nothing_from_elsewhere(open_client: TestClient) -> None:
    page = open_client.get("/").text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    assert "@import" not in page and "url(" not in page
    assert not re.search(r"<(link|script)[^>]*(src|href)=\"(?!data:)", page)
    # The script posts to this server's /ask, relative to the page.
    assert 'fetch("ask"' in page
    # Values are put in the page as text, never parsed as HTML.
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page and "document.write" not in page


def test_the_page_carries_the_limits_and_the_servers_refusals(open_client: TestClient) -> None:
    page = open_client.get("/").text
    assert 'max="12"' in page  # ServeSettings.max_samples
    assert 'placeholder="default 5"' in page  # the config's samples
    assert "The knowledge base has nothing on this." in page
    custom = ServeSettings(refusals=Refusals(off_topic="Nothing on this </script><b>here</b>, sorry."))
    with client_for(custom) as client:
        page = client.get("/").text
    # The refusal rides in a JSON block, escaped so that it cannot close the script element.
    assert "Nothing on this \\u003c/script\\u003e\\u003cb\\u003ehere\\u003c/b\\u003e, sorry." in page
    assert "<b>here</b>" not in page


def test_the_page_asks_for_a_key_only_when_the_server_has_one(open_client: TestClient) -> None:
    assert '<span id="key-box" hidden>' in open_client.get("/").text
    with client_for(ServeSettings(api_key=KEY)) as client:
        response = client.get("/")  # no Authorization header: the page must load to ask for the key
        assert response.status_code == 200
        assert '<span id="key-box">' in response.text
        assert KEY not in response.text
        refused = client.post("/ask", json={"question": "How many days of annual leave do I get?"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        answered = client.post("/ask", json={"question": "How many days of annual leave do I get?"},
                               headers={"Authorization": f"Bearer {KEY}"})
        assert answered.status_code == 200 and answered.json()["answer"]


def test_the_template_renders_and_escapes_its_context() -> None:
    context = {"needs_key": False, "max_samples": 3, "default_samples": 3, "default_seed": 0,
               "refusals": {"off_topic": "<i>x</i>", "disagree": "d {answers}", "empty": "e"}}
    page = render_page(context, nonce="abc")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert '<script nonce="abc">' in page and "<i>x</i>" not in page
    with pytest.raises(Exception, match="default_seed"):
        render_page({k: v for k, v in context.items() if k != "default_seed"}, nonce="abc")
    assert "'nonce-abc'" in content_security_policy("abc")


def test_chinese_is_sent_as_utf8() -> None:
    with client_for(ServeSettings(refusals=Refusals(off_topic="知识库里没有相关内容。"))) as client:
        response = client.get("/")
        assert "知识库里没有相关内容。".encode() in response.content  # readable UTF-8, not \u escapes
        record = client.post("/ask", json={"question": "年假有多少天？"}).json()
    assert record["question"] == "年假有多少天？"


def test_the_page_answers_get_only(open_client: TestClient) -> None:
    response = open_client.post("/")
    assert response.status_code == 405 and "error" in response.json()


def test_long_urls_and_paths_wrap_instead_of_widening_the_page() -> None:
    page = render_page({"needs_key": False, "max_samples": 8, "default_samples": 5, "default_seed": 0,
                        "refusals": {"off_topic": "o", "disagree": "d {answers}", "empty": "e"}}, "n0nce")
    rule = re.search(r"([^{}]*)\{ overflow-wrap: anywhere; \}", re.sub(r"/\*.*?\*/", "", page, flags=re.S))
    assert rule
    selectors = {s.strip() for s in rule.group(1).split(",")}
    assert {".answer", ".text", ".explanation", ".source b", ".warnings li", "#asked"} <= selectors


def test_placeholders_read_as_examples_and_defaults_and_fields_use_16_px() -> None:
    """A placeholder that looks like a value made the question box look filled; 15-px fields make iOS zoom."""
    page = render_page({"needs_key": False, "max_samples": 8, "default_samples": 5, "default_seed": 0,
                        "refusals": {"off_topic": "o", "disagree": "d {answers}", "empty": "e"}}, "n0nce")
    placeholders = dict(re.findall(r'id="(\w+)"[^>]*?placeholder="([^"]*)"', page.replace("\n", " ")))
    assert placeholders == {"question": "e.g. How many days of annual leave do I get?", "samples": "default 5",
                            "seed": "default 0"}
    assert "textarea, input { font-size: 16px; }" in page
