"""report.html in a real headless Chromium: loads offline, filters, opens a question, draws the calibration charts.

Needs Debian's chromium and chromium-driver (`make test-browser` installs them);
skipped where they are missing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from browser import colours, contrast, emulate, headless_chromium

from ragguard.apps.audit import run_audit

pytestmark = pytest.mark.slow
# Set RAGGUARD_SCREENSHOT_DIR to keep screenshots of the report in light and dark (to look at them).
SCREENSHOT_DIR = os.environ.get("RAGGUARD_SCREENSHOT_DIR")


@pytest.fixture()
def browser():  # type: ignore[no-untyped-def]
    with headless_chromium() as driver:
        yield driver


def test_report_loads_offline_filters_and_opens_a_question(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from test_audit import make_guard, write_questions

    out = tmp_path / "out"
    run_audit(write_questions(tmp_path / "q.jsonl"), out, make_guard())
    browser.get((out / "report.html").as_uri())
    assert re.fullmatch(r"ragguard audit · q\.jsonl · \d{4}-\d\d-\d\d \d\d:\d\d UTC", browser.title)
    # Nothing but the page itself was requested (the CSP also forbids it).
    entries = browser.execute_script("return performance.getEntriesByType('resource').length")
    assert entries == 0
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.q")
    assert len(rows) == 5
    browser.find_element(By.ID, "filter").send_keys("leave")
    settled(browser, "1")
    visible = [r for r in rows if r.is_displayed()]
    assert [r.get_attribute("data-id") for r in visible] == ["leave"]
    assert browser.find_element(By.ID, "shown").text == "1"
    detail = browser.find_element(By.ID, "d-" + visible[0].get_attribute("data-key"))
    assert not detail.is_displayed()
    visible[0].click()
    assert detail.is_displayed()
    assert "25 days" in detail.text and "30 days" in detail.text and "quantity" in detail.text
    # Two questions have a reference: the calibration charts are drawn, one bar per non-empty bin.
    for chart in ("reliability-diagram", "coverage-curve"):
        svg = browser.find_element(By.ID, chart)
        assert svg.is_displayed() and svg.size["width"] > 200 and svg.size["height"] > 200
    assert len(browser.find_elements(By.CSS_SELECTOR, "#reliability-diagram rect.bin")) == 2
    assert len(browser.find_elements(By.CSS_SELECTOR, "#coverage-curve circle.point")) == 10
    browser.save_screenshot(str(tmp_path / "report.png"))
    assert (tmp_path / "report.png").stat().st_size > 10_000

    print(f"screenshot: {tmp_path / 'report.png'}")


def settled(browser, shown: str, more: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Wait for the filter, which runs once typing pauses, to show ``shown`` rows (and ``more`` behind "show more":
    where the page showed ``shown`` rows before the filter too, the count behind the button tells that it ran)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 5).until(lambda b: b.find_element("id", "shown").text == shown and (
        more is None or b.find_element("id", "more-count").text == more))


def write_hard_report(tmp_path: Path) -> Path:
    from test_report_html import RUN, hard_records

    from ragguard.apps.audit_summary import summarize
    from ragguard.apps.report_html import write_report

    records = hard_records()
    path = tmp_path / "report.html"
    write_report(path, records, summarize(records), RUN)
    return path


def test_the_report_fits_a_375_px_phone_without_sideways_scrolling(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    path = write_hard_report(tmp_path)
    with headless_chromium(375, 812, mobile=True) as phone:
        phone.get(path.as_uri())
        assert phone.execute_script("return innerWidth") == 375
        assert phone.execute_script("return document.documentElement.scrollWidth") <= 375
        # the table scrolls inside its own box; every chart fits the width
        wrap = phone.find_element(By.CSS_SELECTOR, ".table-wrap")
        assert wrap.size["width"] <= 375
        for svg in phone.find_elements(By.CSS_SELECTOR, "svg"):
            assert svg.location["x"] + svg.size["width"] <= 375
        # an opened question reads within the screen, not across the whole table's width
        phone.find_element(By.CSS_SELECTOR, "tr.q button.open").click()
        for part in phone.find_elements(By.CSS_SELECTOR, "#d-0 .full, #d-0 .sample, #d-0 .src"):
            assert part.location["x"] + part.size["width"] <= 375, part.text[:40]
        phone.save_screenshot(str(tmp_path / "phone.png"))
        print(f"screenshot: {tmp_path / 'phone.png'}")


def test_a_keyboard_opens_a_question_and_sorts_with_errors_last(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(write_hard_report(tmp_path).as_uri())
    focused = []
    for _ in range(12):  # Tab from the top of the page
        ActionChains(browser).send_keys(Keys.TAB).perform()
        focused.append(browser.execute_script(
            "const e=document.activeElement;return e.closest('th')?'th:'+e.closest('th').dataset.col:"
            "e.classList.contains('open')?'row:'+e.closest('tr').dataset.id:e.id||e.tagName"))
    assert focused[focused.index("th:line"):][:6] == ["th:line", "th:severity", "th:agreement", "th:confidence",
                                                      "row:long", "row:url"]
    while browser.execute_script("return document.activeElement.closest('tr')?.dataset.id") != "long":
        ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
    toggle = browser.switch_to.active_element
    detail = browser.find_element(By.ID, "d-0")
    assert not detail.is_displayed() and toggle.get_attribute("aria-expanded") == "false"
    toggle.send_keys(Keys.ENTER)
    assert detail.is_displayed() and toggle.get_attribute("aria-expanded") == "true"
    toggle.send_keys(Keys.SPACE)
    assert not detail.is_displayed() and toggle.get_attribute("aria-expanded") == "false"

    def order() -> list[str]:
        return [r.get_attribute("data-id")[:4] for r in browser.find_elements(By.CSS_SELECTOR, "tr.q")]

    head = browser.find_element(By.CSS_SELECTOR, 'th[data-col="confidence"]')
    head.find_element(By.TAG_NAME, "button").send_keys(Keys.ENTER)
    assert head.get_attribute("aria-sort") == "ascending"
    assert order() == ["url", "zh", "an-e", "long", "err1", "line"]  # 0.0 is a confidence; errors go last
    head.find_element(By.TAG_NAME, "button").send_keys(Keys.ENTER)
    assert head.get_attribute("aria-sort") == "descending"
    assert order() == ["long", "an-e", "zh", "url", "err1", "line"]
    severity = browser.find_element(By.CSS_SELECTOR, 'th[data-col="severity"]')
    severity.find_element(By.TAG_NAME, "button").send_keys(Keys.ENTER)
    assert severity.get_attribute("aria-sort") == "ascending" and head.get_attribute("aria-sort") is None
    assert order() == ["zh", "url", "an-e", "long", "err1", "line"]  # contradiction first, consistent last


def test_printing_shows_the_details_of_the_shown_questions(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    browser.get(write_hard_report(tmp_path).as_uri())
    browser.find_element(By.ID, "filter").send_keys("certificate")  # one question shown
    settled(browser, "1")
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    details = {d.get_attribute("id"): d.is_displayed() for d in browser.find_elements(By.CSS_SELECTOR, "tr.detail")}
    assert details == {"d-0": True, **{f"d-{i}": False for i in range(1, 6)}}
    # built for printing by the script, though the question was never opened
    assert "cluster 0 (2 samples, support 0.50)" in browser.find_element(By.ID, "d-0").text
    assert not browser.find_element(By.CSS_SELECTOR, ".controls").is_displayed()
    badge = browser.find_element(By.CSS_SELECTOR, "tr.q .badge")
    assert badge.value_of_css_property("background-color") == "rgba(0, 0, 0, 0)"
    assert badge.value_of_css_property("border-top-width") == "1px" and badge.value_of_css_property("color") == \
        "rgba(0, 0, 0, 1)"
    pdf = browser.execute_cdp_cmd("Page.printToPDF", {"printBackground": False})
    assert len(pdf["data"]) > 1000


def test_the_filter_finds_an_error_and_the_wrong_answers(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(write_hard_report(tmp_path).as_uri())

    def shown() -> list[str]:
        return [r.get_attribute("data-id")[:4] for r in browser.find_elements(By.CSS_SELECTOR, "tr.q") if r.is_displayed()]

    box = browser.find_element(By.ID, "filter")
    for term, ids in (("cuda", ["err1"]), ("questoin", ["line"]), ("mismatch", ["url"])):
        box.clear()
        box.send_keys(term)
        browser.execute_script("document.getElementById('filter').dispatchEvent(new Event('input'))")
        WebDriverWait(browser, 5).until(lambda b, ids=ids: shown() == ids, term)
    box.clear()
    browser.execute_script("document.getElementById('filter').dispatchEvent(new Event('input'))")
    settled(browser, "6")
    Select(browser.find_element(By.ID, "reference")).select_by_value("wrong")
    assert shown() == ["url", "zh"]
    assert browser.find_element(By.ID, "shown").text == "2"


def test_headers_and_short_values_stay_on_one_line_at_laptop_width(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with headless_chromium(1024, 800) as laptop:
        laptop.get(write_hard_report(tmp_path).as_uri())
        lines = laptop.execute_script(
            "const n=e=>{let most=0;const w=document.createTreeWalker(e,NodeFilter.SHOW_TEXT);"
            "while(w.nextNode()){if(!w.currentNode.data.trim())continue;const r=document.createRange();"
            "r.selectNodeContents(w.currentNode);"
            "most=Math.max(most,new Set([...r.getClientRects()].map(x=>Math.round(x.top))).size)}return most};"
            "return [...document.querySelectorAll('thead th, tr.q td.short')].map(e=>[e.textContent.trim(),n(e)])")
        assert lines and all(n <= 1 for _, n in lines), [t for t, n in lines if n > 1]
        assert laptop.find_element(By.CSS_SELECTOR, "th[data-col=agreement]").is_displayed()


def test_a_long_answer_takes_three_lines_until_its_row_is_opened(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    browser.get(write_hard_report(tmp_path).as_uri())
    row = browser.find_element(By.CSS_SELECTOR, 'tr.q[data-id="long"]')
    assert row.size["height"] < 100  # 3,000 characters; the row was about 1,800 px tall
    row.click()
    assert browser.find_element(By.ID, "d-0").find_element(By.CSS_SELECTOR, "p.full").text.count("five working days") == 60


def test_the_filter_runs_once_typing_pauses(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    """Each key used to filter every row again (2.3 s to settle for 10 keys on 2,000 rows)."""
    from selenium.webdriver.common.by import By

    browser.get(write_hard_report(tmp_path).as_uri())
    browser.execute_script("window.runs=0;new MutationObserver(()=>runs++)"
                           ".observe(document.getElementById('shown'),{childList:true,characterData:true,subtree:true})")
    browser.find_element(By.ID, "filter").send_keys("certificate")
    settled(browser, "1")
    assert browser.execute_script("return runs") == 1


def test_an_opened_row_shows_what_the_page_showed_when_details_were_markup(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    """The opened row is built by the script from the page's data, element for element what the template used
    to write in every row; the hostile sample, explanation and passage stay text."""
    from html import escape

    from selenium.webdriver.common.by import By
    from test_report_html import HOSTILE, hard_records

    browser.get(write_hard_report(tmp_path).as_uri())
    row = browser.find_element(By.CSS_SELECTOR, 'tr.q[data-id="url"]')
    row.click()
    record = hard_records()[1]

    def t(text: str) -> str:
        return escape(text, quote=False)
    source = record["sources"][0]
    expected = (
        f'<p class="full"><b>answer</b>: <span dir="auto">{t(record["answer"])}</span></p>'
        '<div class="cluster"><b>cluster 0</b> (2 samples, support 0.50)'
        f'<div class="sample">#0 <small>(seed 1)</small> <span dir="auto">{t(HOSTILE)}</span></div>'
        '<div class="sample conflict">#1 <small>(seed 2)</small> <span dir="auto">25 days</span></div></div>'
        '<div class="cluster"><b>cluster 1</b> (1 sample)'
        '<div class="sample conflict">#2 <small>(greedy)</small> <span dir="auto">30 days</span></div></div>'
        f'<p class="warn">samples 1 and 2: quantity: {t(HOSTILE)}</p>'
        f'<p class="warn">warning: {t(record["warnings"][0])}</p>'
        '<p><b>reference</b> (mismatch): <span dir="auto">Five working days.</span></p>'
        f'<div class="src">{t(source["doc_id"])} (0.500): {t(source["text"][:400])}</div>')  # cut, as ever
    assert browser.find_element(By.CSS_SELECTOR, "#d-1 .detail-body").get_attribute("innerHTML") == expected
    # opened again, it is not built twice; the Chinese row's answer and the error row say what they are
    row.click()
    row.click()
    assert browser.execute_script("return document.querySelectorAll('#d-1 .cluster').length") == 2
    browser.find_element(By.CSS_SELECTOR, 'tr.q[data-id="zh"]').click()
    assert browser.find_element(By.CSS_SELECTOR, "#d-2 p.full span").get_attribute("lang") == "zh"
    browser.find_element(By.CSS_SELECTOR, 'tr.q[data-id="err1"]').click()
    assert browser.find_element(By.CSS_SELECTOR, "#d-4 .detail-body").get_attribute("innerHTML") == (
        '<p class="warn">error: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB</p>')
    assert browser.execute_script("return document.querySelectorAll('img, tr.detail script').length") == 0


def test_a_page_of_rows_is_shown_and_show_more_brings_the_next_in_the_sorted_order(
        tmp_path: Path, browser, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    from ragguard.apps import report_html

    monkeypatch.setattr(report_html, "PAGE", 2)
    browser.get(write_hard_report(tmp_path).as_uri())

    def shown() -> list[str]:
        return [r.get_attribute("data-id")[:4] for r in browser.find_elements(By.CSS_SELECTOR, "tr.q") if r.is_displayed()]

    more = browser.find_element(By.ID, "more")
    assert shown() == ["long", "url"] and browser.find_element(By.ID, "shown").text == "2"
    assert more.is_displayed() and more.text.startswith("4 more not shown: show 2 more · show all")
    # the least confident first: the two of them, whichever rows were shown before
    browser.find_element(By.CSS_SELECTOR, 'th[data-col="confidence"] button').click()
    assert shown() == ["url", "zh"]
    browser.find_element(By.ID, "show-more").click()
    assert shown() == ["url", "zh", "an-e", "long"]
    assert browser.execute_script("return document.activeElement.closest('tr').dataset.id")[:4] == "an-e"
    assert browser.find_element(By.ID, "more-count").text == "2"
    browser.find_element(By.ID, "show-all").click()
    assert shown() == ["url", "zh", "an-e", "long", "err1", "line"] and not more.is_displayed()
    # the filter counts what it keeps; rows past the page wait behind "show more" again on a fresh page
    browser.get(write_hard_report(tmp_path).as_uri())
    browser.find_element(By.ID, "filter").send_keys("hard")
    settled(browser, "2", more="2")  # the page showed 2 of 6 before the filter too
    assert shown() == ["long", "url"]
    # an open row that the sort moves past the page is closed
    browser.find_element(By.CSS_SELECTOR, 'tr.q[data-id="long"]').click()
    assert browser.find_element(By.ID, "d-0").is_displayed()
    browser.find_element(By.CSS_SELECTOR, 'th[data-col="confidence"] button').click()
    assert shown() == ["url", "zh"] and not browser.find_element(By.ID, "d-0").is_displayed()
    assert browser.find_element(By.CSS_SELECTOR, 'tr.q[data-id="long"] button.open').get_attribute("aria-expanded") == "false"


def test_chromium_print_to_pdf_prints_every_shown_questions_detail(tmp_path: Path) -> None:
    """``chromium --print-to-pdf`` (and the print dialog) gets the details the script builds before printing."""
    import subprocess

    from browser import CHROMIUM

    pypdf = pytest.importorskip("pypdf")
    if not CHROMIUM:
        pytest.skip("chromium is not installed")
    path, pdf = write_hard_report(tmp_path), tmp_path / "report.pdf"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                    f"--print-to-pdf={pdf}", path.as_uri()], check=True, capture_output=True, timeout=120)
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(pdf).pages)
    assert text.count("cluster 0") == 4 and text.count("samples 1 and 2: quantity") == 4
    assert "error: RuntimeError: CUDA out of memory" in text and "invalid: line 99: unknown key" in text


# The report's colours before dark mode: light mode must keep them ("canvas": the browser's own white).
REPORT_LIGHT = {
    "body": ("rgb(29, 29, 31)", "canvas"),
    "th button": ("rgb(29, 29, 31)", "rgb(250, 250, 250)"),
    "tr.q td.wrap": ("rgb(29, 29, 31)", "canvas"),
    'tr.q[data-id="leave"] .badge': ("rgb(255, 255, 255)", "rgb(198, 40, 40)"),
    'tr.q[data-id="branch"] .badge': ("rgb(255, 255, 255)", "rgb(46, 125, 50)"),
    "#run": ("rgb(102, 102, 102)", "canvas"),
    "#gate": ("rgb(198, 40, 40)", "canvas"),
    'tr.q[data-id="cert"] button.open': ("rgb(26, 79, 156)", "canvas"),
    "#d-2 .sample.conflict": ("rgb(29, 29, 31)", "rgb(255, 224, 224)"),
    "#d-2 p.warn": ("rgb(160, 94, 0)", "rgb(251, 251, 251)"),
    "#reliability-diagram text": ("rgb(0, 0, 0)", "canvas"),
    ".chart-box text": ("rgb(0, 0, 0)", "canvas"),
}


def test_dark_mode_is_readable_and_light_mode_and_printing_are_unchanged(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    """With prefers-color-scheme dark, every text colour has a contrast of 4.5 or more against what it is drawn on
    (chart labels included); light mode keeps the colours it had, and a printout of a dark screen is light."""
    from selenium.webdriver.common.by import By
    from test_audit import make_guard, write_questions

    out = tmp_path / "out"
    run_audit(write_questions(tmp_path / "q.jsonl"), out, make_guard(), fail_under=0.99)
    browser.get((out / "report.html").as_uri())
    browser.find_element(By.CSS_SELECTOR, 'tr.q[data-id="leave"]').click()  # its detail: a conflict, a warning
    try:
        emulate(browser, "light")
        light = {css: colours(browser.find_element(By.CSS_SELECTOR, css)) for css in REPORT_LIGHT}
        assert light == REPORT_LIGHT
        shots = {"light": tmp_path / "report-light.png", "dark": tmp_path / "report-dark.png"}
        browser.save_screenshot(str(shots["light"]))
        emulate(browser, "dark")
        texts = [*REPORT_LIGHT, "td.short", "tr.detail td .src", ".card b", ".controls label", "#filter",
                 "#coverage-curve text"]
        for css in texts:
            for element in browser.find_elements(By.CSS_SELECTOR, css):
                fg, bg = colours(element)
                assert bg != "canvas" and contrast(fg, bg) >= 4.5, (css, element.text[:30], fg, bg, contrast(fg, bg))
        for badge in browser.find_elements(By.CSS_SELECTOR, "tr.q .badge"):
            assert contrast(*colours(badge)) >= 4.5, badge.text
        body = colours(browser.find_element(By.TAG_NAME, "body"))
        assert contrast(*body) >= 12 and body[1] != "canvas"
        browser.save_screenshot(str(shots["dark"]))
        if SCREENSHOT_DIR:
            for shot in shots.values():
                shot.replace(Path(SCREENSHOT_DIR) / shot.name)
        emulate(browser, "dark", media="print")  # printed from a dark screen: the light colours
        printed = {css: colours(browser.find_element(By.CSS_SELECTOR, css)) for css in ("body", "#run", "#gate")}
        assert printed == {css: REPORT_LIGHT[css] for css in printed}
        # Errors, invalid rows, sources and long text, every shown row opened.
        browser.get(write_hard_report(tmp_path).as_uri())
        emulate(browser, "dark")
        browser.execute_script("document.querySelectorAll('tr.q:not(.hidden) button.open').forEach(b => b.click())")
        for css in ("td", "tr.detail td .src", "tr.detail .warn", ".sample", ".badge"):
            found = browser.find_elements(By.CSS_SELECTOR, css)
            assert found, css
            for element in found:
                fg, bg = colours(element)
                assert bg != "canvas" and contrast(fg, bg) >= 4.5, (css, element.text[:30], fg, bg, contrast(fg, bg))
        if SCREENSHOT_DIR:
            browser.save_screenshot(str(Path(SCREENSHOT_DIR) / "report-hard-dark.png"))
    finally:
        emulate(browser, "light")
