"""serve's page in a real headless Chromium against a real uvicorn server on loopback.

The server runs in a thread and serves a fake pipeline whose sampled answers contradict the greedy
one ("25 days" against "30 days"), answers a Chinese question in Chinese, waits on an event for a
question that contains "slow", and abstains on a question that shares no word with its passages.
Needs Debian's chromium and chromium-driver; skipped where they are missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import colours, contrast, emulate, headless_chromium
from serve_fakes import ListRetriever, SimulatedGenerator
from servers import free_port

from ragguard.config import Config
from ragguard.core.protocols import Completion
from ragguard.pipeline import RagGuard

pytestmark = pytest.mark.slow

KEY = "browser-test-key"
LEAVE = "How many days of annual leave do I get?"
ZH = "年假有多少天？"
OFF_TOPIC = "zebra quantum saxophone"
HOSTILE = '<img src=x id=injected> & <b id="bold">not bold</b>'
# Set RAGGUARD_SCREENSHOT_DIR to keep a copy of the page's screenshot (to look at it).
SCREENSHOT_DIR = os.environ.get("RAGGUARD_SCREENSHOT_DIR")
PASSAGES = [
    ("leave-annual.md", "Every employee gets 25 days of annual leave per calendar year."),
    ("zh-leave.md", "员工每年享有十五天带薪年假。"),
    ("it-vpn.md", "Connect to the office network from home with the VPN client and your hardware token."),
]
RELEASE = threading.Event()  # a "slow" question waits for it


def answers_for(question: str) -> tuple[str, str]:
    """The greedy answer and the one every other sample gives."""
    if "年假" in question:
        return "员工每年享有十五天带薪年假。", "员工每年享有十五天带薪年假，需要提前申请。"
    if "html" in question:
        return HOSTILE, HOSTILE
    return "You get 25 days of annual leave per year.", "You get 30 days of annual leave per year."


class PageGenerator(SimulatedGenerator):
    """Sample ``k`` of a question answers its greedy answer for even ``k``, the other one for odd ``k``."""

    name = "page-fake"

    def generate_batch(self, conversations: Sequence[Sequence[dict[str, str]]],
                       seeds: Sequence[Sequence[int | None]]) -> list[list[Completion]]:
        out = []
        for messages, row in zip(conversations, seeds, strict=True):
            question = self._question(messages)
            if "slow" in question:
                RELEASE.wait(60)
            first, other = answers_for(question)
            out.append([Completion(other if k % 2 else first, seed) for k, seed in enumerate(row)])
        return out


class CharEmbedder:
    """Bag of words and single CJK characters, hashed into 64 buckets (unit length)."""

    name = "char-embedder"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in re.findall(r"[a-z0-9]+|[\u4e00-\u9fff]", text.lower()):
                out[row, int(hashlib.sha256(token.encode()).hexdigest(), 16) % 64] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def build_guard() -> RagGuard:
    embedder = CharEmbedder()
    config = Config().replace("retrieval", min_score=0.2)  # the off-topic question abstains
    return RagGuard(config, PageGenerator(), embedder, ListRetriever(embedder, PASSAGES))


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    from ragguard.apps.serve import ServeSettings, create_app

    with serving(create_app(build_guard(), ServeSettings(api_key=KEY, max_batch=1))) as url:
        yield url
    RELEASE.set()


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` on a free loopback port in a thread; yields its URL."""
    uvicorn = pytest.importorskip("uvicorn")
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(15)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    with headless_chromium(1280, 1800) as driver:
        yield driver


def ask(browser: Any, url: str, question: str, key: str = KEY, samples: str = "", wait: bool = True) -> None:
    """Open the page, fill in the key, the question and the samples, and click Ask (then wait for its end)."""
    from selenium.webdriver.common.by import By

    browser.get(url + "/")
    browser.execute_script("sessionStorage.clear()")
    for name, value in (("api-key", key), ("question", question), ("samples", samples)):
        field = browser.find_element(By.ID, name)
        field.clear()
        if value:
            field.send_keys(value)
    browser.find_element(By.ID, "ask").click()
    if wait:
        finished(browser)


