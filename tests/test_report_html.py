"""report.html from its template: structure the page script relies on, escaping, calibration charts, header."""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser

import pytest
from test_audit_summary import labelled_records

from ragguard.apps.audit_summary import summarize
from ragguard.apps.report_html import render_report

HOSTILE = "</script><img src=x onerror=alert(1)>&\"'"
RUN = {"input": "q.jsonl", "config_hash": "abc123", "ragguard_version": "0.1.0"}


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text of the page."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())]


def report_data(page: str) -> dict:
    """The JSON the page's script renders the opened rows from (its ``<script type="application/json">``)."""
    import json

    blocks = re.findall(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert len(blocks) == 1
    return json.loads(blocks[0])


def hostile_record() -> dict:
    return {
        "status": "ok", "id": HOSTILE, "line": 1, "question": HOSTILE, "answer": HOSTILE, "verdict": "contradiction",
        "agreement": 0.6, "confidence": 0.3, "tags": [HOSTILE],
        "samples": [{"text": HOSTILE, "seed": 1}, {"text": "25 days", "seed": 2}, {"text": "30 days", "greedy": True}],
        "clusters": [{"id": 0, "size": 2, "representative": HOSTILE, "members": [0, 1], "support": 0.5},
                     {"id": 1, "size": 1, "representative": "30 days", "members": [2]}],
        "contradictions": [{"a": 1, "b": 2, "kind": "quantity", "score": 1.0, "explanation": HOSTILE}],
        "warnings": [HOSTILE], "reference": HOSTILE, "reference_match": "contradicts",
        "sources": [{"doc_id": HOSTILE, "score": 0.5, "text": HOSTILE}],
    }


def test_rows_carry_what_the_page_script_uses() -> None:
    records = [hostile_record(), {"status": "error", "id": "e", "line": 2, "question": "q", "error": "out of memory"},
               {"status": "invalid", "id": "line-3", "line": 3, "error": "not json"}]
    page = Elements(render_report(records, summarize(records), RUN))
    rows = page.find("tr", class_="q")
    assert [r["data-key"] for r in rows] == ["0", "1", "2"]
    assert [r["data-verdict"] for r in rows] == ["contradiction", "error", "invalid"]
    assert rows[0]["data-id"] == HOSTILE and rows[0]["data-confidence"] == "0.3" and rows[0]["data-line"] == "1"
    assert rows[0]["data-reference"] == "contradicts"
    for key in ("0", "1", "2"):
        assert page.find("tr", id=f"d-{key}", class_="detail hidden")
    # what an opened row shows, and what the filter searches besides the cells, is data for the script
    data = report_data(render_report(records, summarize(records), RUN))
    assert data["rows"][0]["tags"] == [HOSTILE] and data["rows"][0]["reference"] == HOSTILE
    assert data["rows"][0]["contradictions"] == [[1, 2, "quantity", HOSTILE]]
    assert [c["support"] for c in data["rows"][0]["clusters"] if "support" in c] == ["0.50"]
    assert data["rows"][1:] == [{"status": "error", "error": "out of memory"}, {"status": "invalid", "error": "not json"}]
    for element_id in ("filter", "verdict", "shown", "rows"):
        assert len([a for _, a in page.tags if a.get("id") == element_id]) == 1, element_id
    sortable = [a["data-col"] for a in page.find("th") if "data-col" in a]
    assert sortable == ["line", "severity", "agreement", "confidence"]
    assert [o["value"] for o in page.find("option")][1:] == ["consistent", "inconsistent", "contradiction", "abstain",
                                                              "invalid", "error", "", "wrong", "match"]
    assert "out of memory" in "".join(page.text)  # the error row's answer cell


def test_every_value_is_escaped_and_nothing_is_fetched() -> None:
    records = [hostile_record()]
    page = render_report(records, summarize(records), {**RUN, "input": HOSTILE})
    assert "<img" not in page and "</script><img" not in page
    # one script runs; the other script element holds data (type="application/json"), which never runs
    assert re.findall(r"<script[^>]*>", page) == ['<script type="application/json" id="report-data">', "<script>"]
    assert "<script src" not in page
    assert "http://" not in page and "https://" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    # the hostile text shows up, decoded, in every cell it was put and in every field of the opened row's data
    text = "".join(Elements(page).text)
    assert text.count(HOSTILE) >= 4
    data = report_data(page)
    row = data["rows"][0]
    assert [m[2] for c in row["clusters"] for m in c["members"]].count(HOSTILE) == 1
    assert row["contradictions"][0][3] == HOSTILE and data["warnings"] == [HOSTILE] and data["passages"] == [[HOSTILE, HOSTILE]]


def test_only_the_pages_own_script_may_run() -> None:
    """The CSP names the hash of the one inline script instead of allowing any inline script, so a
    script that reached the page through a failure of escaping would not run."""
    import base64
    import hashlib
    import html

    records = [hostile_record()]
    page = render_report(records, summarize(records), {**RUN, "input": HOSTILE})
    csp = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1))
    script = re.search(r"<script>(.*?)</script>", page, flags=re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    assert f"script-src 'sha256-{digest}'" in csp
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1]


