"""Opt-in: render report.html in headless Debian chromium and check the page is not blank.

Run with ``pytest -m browser tests/test_report_browser.py`` (needs ``apt-get install chromium``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from audit.report import REPORT_HTML, render_report
from audit.testing.sample_run import write_sample_run

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _opt_in(request: pytest.FixtureRequest) -> None:
    if "browser" not in (request.config.getoption("-m") or ""):
        pytest.skip("opt-in: pytest -m browser")
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (apt-get install chromium)")


@pytest.mark.parametrize("kind", ["fairness", "robustness"])
def test_report_renders_in_chromium(kind: str, tmp_path: Path) -> None:
    from PIL import Image

    run_dir = write_sample_run(tmp_path / "run", kind)
    html = render_report(run_dir)
    assert html.name == REPORT_HTML
    png = tmp_path / "page.png"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}",
           "--window-size=1200,3000", html.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png.exists(), proc.stderr[-2000:]
    img = Image.open(png).convert("RGB")
    assert img.size == (1200, 3000)
    colors = img.getcolors(maxcolors=1_000_000)
    assert colors is not None and len(colors) > 200  # text, tables and figures, not a blank page
    shutil.copy(png, run_dir / f"screenshot_{kind}.png")
    # the page as the browser built it: the verdict and its forest plot come first
    dom = subprocess.run([*cmd[:-3], f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom",
                          html.resolve().as_uri()], capture_output=True, text=True, timeout=120).stdout
    headings = re.findall(r"<h[12][^>]*>(.*?)</h[12]>", dom, flags=re.S)
    assert re.sub(r"<[^>]+>", "", headings[1]).startswith("Verdict: "), headings[:3]
    first_img = re.search(r'<img[^>]*alt="([^"]*)"', dom)
    assert first_img is not None and first_img.group(1).startswith("Worst group per gate")
