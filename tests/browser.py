"""Headless Chromium for the browser tests (Debian's chromium and chromium-driver; skipped without them)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")


@contextmanager
def headless_chromium(width: int = 1280, height: int = 1600, mobile: bool = False) -> Iterator[Any]:
    """A selenium driver of a headless Chromium that makes no request of its own; skips the test without one.

    ``mobile``: emulate a phone of ``width`` x ``height`` CSS pixels, which honours (or, without one, lacks)
    the page's viewport meta the way a phone's browser does."""
    if not (CHROMIUM and DRIVER):
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    if mobile:
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": {
            "width": width, "height": height, "pixelRatio": 1, "mobile": True, "touch": True}})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


# The colours an element shows: its text colour (an SVG element's fill) and the background it is drawn on, the first
# ancestor's (or its own) background that is not transparent; "canvas" where none is (the browser's own white).
_COLOURS_JS = """
const el = arguments[0], style = getComputedStyle(el);
const fg = el instanceof SVGElement ? style.fill : style.color;
for (let n = el; n && n.nodeType === 1; n = n.parentElement) {
  const bg = getComputedStyle(n).backgroundColor;
  if (bg !== 'transparent' && !/^rgba\\(.*,\\s*0\\)$/.test(bg)) return [fg, bg];
}
return [fg, 'canvas'];
"""


def emulate(driver: Any, scheme: str, media: str = "") -> None:
    """Make ``prefers-color-scheme`` ``scheme`` ("light" or "dark") and the CSS media type ``media`` ("" = screen)."""
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "media": media, "features": [{"name": "prefers-color-scheme", "value": scheme}]})


def rgb(colour: str) -> tuple[int, int, int]:
    """``rgb(r, g, b)`` or ``rgba(r, g, b, 1)`` as computed by the browser; "canvas" is white."""
    if colour == "canvas":
        return (255, 255, 255)
    parts = colour[colour.index("(") + 1:colour.rindex(")")].split(",")
    assert len(parts) == 3 or float(parts[3]) == 1, f"a translucent colour has no contrast of its own: {colour}"
    return (int(parts[0]), int(parts[1]), int(parts[2]))


def colours(element: Any) -> tuple[str, str]:
    """``element``'s computed text colour (an SVG element's fill) and the colour it is drawn on."""
    fg, bg = element.parent.execute_script(_COLOURS_JS, element)
    return fg, bg


def contrast(fg: str, bg: str) -> float:
    """WCAG 2's contrast ratio of two computed colours (1 to 21; 4.5 is the least for text)."""

    def luminance(colour: str) -> float:
        r, g, b = ((c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4)
                   for c in rgb(colour))
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)