def charts(page: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in re.finditer(r'<svg id="([\w-]+)".*?</svg>', page, flags=re.S)}


def test_calibration_charts_only_with_labelled_records() -> None:
    labelled = labelled_records()
    page = render_report(labelled, summarize(labelled), RUN)
    svgs = charts(page)
    assert set(svgs) == {"reliability-diagram", "coverage-curve"}
    assert "expected calibration error 0.125" in page and "Brier score 0.177" in page
    chance = summarize(labelled)["calibration"]["ece_by_chance"]["median"]
    assert f"would show about {chance:.3f} on this many answers" in page
    assert "accuracy at 50% coverage 70%" in page and "accuracy at 80% coverage 62%" in page
    assert "20 answers with a reference" in page
    one = labelled[:1]
    assert "Calibration (1 answer with a reference)" in render_report(one, summarize(one), RUN)

    unlabelled = [{**r, "reference_match": None} for r in labelled]
    plain = render_report(unlabelled, summarize(unlabelled), RUN)
    assert charts(plain) == {} and 'id="calibration"' not in plain and "calibration error" not in plain
    # a summary.json from before the figures existed renders too
    legacy = {k: v for k, v in summarize(labelled).items() if k != "calibration"}
    assert charts(render_report(labelled, legacy, RUN)) == {}
    older = {**summarize(labelled), "calibration": {k: v for k, v in summarize(labelled)["calibration"].items()
                                                   if k != "ece_by_chance"}}
    page = render_report(labelled, older, RUN)  # a summary from before the noise floor was recorded
    assert "expected calibration error 0.125" in page and "by chance" not in page


def test_reliability_bars_and_coverage_points_sit_where_the_figures_say() -> None:
    labelled = labelled_records()
    svgs = charts(render_report(labelled, summarize(labelled), RUN))
    reliability = Elements(svgs["reliability-diagram"])
    axis = [a for a in reliability.find("line") if a.get("class") == "axis"]
    left, bottom, top = float(axis[1]["x1"]), float(axis[1]["y1"]), float(axis[1]["y2"])
    right = float(axis[0]["x2"])
    height, width = bottom - top, right - left
    bars = reliability.find("rect", class_="bin")
    # one bar per non-empty bin (1, 5, 7, 9), as tall as the observed accuracy, starting at the bin's edge
    assert len(bars) == 4
    starts = [(float(b["x"]) - left) / width for b in bars]
    assert starts == pytest.approx([0.1, 0.5, 0.7, 0.9], abs=0.01)
    assert [float(b["height"]) / height for b in bars] == pytest.approx([0.0, 0.6, 0.6, 0.8], abs=0.01)
    assert all(float(b["y"]) + float(b["height"]) == pytest.approx(bottom) for b in bars)
    assert reliability.find("line", class_="ideal")  # the diagonal
    points = Elements(svgs["coverage-curve"]).find("circle", class_="point")
    assert len(points) == 10
    expected = [1 / 2, 3 / 4, 5 / 6, 7 / 8, 7 / 10, 9 / 12, 10 / 14, 10 / 16, 10 / 18, 10 / 20]
    assert [(bottom - float(p["cy"])) / height for p in points] == pytest.approx(expected, abs=0.01)
    assert [(float(p["cx"]) - left) / width for p in points] == pytest.approx([i / 10 for i in range(1, 11)], abs=0.01)