def finished(browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "ask").is_enabled()
                                     and (b.find_element(By.ID, "result").is_displayed()
                                          or b.find_element(By.ID, "error").is_displayed()))


def test_the_verdict_the_clusters_the_highlighted_contradiction_and_the_sources(
        server: str, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    assert browser.title == "ragguard"
    assert browser.find_element(By.ID, "api-key").is_displayed()  # the server has a key: the page asks for it
    ask(browser, server, LEAVE)
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert browser.find_element(By.ID, "verdict").text == "contradiction"
    assert "agreement 60%" in browser.find_element(By.ID, "figures").text
    assert browser.find_element(By.ID, "answer").text == "You get 25 days of annual leave per year."
    # Samples grouped by cluster, the voted cluster first, the greedy answer marked in it.
    clusters = browser.find_elements(By.CSS_SELECTOR, "#clusters .cluster")
    assert [len(c.find_elements(By.CSS_SELECTOR, ".sample")) for c in clusters] == [3, 2]
    assert "voted" in clusters[0].get_attribute("class")
    greedy = browser.find_elements(By.CSS_SELECTOR, "#clusters .sample .tag.greedy")
    assert len(greedy) == 1 and "25 days" in greedy[0].find_element(By.XPATH, "..").text
    # The contradiction quotes one span of each answer; each is in a <mark> inside its own answer.
    # Six pairs say "25 days" vs "30 days": one entry lists them.
    quantity, = browser.find_elements(By.CSS_SELECTOR, '.contradiction[data-kind="quantity"]')
    assert quantity.find_element(By.CLASS_NAME, "pairs").text.count(" and #") == 5
    sides = quantity.find_elements(By.CSS_SELECTOR, ".side")
    assert len(sides) == 2
    marks = [side.find_elements(By.TAG_NAME, "mark") for side in sides]
    assert sorted(m[0].text for m in marks) == ["25 days", "30 days"] and all(len(m) == 1 for m in marks)
    for side, found in zip(sides, marks, strict=True):
        assert found[0].text in side.find_element(By.CLASS_NAME, "text").text
    # Sources with their scores and the claim each supports (its supporting window highlighted).
    source = browser.find_element(By.CSS_SELECTOR, '#sources li[data-chunk="leave-annual.md#0"]')
    assert "score 0." in source.text and "supports “You get 25 days of annual leave per year.”" in source.text
    assert source.find_elements(By.CSS_SELECTOR, "mark.support")
    # The fingerprint is there, folded away.
    details = browser.find_element(By.ID, "fingerprint")
    assert details.get_attribute("open") is None and not details.find_element(By.TAG_NAME, "pre").is_displayed()
    details.find_element(By.TAG_NAME, "summary").click()
    assert '"model": "page-fake"' in details.find_element(By.TAG_NAME, "pre").text
    details.find_element(By.TAG_NAME, "summary").click()
    # Nothing but /ask was requested: no CDN, no font, no favicon.
    requested = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert requested == [f"{server}/ask"]
    shot = tmp_path / "page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    if SCREENSHOT_DIR:
        shutil.copyfile(shot, Path(SCREENSHOT_DIR) / "page.png")
    print(f"screenshot: {shot}")


def test_the_page_shows_it_is_working_and_takes_a_second_question(server: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    RELEASE.clear()
    ask(browser, server, f"{LEAVE} (slow)", wait=False)
    try:
        button = browser.find_element(By.ID, "ask")
        assert not button.is_enabled()
        assert browser.find_element(By.ID, "status").text.startswith("working")
        browser.find_element(By.ID, "ask-form").submit()  # a second submit while busy is ignored
    finally:
        RELEASE.set()
    finished(browser)
    assert browser.find_element(By.ID, "status").text == "answer ready: contradiction, agreement 60%"
    assert browser.find_element(By.ID, "asked").text.endswith("(slow)")
    # The next question runs once the first returned.
    browser.find_element(By.ID, "question").send_keys(" again")
    browser.find_element(By.ID, "ask").click()
    finished(browser)
    assert browser.find_element(By.ID, "asked").text.endswith("(slow) again")
    assert browser.find_element(By.ID, "verdict").text == "contradiction"


def test_an_abstention_shows_its_message(server: str, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    ask(browser, server, OFF_TOPIC)
    browser.save_screenshot(str(tmp_path / "page-abstain.png"))
    assert browser.find_element(By.ID, "verdict").text == "abstain"
    assert browser.find_element(By.ID, "abstention").text == "The knowledge base has nothing on this."
    assert not browser.find_elements(By.ID, "answer") and not browser.find_elements(By.ID, "clusters")
    assert "below retrieval.min_score 0.2" in browser.find_element(By.ID, "warnings").text


def test_a_wrong_key_shows_the_servers_401_message_and_stays_in_the_tab(
        server: str, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    ask(browser, server, LEAVE, key="not-the-key")
    browser.save_screenshot(str(tmp_path / "page-401.png"))
    assert browser.find_element(By.ID, "error-code").text == "401"
    assert browser.find_element(By.ID, "error-message").text == (
        "missing or wrong API key: send the header 'Authorization: Bearer <RAGGUARD_API_KEY>'")
    assert not browser.find_element(By.ID, "result").is_displayed()
    store = browser.execute_script("return [sessionStorage.getItem('ragguard.apiKey'), localStorage.length]")
    assert store == ["not-the-key", 0]
    browser.refresh()  # the key stays for the tab
    assert browser.find_element(By.ID, "api-key").get_attribute("value") == "not-the-key"
    browser.find_element(By.ID, "forget-key").click()
    assert browser.execute_script("return sessionStorage.getItem('ragguard.apiKey')") is None
    # A request the server refuses for its value shows the server's own message too.
    ask(browser, server, LEAVE, samples="99")
    assert browser.find_element(By.ID, "error-code").text == "400"
    assert browser.find_element(By.ID, "error-message").text.startswith("'samples' must be an integer from 1 to 16")


def test_chinese_renders_and_values_are_shown_as_text(server: str, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    ask(browser, server, ZH)
    assert browser.find_element(By.ID, "asked").text == f"Q: {ZH}"
    assert browser.find_element(By.ID, "answer").text == "员工每年享有十五天带薪年假。"
    assert "员工每年享有十五天带薪年假" in browser.find_element(By.ID, "sources").text
    browser.save_screenshot(str(tmp_path / "page-zh.png"))
    # Markup in an answer is shown as text, never run or parsed.
    ask(browser, server, "How many days of annual leave in html?")
    assert browser.find_element(By.ID, "answer").text == HOSTILE
    assert browser.find_element(By.ID, "unsupported").text == HOSTILE  # no word of it is in a source
    assert not browser.find_elements(By.ID, "injected") and not browser.find_elements(By.ID, "bold")


def test_a_calibrated_confidence_says_so_and_names_another_setup(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from test_calibration import labelled_set

    from ragguard.apps.calibrate import fit_calibration
    from ragguard.apps.serve import ServeSettings, create_app

    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(fit_calibration(labelled_set()).to_dict()))  # fitted for model "tiny"
    guard = build_guard()
    guard.config = guard.config.replace("consistency", calibration=str(path))
    with serving(create_app(guard, ServeSettings(api_key=KEY, max_batch=1))) as url:
        ask(browser, url, LEAVE)
        note = browser.find_element(By.ID, "calibrated")
        assert note.text == "(calibrated for another setup)" and "stale" in note.get_attribute("class")
        assert str(path) in note.get_attribute("title")


LONG_URL = "https://intranet.example.com/" + "very-long-unbroken-path-segment-" * 12 + "?q=" + "x" * 120
LONG_PATH = "/srv/share/" + "handbook_payroll_eastbridge_" * 10 + "certificate.pdf"


def canned_record(answer: str = "See " + LONG_URL) -> dict[str, Any]:
    """An ask record as ``POST /ask`` returns it, with a URL and a path too long for a phone's line."""
    texts = [answer, "Ask HR at " + LONG_URL, answer]
    return {
        "question": "Where is the form?", "answer": answer, "verdict": "inconsistent", "agreement": 0.67,
        "confidence": 0.41, "grounded": None, "calibrated": False, "warnings": ["see " + LONG_PATH],
        "samples": [{"text": t, "seed": i, "greedy": i == 0, "truncated": False} for i, t in enumerate(texts)],
        "clusters": [{"id": 0, "size": 2, "representative": answer, "members": [0, 2]},
                     {"id": 1, "size": 1, "representative": texts[1], "members": [1]}],
        "contradictions": [{"a": 0, "b": 1, "kind": "entity", "score": 0.9,
                            "explanation": f'different places: "{LONG_URL}" vs "{LONG_URL}"'}],
        "sources": [{"doc_id": LONG_PATH, "chunk_id": "c0", "score": 0.8, "text": "The form is at " + LONG_URL}],
        "grounding": None, "fingerprint": {"model": "fake"}, "timings": {"total_s": 0.1},
    }


def canned_page(tmp_path: Path) -> Path:
    """serve's page as a file; its fetch is replaced (through the driver, which the page's policy does not bind)."""
    from ragguard.apps.serve.page import render_page

    context = {"needs_key": False, "max_samples": 8, "default_samples": 5, "default_seed": 0,
               "refusals": {"off_topic": "off topic", "disagree": "they disagree: {answers}", "empty": "empty"}}
    path = tmp_path / "page.html"
    path.write_text(render_page(context, "n0nce"), encoding="utf-8")
    return path


def answer_with(driver: Any, record: dict[str, Any], delay_ms: int = 0) -> None:
    driver.execute_script(
        "const body=arguments[0], delay=arguments[1];"
        "window.fetch=()=>new Promise(ok=>setTimeout(()=>ok(new Response(body,{status:200})),delay));",
        json.dumps(record), delay_ms)


def test_long_urls_and_paths_stay_inside_a_375_px_phone(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with headless_chromium(375, 812, mobile=True) as phone:
        phone.get(canned_page(tmp_path).as_uri())
        answer_with(phone, canned_record())
        phone.find_element(By.ID, "question").send_keys("Where is the form?")
        phone.find_element(By.ID, "ask").click()
        finished(phone)
        assert LONG_PATH in phone.find_element(By.ID, "sources").text
        assert phone.execute_script("return innerWidth") == 375
        assert phone.execute_script("return document.documentElement.scrollWidth") <= 375
        phone.save_screenshot(str(tmp_path / "phone.png"))
        if SCREENSHOT_DIR:
            shutil.copyfile(tmp_path / "phone.png", Path(SCREENSHOT_DIR) / "page-phone.png")


def test_one_working_announcement_then_the_result_and_focus_on_the_answer(tmp_path: Path, browser: Any) -> None:
    """The live region says "working…" once (not every second), then that the answer is ready; focus moves from
    the disabled Ask button to the Answer heading instead of falling to the page's body."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(canned_page(tmp_path).as_uri())
    answer_with(browser, canned_record(), delay_ms=2500)
    browser.execute_script(
        "window.said=[];new MutationObserver(()=>said.push(document.getElementById('status').textContent))"
        ".observe(document.getElementById('status'),{childList:true,characterData:true,subtree:true});")
    browser.find_element(By.ID, "question").send_keys("Where is the form?")
    browser.find_element(By.ID, "question").send_keys(Keys.CONTROL, Keys.ENTER)
    time.sleep(1.5)
    assert browser.find_element(By.ID, "status-line").text.startswith("working… 1 s")  # still seen counting
    finished(browser)
    said = [t for t in browser.execute_script("return said") if t]
    assert said == ["working…", "answer ready: inconsistent, agreement 67%"]
    focused = browser.switch_to.active_element
    assert focused.get_attribute("id") == "answer-heading" and focused.text == "Answer"


def test_answers_take_their_direction_from_their_text_and_chinese_says_so(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    arabic = "نعم، يجب تقديم شهادة عمل صالحة (HR-07)."
    record = canned_record(arabic)
    record["samples"][1]["text"] = "员工每年享有十五天带薪年假。"
    browser.get(canned_page(tmp_path).as_uri())
    answer_with(browser, record)
    browser.find_element(By.ID, "question").send_keys("Where is the form?")
    browser.find_element(By.ID, "ask").click()
    finished(browser)
    answer = browser.find_element(By.ID, "answer")
    assert answer.get_attribute("dir") == "auto" and answer.value_of_css_property("direction") == "rtl"
    texts = browser.find_elements(By.CSS_SELECTOR, "#clusters .sample .text")
    assert [(t.get_attribute("dir"), t.get_attribute("lang")) for t in texts] == [("auto", ""), ("auto", ""),
                                                                                 ("auto", "zh")]
    assert browser.find_element(By.CSS_SELECTOR, "#asked span").get_attribute("dir") == "auto"


CANCELLED = ("cancelled: a question still waiting in the server's queue is dropped; one the server had already "
             "started is finished there, but its answer is not shown")


def metric(url: str, name: str) -> float:
    """One sample of the server's /metrics, e.g. ``ragguard_dropped_total{reason="disconnected"}``; a verdict's
    counter appears with its first answer (0 before)."""
    request = urllib.request.Request(url + "/metrics", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    if name.startswith("ragguard_verdicts_total{"):
        return 0.0
    raise AssertionError(f"no {name} in /metrics")


def until(check: Any, what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {what}")
        time.sleep(0.05)


def post_slow_question(url: str, out: list[int]) -> threading.Thread:
    """Another client's slow question (it holds the server's only batch slot until RELEASE); its status goes to out."""
    def run() -> None:
        body = json.dumps({"question": f"{LEAVE} (slow, other client)"}).encode()
        request = urllib.request.Request(url + "/ask", data=body, headers={
            "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            out.append(response.status)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def keep_shots(browser: Any, name: str) -> None:
    """With RAGGUARD_SCREENSHOT_DIR set, keep a screenshot of the page as it is, in light and in dark."""
    if SCREENSHOT_DIR:
        for scheme in ("light", "dark"):
            emulate(browser, scheme)
            browser.save_screenshot(str(Path(SCREENSHOT_DIR) / f"{name}-{scheme}.png"))
        emulate(browser, "light")


def cancelled(browser: Any) -> None:
    """The page says the question was cancelled and takes the next one; no result, no error."""
    from selenium.webdriver.common.by import By

    assert browser.find_element(By.ID, "status").text == CANCELLED
    assert browser.find_element(By.ID, "ask").is_enabled()
    assert not browser.find_element(By.ID, "cancel").is_displayed()
    assert not browser.find_element(By.ID, "result").is_displayed()
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert browser.find_element(By.ID, "ask-form").get_attribute("aria-busy") == "false"


def test_cancel_drops_a_queued_question_and_the_form_takes_the_next(server: str, browser: Any) -> None:
    """While another client's question is computed (max_batch 1), the page's question waits in the queue:
    Cancel closes its request, so the server drops it (never computed) and counts it."""
    from selenium.webdriver.common.by import By

    RELEASE.clear()
    other: list[int] = []
    thread = post_slow_question(server, other)
    try:
        until(lambda: metric(server, "ragguard_in_flight") == 1, "the other client's question to be computed")
        dropped = metric(server, 'ragguard_dropped_total{reason="disconnected"}')
        computed = metric(server, 'ragguard_verdicts_total{verdict="contradiction"}')
        ask(browser, server, LEAVE, wait=False)
        until(lambda: metric(server, "ragguard_queue_depth") == 1, "the page's question to wait in the queue")
        cancel = browser.find_element(By.ID, "cancel")
        assert cancel.is_displayed() and cancel.get_attribute("aria-keyshortcuts") == "Escape"
        assert browser.switch_to.active_element == cancel  # the clicked Ask is disabled: the focus moved here
        cancel.click()
        cancelled(browser)
        assert browser.switch_to.active_element.get_attribute("id") == "question"
        until(lambda: metric(server, 'ragguard_dropped_total{reason="disconnected"}') == dropped + 1,
              "the server to drop the cancelled question")
    finally:
        RELEASE.set()
    thread.join(30)
    assert other == [200]
    until(lambda: metric(server, "ragguard_queue_depth") == 0, "the worker to skip the dropped question")
    # Only the other client's question was computed; the page shows nothing of the dropped one.
    assert metric(server, 'ragguard_verdicts_total{verdict="contradiction"}') == computed + 1
    assert browser.find_element(By.ID, "status").text == CANCELLED
    # The next question is asked and answered as usual.
    browser.find_element(By.ID, "question").send_keys(" (the next one)")
    browser.find_element(By.ID, "ask").click()
    finished(browser)
    assert browser.find_element(By.ID, "asked").text == f"Q: {LEAVE} (the next one)"
    assert browser.find_element(By.ID, "verdict").text == "contradiction"
    assert browser.find_element(By.ID, "status").text == "answer ready: contradiction, agreement 60%"


def test_escape_cancels_a_question_being_computed_which_the_server_finishes_unseen(server: str, browser: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    RELEASE.clear()
    try:
        dropped = metric(server, 'ragguard_dropped_total{reason="disconnected"}')
        computed = metric(server, 'ragguard_verdicts_total{verdict="contradiction"}')
        ask(browser, server, f"{LEAVE} (slow)", wait=False)
        until(lambda: metric(server, "ragguard_in_flight") == 1, "the page's question to be computed")
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()
        cancelled(browser)
    finally:
        RELEASE.set()
    # The server finishes what it started (nothing is dropped) while the page shows none of it.
    until(lambda: metric(server, 'ragguard_verdicts_total{verdict="contradiction"}') == computed + 1,
          "the server to finish the question it had started")
    assert metric(server, 'ragguard_dropped_total{reason="disconnected"}') == dropped
    time.sleep(0.3)
    cancelled(browser)
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()  # nothing in flight: Escape does nothing
    assert browser.find_element(By.ID, "status").text == CANCELLED


def test_a_late_answer_of_a_cancelled_question_is_never_shown(tmp_path: Path, browser: Any) -> None:
    """A fetch that answers though it was aborted (the answer was on its way) still shows nothing; the question
    asked next shows its own answer."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(canned_page(tmp_path).as_uri())
    late = canned_record("the cancelled question's answer")
    # This fake ignores the abort and answers anyway after 1.5 s; it keeps the signal it was given.
    browser.execute_script(
        "const body=arguments[0];window.fetch=(url,init)=>{window.signal=init.signal;"
        "return new Promise(ok=>setTimeout(()=>ok(new Response(body,{status:200})),1500));};", json.dumps(late))
    question = browser.find_element(By.ID, "question")
    question.send_keys("Where is the form?")
    question.send_keys(Keys.CONTROL, Keys.ENTER)
    assert browser.find_element(By.ID, "cancel").is_displayed()
    keep_shots(browser, "page-busy")
    question.send_keys(Keys.ESCAPE)
    cancelled(browser)
    keep_shots(browser, "page-cancelled")
    assert browser.execute_script("return window.signal.aborted") is True
    assert browser.switch_to.active_element == question  # the focus stays where the user was typing
    time.sleep(2)  # the late answer came and went
    cancelled(browser)
    answer_with(browser, canned_record("the next question's answer"))
    browser.find_element(By.ID, "ask").click()
    finished(browser)
    assert browser.find_element(By.ID, "answer").text == "the next question's answer"
    assert not browser.find_element(By.ID, "cancel").is_displayed()


def dark_page(browser: Any, tmp_path: Path) -> None:
    """The canned page with an answer: badge, warnings, highlighted spans, sources; and the error box shown."""
    from selenium.webdriver.common.by import By

    browser.get(canned_page(tmp_path).as_uri())
    record = canned_record("You get 25 days of annual leave per year.")
    record["verdict"] = "contradiction"
    record["samples"][1]["text"] = "You get 30 days of annual leave per year."
    record["contradictions"][0].update(kind="quantity", explanation='different numbers: "25 days" vs "30 days"')
    record["grounding"] = {"support": 0.9, "unsupported": ["an unsupported claim"], "absent": [], "claims": [
        {"chunk_id": "c0", "text": "the form", "support": 0.9, "span": [0, 8]}]}
    answer_with(browser, record)
    browser.find_element(By.ID, "question").send_keys("How many days?")
    browser.find_element(By.ID, "ask").click()
    finished(browser)
    browser.execute_script("document.getElementById('error').hidden=false;"
                           "document.getElementById('error-message').textContent='an error message';")


# What the page's colours were before dark mode: light mode must keep them.
PAGE_LIGHT = {"body": ("rgb(29, 35, 43)", "rgb(246, 247, 249)"), "#verdict": ("rgb(255, 255, 255)", "rgb(179, 38, 30)"),
              "#answer": ("rgb(29, 35, 43)", "rgb(255, 255, 255)"), ".warnings li": ("rgb(167, 98, 0)",
                                                                                     "rgb(255, 255, 255)"),
              ".side mark": ("rgb(0, 0, 0)", "rgb(255, 226, 138)"), "mark.support": ("rgb(0, 0, 0)",
                                                                                     "rgb(213, 240, 220)"),
              "#error-message": ("rgb(179, 38, 30)", "rgb(253, 242, 241)"), "#ask": ("rgb(255, 255, 255)",
                                                                                     "rgb(34, 87, 122)")}


def test_dark_mode_is_readable_and_light_mode_and_printing_are_unchanged(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    dark_page(browser, tmp_path)
    try:
        emulate(browser, "light")
        light = {css: colours(browser.find_element(By.CSS_SELECTOR, css)) for css in PAGE_LIGHT}
        assert light == PAGE_LIGHT
        emulate(browser, "dark")
        for css in [*PAGE_LIGHT, ".sample .text", ".tag.greedy", ".muted", ".source .text", "#question"]:
            fg, bg = colours(browser.find_element(By.CSS_SELECTOR, css))
            assert bg != "canvas" and contrast(fg, bg) >= 4.5, (css, fg, bg, contrast(fg, bg))
        body = colours(browser.find_element(By.TAG_NAME, "body"))
        assert contrast(*body) >= 12 and body[1] != PAGE_LIGHT["body"][1]
        shot = tmp_path / "page-dark.png"
        browser.save_screenshot(str(shot))
        if SCREENSHOT_DIR:
            shutil.copyfile(shot, Path(SCREENSHOT_DIR) / "page-dark.png")
            emulate(browser, "light")
            browser.save_screenshot(str(Path(SCREENSHOT_DIR) / "page-light.png"))
        emulate(browser, "dark", media="print")  # a printout of a dark screen is light
        assert colours(browser.find_element(By.TAG_NAME, "body")) == PAGE_LIGHT["body"]
    finally:
        emulate(browser, "light")