def test_header_says_when_confidence_is_calibrated_and_from_which_file() -> None:
    plain = labelled_records()[:2]
    assert 'id="calibrated"' not in render_report(plain, summarize(plain), RUN)
    calibrated = [{**r, "calibrated": True, "calibration": "calibrations/debian.json"} for r in plain]
    header = Elements(render_report(calibrated, summarize(calibrated), RUN)).find("div", id="calibrated")
    assert header
    page = render_report(calibrated, summarize(calibrated), RUN)
    note = re.search(r'<div class="meta" id="calibrated">(.*?)</div>', page).group(1)
    assert note == "confidence is a calibrated probability (calibration calibrations/debian.json)"
    # one answer of two calibrated, the file given as an object with a hostile name: said, and escaped
    mixed = [{**plain[0], "calibrated": True, "calibration": {"file": HOSTILE}}, {**plain[1], "calibrated": False}]
    page = render_report(mixed, summarize(mixed), RUN)
    note = re.search(r'<div class="meta" id="calibrated">(.*?)</div>', page).group(1)
    assert note.startswith("confidence is a calibrated probability for 1 of 2 answers (calibration &lt;/script&gt;")
    assert "<img" not in page
    unnamed = [{**r, "calibrated": True} for r in plain]  # the field is optional
    assert "(calibration file not named)" in render_report(unnamed, summarize(unnamed), RUN)
    # a file fitted for another setup (here: another number of samples) is said in the header and summary.json
    why = "it drew 3 samples where the file was fitted on 5 per question"
    other = [{**r, "calibrated": True, "calibration": {"file": "embedded.json", "fitted_for_this_setup": False,
                                                        "mismatch": [why]}} for r in plain]
    summary = summarize(other)
    assert summary["calibrated"] == {"records": 2, "answered": 2, "partial": False, "files": ["embedded.json"],
                                     "fitted_for_another_setup": 2, "mismatch": [why], "other_language": 0}
    note = re.search(r'<div class="meta" id="calibrated">(.*?)</div>', render_report(other, summary, RUN)).group(1)
    assert note == ("confidence is a calibrated probability (calibration embedded.json), but the file was fitted for "
                    f"another setup for 2 of 2 answers, so their figure is that setup's probability, not this run's: {why}")
    # Chinese questions under a calibration fitted on English ones: said in the header and summary.json
    zh = [{**r, "calibrated": True, "calibration": {"file": "embedded.json", "fitted_on_languages": ["en"]}}
          for r in plain[:1]] + [{**plain[1], "calibrated": True, "calibration": {"file": "embedded.json"}}]
    summary = summarize(zh)
    assert summary["calibrated"]["other_language"] == 1
    note = re.search(r'<div class="meta" id="calibrated">(.*?)</div>', render_report(zh, summary, RUN)).group(1)
    assert note.endswith("; 1 of the questions are Chinese and the calibration was fitted on questions in other "
                         "languages only, so their confidence says little (calibrate on an audit of your own questions)")


def test_header_says_what_was_audited_and_how_the_gate_ended() -> None:
    records = [{**r, "fingerprint": {"model": "SmolLM2-135M", "model_sha256": "ab12", "adapter": "adapters/prod",
                                     "seeds": [0, 1, 2]}} for r in labelled_records()[:2]]
    run = {**RUN, "index": "indexes/hr", "index_id": "sha256:0f0f",
           "settings": {"generator.model": "embedded", "generator.adapter": "adapters/prod", "sampling.samples": 3,
                        "sampling.seed": 1, "sampling.adaptive": False}}
    summary = summarize(records)
    page = render_report(records, summary, run)
    setup = re.search(r'<div class="meta" id="setup">(.*?)</div>', page).group(1)
    assert setup == ("model SmolLM2-135M (sha256 ab12) · adapter adapters/prod · index indexes/hr (sha256:0f0f) · "
                     "samples 3 · seed 1")
    assert 'id="gate"' not in page  # no --fail-under, no gate line
    summary["gates"] = {"fail_under": 0.9, "passed": False, "failures": ["consistent share 0.50 is below --fail-under 0.90"]}
    gate = re.search(r'<div class="gate failed" id="gate">(.*?)</div>', render_report(records, summary, run)).group(1)
    assert gate == "gate --fail-under 0.90: failed: consistent share 0.50 is below --fail-under 0.90"
    summary["gates"] = {"fail_under": 0.5, "passed": True, "failures": [], "inherited": True}
    gate = re.search(r'<div class="gate passed" id="gate">(.*?)</div>', render_report(records, summary, run)).group(1)
    assert gate == "gate --fail-under 0.50 (set by an earlier run into this folder): passed"
    # an audit.json from before the settings were recorded, records without a fingerprint: what is known is said
    bare = render_report(labelled_records()[:2], summarize(labelled_records()[:2]), RUN)
    assert re.search(r'<div class="meta" id="setup">(.*?)</div>', bare).group(1) == (
        "adapter none · index none (no retrieval)")


def test_a_cluster_of_one_says_one_sample() -> None:
    record = {"id": "a", "line": 1, "status": "ok", "question": "q", "answer": "x", "verdict": "inconsistent",
              "agreement": 0.5, "confidence": 0.1, "contradictions": [], "warnings": [], "sources": [],
              "samples": [{"text": t, "seed": i, "greedy": i == 0, "cluster": i} for i, t in enumerate("xyy")],
              "clusters": [{"id": 0, "size": 1, "representative": "x", "members": [0]},
                           {"id": 1, "size": 2, "representative": "y", "members": [1, 2]}]}
    page = render_report([record], summarize([record]), {"input": "q.jsonl", "config_hash": "c"})
    # the page's script writes "(1 sample)" and "(2 samples)" from the sizes (test_report_browser checks the words)
    assert [(c["id"], c["size"]) for c in report_data(page)["rows"][0]["clusters"]] == [(0, 1), (1, 2)]


def test_table_cells_wrap_a_long_unbroken_answer_or_id() -> None:
    from ragguard.apps.report_html import render_report

    page = render_report([], {"questions": 0, "answered": 0, "verdicts": {}}, {})
    assert "td.wrap{overflow-wrap:anywhere;min-width:8em}" in page  # a 100 KB answer made the page 997,689 px wide
    assert "button.open{color:#1a4f9c;text-decoration:underline;overflow-wrap:anywhere}" in page  # the id


def test_headers_and_short_values_keep_whole_words() -> None:
    """Only the question and the answer may break a word ("agreem|ent", "mismat|ch" at 1280 px)."""
    records = hard_records()
    page = render_report(records, summarize(records), RUN)
    css = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    assert "overflow-wrap" not in re.search(r"th,td\{([^}]*)\}", css).group(1)
    assert "white-space:nowrap" in re.search(r"\bth\{([^}]*)\}", css).group(1)
    row = re.search(r'<tr class="q".*?</tr>', page, re.S).group(0)
    assert re.findall(r'<td class="(\w+)"', row) == ["wrap", "short", "short", "short", "short", "short", "wrap"]


LONG_URL = "https://intranet.example.com/" + "very-long-unbroken-path-segment-" * 12 + "?q=" + "x" * 120


def hard_records() -> list[dict]:
    """Rows that stretch a layout: a long answer, an unbroken URL and id, Chinese, an error and an invalid row."""
    base = hostile_record()
    rows = []
    for i, (rid, question, answer) in enumerate([
            ("long", "How long is it?", "The certificate is issued within five working days. " * 60),
            ("url", "Where is the form " + LONG_URL + " ?", "See " + LONG_URL),
            ("zh", "没有东桥银行借记卡的员工需要开在职证明吗？", "需要。没有东桥银行借记卡的员工须向人力资源部申请在职证明，" * 10),
            ("an-extremely-long-question-identifier-without-any-spaces-that-goes-on-and-on-0001", "short?", "short.")]):
        rows.append({**base, "id": rid, "line": i + 1, "question": question, "answer": answer, "tags": ["hard"],
                     "verdict": ["consistent", "inconsistent", "contradiction", "abstain"][i],
                     "confidence": [0.9, 0.0, 0.4, 0.7][i], "agreement": [1.0, 0.2, 0.6, 0.8][i],
                     "reference": "Five working days.", "reference_match": ["match", "mismatch", "contradicts", "match"][i],
                     "warnings": ["warning with a long path /srv/share/" + "handbook_payroll_" * 10 + "x.pdf"],
                     "sources": [{"doc_id": "/srv/share/" + "handbook_payroll_" * 10 + "x.pdf", "score": 0.5,
                                  "text": LONG_URL}]})
    rows.append({"status": "error", "id": "err1", "line": 5, "question": "What crashed?", "tags": [],
                 "error": "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"})
    rows.append({"status": "invalid", "id": "line-99", "line": 99,
                 "error": "line 99: unknown key 'questoin' (did you mean 'question'?)"})
    return rows


def test_the_page_fits_a_phone() -> None:
    """A viewport meta, the table in a container that scrolls on its own, charts that scale to the width."""
    records = hard_records()
    page = render_report(records, summarize(records), RUN)
    parsed = Elements(page)
    assert parsed.find("meta", name="viewport", content="width=device-width, initial-scale=1")
    assert re.search(r'<div class="table-wrap"><table>', page) and ".table-wrap{overflow-x:auto" in page
    svgs = parsed.find("svg")
    assert svgs and all(s.get("viewbox") == f"0 0 {s['width']} {s['height']}" for s in svgs)
    assert "svg.chart{max-width:100%;height:auto}" in page


def test_rows_and_sort_headers_are_buttons_a_keyboard_reaches() -> None:
    """Each row's id is a button that says whether its detail is open and which row it opens; each sortable
    header holds a button; the verdict sorts by severity, and a row without a verdict has no severity."""
    records = hard_records()
    parsed = Elements(render_report(records, summarize(records), RUN))
    toggles = parsed.find("button", class_="open")
    assert [(b["aria-expanded"], b["aria-controls"]) for b in toggles] == [("false", f"d-{i}") for i in range(6)]
    assert [r["data-severity"] for r in parsed.find("tr", class_="q")] == ["3", "1", "0", "2", "", ""]
    page = render_report(records, summarize(records), RUN)
    heads = re.findall(r'<th data-col="(\w+)"[^>]*><button type="button"[^>]*>(\w+)</button></th>', page)
    assert heads == [("line", "id"), ("severity", "verdict"), ("agreement", "agreement"), ("confidence", "confidence")]


@pytest.mark.parametrize("count", [667, 12345, 1_000_000])
def test_a_bar_charts_counts_fit_in_it_whole(count: int) -> None:
    """The longest bar's count used to end past the chart's edge: a 2,000-question report showed "66" for 667."""
    summary = {"questions": count + 3, "answered": count + 3, "verdicts": {"consistent": count, "inconsistent": 3},
               "agreement_histogram": {"0.0-0.2": 1, "0.8-1.0": count}}
    page = render_report([], summary, RUN)
    for svg in re.findall(r'<svg class="chart".*?</svg>', page, flags=re.S):
        width = float(re.search(r'viewBox="0 0 ([\d.]+) ', svg).group(1))
        counts = re.findall(r'<text x="([\d.]+)" y="[\d.]+" font-size="12">(\d+)</text>', svg)
        assert str(count) in [c for _, c in counts]
        assert all(float(x) + 7.5 * len(c) <= width for x, c in counts), (width, counts)


def test_every_chart_has_a_table_of_its_numbers_for_a_screen_reader() -> None:
    """The drawings are hidden from a screen reader, which reads a visually hidden table instead; the
    reliability diagram shows over each bar how many answers it holds."""
    labelled = labelled_records()
    summary = summarize(labelled)
    page = render_report(labelled, summary, RUN)
    boxes = re.findall(r'<div class="chart-box">(<svg.*?</svg>)<div class="sr-only">(<table>.*?</table>)</div>\s*</div>', page, re.S)
    assert len(boxes) == 4 and len(re.findall(r"<svg", page)) == 4
    tables = {}
    for svg, table in boxes:
        assert Elements(svg).tags[0][1].get("aria-hidden") == "true"
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[hd][^>]*>.*?</t[hd]>", table)]
        tables[re.search(r"<caption>(.*?)</caption>", table).group(1)] = cells
    verdicts = tables["verdicts"]
    for verdict, count in summary["verdicts"].items():
        assert verdicts[verdicts.index(verdict) + 1] == str(count)
    bins = [b for b in summary["calibration"]["bins"] if b["count"]]
    reliability = tables["reliability diagram"]
    assert reliability[:4] == ["confidence", "answers", "mean confidence", "observed accuracy"]
    assert reliability[4:] == [v for b in bins for v in (f"{b['lower']:.1f}-{b['upper']:.1f}", str(b["count"]),
                                                          f"{b['mean_confidence']:.2f}", f"{b['accuracy']:.0%}")]
    assert len(tables["accuracy against coverage"]) == 4 * (1 + len(summary["calibration"]["coverage"]))
    drawn = re.findall(r'<text class="n"[^>]*>(\d+)</text>', charts(page)["reliability-diagram"])
    assert drawn == [str(b["count"]) for b in bins]


def contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""
    def luminance(colour: str) -> float:
        channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    high, low = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_badges_and_warnings_meet_wcag_aa_contrast() -> None:
    """White badge text on every verdict colour, and the warning/contradiction text on the opened row's
    background, reach 4.5:1 (the inconsistent badge was 4.24, the warnings 4.10)."""
    from ragguard.apps.report_html import COLOURS

    page = render_report(hard_records(), summarize(hard_records()), RUN)
    css = re.search(r"<style>(.*?)</style>", page, re.S).group(1)

    def colour(selector: str, prop: str) -> str:
        found = re.search(re.escape(selector) + r"\{[^}]*?\b" + prop + r":#([0-9a-f]{6}|[0-9a-f]{3})\b", css).group(1)
        return "#" + (found if len(found) == 6 else "".join(c * 2 for c in found))

    detail_bg = colour("tr.detail td", "background")
    for verdict, background in COLOURS.items():
        assert contrast("#ffffff", background) >= 4.5, verdict
    for selector, background in ((".warn", detail_bg), (".warn", "#ffffff"), (".meta", "#ffffff"),
                                 (".src", detail_bg), ("button.open", "#ffffff")):
        assert contrast(colour(selector, "color"), background) >= 4.5, selector


def test_print_shows_every_shown_questions_detail_and_badges_without_background() -> None:
    """Printing (or saving as PDF) shows the opened row of every question the filter shows, hides the
    controls, and prints a badge as black text in a border: the print dialog leaves backgrounds out."""
    page = render_report(hard_records(), summarize(hard_records()), RUN)
    css = re.search(r"@media print\{(.*)\}", re.search(r"<style>(.*?)</style>", page, re.S).group(1), re.S).group(1)
    assert "tr.q:not(.hidden)+tr.detail{display:table-row}" in css and ".controls{display:none}" in css
    assert "#more{display:none}" in css  # the "show more" buttons
    assert ".badge{background:none!important;color:#000;border:1px solid #000}" in css


def test_the_filter_searches_errors_reasons_and_references_and_can_show_wrong_answers() -> None:
    """The script searches a row's id, question and answer cells (an error's message or an invalid row's reason
    stands in the answer cell), its tags and reference from the data, and its reference match."""
    records = hard_records()
    html = render_report(records, summarize(records), RUN)
    page = Elements(html)
    cells = {m.group(1): html_lib.unescape(re.sub(r"<[^>]+>", "", m.group(2)))
             for m in re.finditer(r'<tr class="q"[^>]*data-id="([^"]*)"[^>]*>(.*?)</tr>', html, re.S)}
    assert "CUDA out of memory" in cells["err1"]
    assert "unknown key 'questoin'" in cells["line-99"]
    data = report_data(html)["rows"]
    assert data[1]["reference"] == "Five working days." and data[1]["tags"] == ["hard"]
    assert [r["data-reference"] for r in page.find("tr", class_="q")] == ["match", "mismatch", "contradicts", "match",
                                                                          "", ""]
    assert [o["value"] for o in page.find("option")][-3:] == ["", "wrong", "match"]
    assert page.find("select", id="reference")
    # without a reference there is nothing to choose
    plain = [{**r, "reference_match": None, "reference": None} for r in records]
    assert not Elements(render_report(plain, summarize(plain), RUN)).find("select", id="reference")


def test_a_long_answer_is_clamped_in_its_row_and_whole_in_the_opened_row() -> None:
    records = hard_records()
    page = render_report(records, summarize(records), RUN)
    assert ".clamp{display:-webkit-box;-webkit-box-orient:vertical;-webkit-line-clamp:3" in page
    row = re.search(r'<tr class="q" data-key="0".*?</tr>', page, re.S).group(0)
    assert re.search(r'<td class="wrap"><div class="clamp"[^>]*>The certificate', row)
    # the opened row shows the answer whole, taken from this cell (which holds all of it) by the page's script
    assert re.search(r'<div class="clamp"[^>]*>' + re.escape(records[0]["answer"]) + "</div>", row)
    assert report_data(page)["rows"][0]["answer"] == 1


def test_controls_have_labels_the_page_has_landmarks_and_the_count_is_announced() -> None:
    records = hard_records()
    page = render_report(records, summarize(records), RUN)
    for control in ("filter", "verdict", "reference"):
        assert re.search(r'<label>\w+ <(input|select) id="' + control + '"', page), control
    assert page.count("<main>") == 1 and page.count("<header>") == 1
    assert page.index("<header>") < page.index("<h1>") < page.index("</header>") < page.index("<main>")
    assert page.index("<main>") < page.index('<div class="cards">') < page.index("</table>") < page.index("</main>")
    assert re.search(r'<span role="status" aria-live="polite"><span id="shown">6</span> of 6 shown</span>', page)


def test_the_title_and_header_name_the_input_and_when_the_run_finished() -> None:
    records = hard_records()
    summary = {**summarize(records), "finished_at": "2026-12-07T20:10:18Z"}
    page = render_report(records, summary, {**RUN, "input": "questions/hr-faq.jsonl"})
    assert "<title>ragguard audit · hr-faq.jsonl · 2026-12-07 20:10 UTC</title>" in page
    assert "<h1>ragguard audit of hr-faq.jsonl</h1>" in page
    assert '<div class="meta" id="run">input questions/hr-faq.jsonl · finished 2026-12-07 20:10 UTC · config' in page
    # a summary.json from before the time was recorded
    assert "<title>ragguard audit · hr-faq.jsonl</title>" in render_report(records, summarize(records),
                                                                         {**RUN, "input": "questions/hr-faq.jsonl"})


def test_an_audit_records_when_it_finished_in_its_summary(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    from datetime import datetime, timedelta, timezone

    from test_audit import make_guard, write_questions

    from ragguard.apps.audit import run_audit

    out = tmp_path / "out"
    run_audit(write_questions(tmp_path / "q.jsonl"), out, make_guard())
    stamp = json.loads((out / "summary.json").read_text())["finished_at"]
    finished = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs(datetime.now(timezone.utc) - finished) < timedelta(minutes=5)
    assert f"ragguard audit · q.jsonl · {finished:%Y-%m-%d %H:%M} UTC" in (out / "report.html").read_text()


def test_text_cells_take_their_direction_from_their_text_and_chinese_says_so() -> None:
    records = hard_records()
    records[0] = {**records[0], "answer": "نعم، يجب تقديم شهادة عمل صالحة (HR-07)."}
    page = render_report(records, summarize(records), RUN)
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr class="q"[^>]*data-id="([^"]*)".*?</tr>', page, re.S)}
    assert '<div class="clamp" dir="auto">نعم' in rows["long"]
    assert '<td class="wrap" dir="auto" lang="zh">没有' in rows["zh"] and '<div class="clamp" dir="auto" lang="zh">需要' in rows["zh"]
    assert '<td class="wrap" dir="auto">How long' in rows["long"]
    zh = report_data(page)["rows"][2]  # the Chinese question's opened row: its samples say lang="zh"
    assert {m[2][:2]: m[4:] for c in zh["clusters"] for m in c["members"]} == {"</": [], "25": [], "30": []}
    assert "reference_lang" not in zh  # "Five working days."
    chinese = [{**records[2], "samples": [{"text": "需要。", "seed": 1}], "reference": "需要。"}]
    data = report_data(render_report(chinese, summarize(chinese), RUN))["rows"][0]
    assert data["clusters"][0]["members"][0][4:] == ["zh"] and data["reference_lang"] == "zh"


def cited_records(n: int) -> list[dict]:
    """``n`` answered questions that all cite the same two passages (a FAQ over one handbook)."""
    passages = [{"doc_id": "handbook.html", "chunk_id": 7, "score": 0.61, "text": "PASSAGE-ONE " + "leave " * 100},
                {"doc_id": "handbook.html", "chunk_id": 8, "score": 0.55, "text": "PASSAGE-TWO holidays"}]
    rows = []
    for i in range(n):
        samples = [{"text": f"answer {i}", "greedy": True, "seed": None}, {"text": f"answer {i}", "seed": 11}]
        rows.append({"status": "ok", "id": f"q{i}", "line": i + 1, "question": f"question {i}?", "answer": f"answer {i}",
                     "verdict": "consistent", "agreement": 1.0, "confidence": 0.8, "tags": ["faq"], "samples": samples,
                     "clusters": [{"id": 0, "size": 2, "representative": f"answer {i}", "members": [0, 1], "support": 0.6}],
                     "contradictions": [], "warnings": ["the same warning on every row"],
                     "sources": [dict(p, score=p["score"] - i / 1000) for p in passages]})
    return rows


def test_a_passage_cited_by_every_row_is_in_the_page_once() -> None:
    """At 10,000 rows, 47 % of the page's 29 MB were source passages repeated in every row's detail."""
    records = cited_records(50)
    page = render_report(records, summarize(records), RUN)
    assert page.count("PASSAGE-ONE") == 1 and page.count("PASSAGE-TWO") == 1
    assert page.count("the same warning on every row") == 1
    data = report_data(page)
    assert data["passages"] == [["handbook.html", records[0]["sources"][0]["text"][:400]],
                                ["handbook.html", "PASSAGE-TWO holidays"]]
    # each row keeps its own scores
    assert [row["sources"] for row in data["rows"][:2]] == [[[0, "0.610"], [1, "0.550"]], [[0, "0.609"], [1, "0.549"]]]
    # the page grows by what differs between rows, not by the passages: about 1.5 KB a row here
    longer = cited_records(100)
    assert len(render_report(longer, summarize(longer), RUN)) - len(page) < 50 * 1500


def test_the_detail_data_holds_each_rows_samples_clusters_and_sources() -> None:
    records = hard_records() + labelled_records()
    data = report_data(render_report(records, summarize(records), RUN))
    assert len(data["rows"]) == len(records)
    for record, row in zip(records, data["rows"], strict=True):
        if record["status"] != "ok":
            assert row["status"] == record["status"] and row["error"] == record["error"]
            continue
        members = sorted((m for c in row.get("clusters", []) for m in c["members"]), key=lambda m: m[0])
        samples = record.get("samples", [])
        assert [m[2] for m in members] == [samples[m[0]]["text"] for m in members]
        assert [m[1] for m in members] == ["greedy" if samples[m[0]].get("greedy") else f"seed {samples[m[0]].get('seed')}"
                                           for m in members]
        assert [c["size"] for c in row.get("clusters", [])] == [c["size"] for c in record.get("clusters", [])]
        cited = [(data["passages"][p][0], data["passages"][p][1], score) for p, score in row.get("sources", [])]
        assert cited == [(s["doc_id"], s["text"][:400], f"{s['score']:.3f}") for s in record.get("sources", [])]
        assert [data["warnings"][w] for w in row.get("warnings", [])] == record.get("warnings", [])


@pytest.mark.parametrize("hostile", ["</script><script>alert(1)</script>", "<!--<script>", "</SCRIPT >x",
                                     "a\u2028b\u2029c</scr" + "ipt", "]]></style>&amp;\\u003c"])
def test_no_text_can_break_out_of_the_detail_data(hostile: str) -> None:
    """Every ``<`` in the data is written ``\\u003c``: no answer, sample, warning or passage can close the data
    element, open a comment, or start a script; the script reads the text back unchanged."""
    record = {**hostile_record(), "samples": [{"text": hostile, "seed": 1}, {"text": hostile, "seed": 2},
                                              {"text": "x", "greedy": True}],
              "warnings": [hostile], "reference": hostile, "tags": [hostile],
              "contradictions": [{"a": 1, "b": 2, "kind": "quantity", "explanation": hostile}],
              "sources": [{"doc_id": hostile, "score": 0.5, "text": hostile}]}
    page = render_report([record], summarize([record]), RUN)
    block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1)
    assert "<" not in block and ">" not in block
    assert page.lower().count("</script") == 2 and page.count("<!--") == 0
    data = report_data(page)
    row = data["rows"][0]
    assert [m[2] for m in row["clusters"][0]["members"]] == [hostile, hostile]
    assert row["reference"] == row["tags"][0] == row["contradictions"][0][3] == data["warnings"][0] == hostile
    assert data["passages"] == [[hostile, hostile]]


def test_only_the_first_page_of_rows_is_shown_and_the_rest_wait_behind_show_more(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A browser lays out every shown row: 10,000 of them took minutes to load and to sort. The first PAGE rows
    are shown, the others are in the page (hidden) behind "show more" and "show all"."""
    from ragguard.apps import report_html

    records = hard_records()
    page = render_report(records, summarize(records), RUN)
    assert [r["class"] for r in Elements(page).find("tr") if r.get("data-key")] == ["q"] * 6
    assert Elements(page).find("p", class_="meta hidden", id="more")  # nothing waits
    monkeypatch.setattr(report_html, "PAGE", 2)
    page = render_report(records, summarize(records), RUN)
    parsed = Elements(page)
    assert [r["class"] for r in parsed.find("tr") if r.get("data-key")] == ["q", "q"] + ["q hidden"] * 4
    assert parsed.find("tbody", id="rows", **{"data-page": "2"})
    assert re.search(r'<span id="shown">2</span> of 6 shown', page)
    more = re.search(r'<p class="meta" id="more">(.*?)</p>', page).group(1)
    assert re.sub(r"<[^>]+>", "", more).startswith("4 more not shown: show 2 more · show all")
    assert len(report_data(page)["rows"]) == 6  # every row's detail is there
